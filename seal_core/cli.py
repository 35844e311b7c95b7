"""``seal-run``: the command line.

    seal-run plugins [--json]                      every component, by kind, with its plugin
    seal-run run [--config FILE.yaml] [--set KEY=VALUE]... [--plugins X]... [--run-dir DIR | --name NAME]
    seal-run run --resume RUN_DIR [--plugins X]...   continue a killed or interrupted run
    seal-run run ... --push-to-hub REPO            then upload checkpoints/policy to the hub
    seal-run config [--config FILE.yaml] [--set KEY=VALUE]...   print the resolved config
    seal-run compare --algorithms rest-em,grpo,ppo,rloo [same options as run]
    seal-run baselines [--edits-file F.json] [--seal-rounds N | --seal-run DIR] [same options as run]
    seal-run adapt --policy MODEL --documents PATH --out DIR [--merge] [--student MODEL]   (or --resume DIR)
    seal-run ask MODEL "question"                  a saved model's (or adapter's) answer

Errors a user can cause (config, data, plugins) print one paragraph and exit with status 2.
``SEAL_TRACE_HOOKS=1`` logs every hook call; ``SEAL_LOG_LEVEL`` sets the console log level.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from seal_core import __version__
from seal_core.errors import SealError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seal-run", description="SEAL: self-adapting language models.")
    parser.add_argument("--version", action="version", version=f"seal-run {__version__}")
    # the deepspeed launcher passes --local_rank=N first; the rank is read from LOCAL_RANK anyway
    parser.add_argument("--local_rank", "--local-rank", type=int, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    def plugin_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--plugins", action="append", default=[], metavar="X",
                       help="extra plugin: an importable module name or a .py file (repeatable)")

    p_plugins = sub.add_parser("plugins", help="list every component by kind, with its plugin")
    p_plugins.add_argument("--json", action="store_true", help="print JSON instead of a table")
    plugin_arg(p_plugins)

    for name, help_text in (("run", "run SEAL"), ("config", "print the resolved config and exit"),
                            ("compare", "run several RL algorithms from one seed and budget, side by side"),
                            ("baselines", "the paper's knowledge-incorporation baselines table, in one command")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", metavar="FILE.yaml", help="YAML config file")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                       help="override one config key, e.g. --set rounds=3 (repeatable)")
        plugin_arg(p)
        if name == "baselines":
            p.add_argument("--edits-file", metavar="FILE.json", help="self-edits for the from-file row (SEAL format with completions)")
            seal = p.add_mutually_exclusive_group()
            seal.add_argument("--seal-rounds", type=int, metavar="N", help="run SEAL for N rounds for the last row")
            seal.add_argument("--seal-run", metavar="RUN_DIR", help="take the last row from this finished run")
        if name in ("compare", "baselines"):
            if name == "compare":
                p.add_argument("--algorithms", metavar="A,B,...",
                               help="comma-separated algorithm names, e.g. rest-em,grpo,ppo,rloo")
            p.add_argument("--seeds", metavar="N|A,B,...", help="run every variant at every seed: a count (3: seeds "
                           "0, 1, 2) or a list; the tables then give 95%% intervals over seeds and passages")
            p.add_argument("--against", metavar="NAME", help="the variant paired differences are taken from (compare: "
                           "the first algorithm; baselines: passage-only)")
            where = p.add_mutually_exclusive_group()
            where.add_argument("--run-dir", metavar="DIR", help="comparison directory (default: runs/<time>-compare)")
            where.add_argument("--name", metavar="NAME", help="write the comparison to runs/NAME")
            where.add_argument("--resume", metavar="DIR", help="continue the command that wrote DIR, with its own "
                               "options: finished runs are kept, unfinished ones resumed")
        if name == "run":
            where = p.add_mutually_exclusive_group()
            where.add_argument("--run-dir", metavar="DIR", help="where to write the run (default: runs/<time>-<domain>-<algorithm>)")
            where.add_argument("--name", metavar="NAME", help="write the run to runs/NAME")
            where.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR with its own config.yaml")
            p.add_argument("--push-to-hub", metavar="REPO", help="after the run, upload checkpoints/policy to this "
                           "hub model repository (needs hub access and a token in the environment; off by default)")
    p_adapt = sub.add_parser("adapt", help="a trained policy writes self-edits for new documents; the student learns them")
    p_adapt.add_argument("--policy", metavar="MODEL", help="the model that writes the self-edits (a run's checkpoints/policy, a hub id, embedded)")
    p_adapt.add_argument("--documents", metavar="PATH", help="a .txt, .md, .json or .jsonl file (records with a 'text' field), or a folder of them")
    p_adapt.add_argument("--out", metavar="DIR", help="a new output directory (adapters/, self_edits/, model/ with --merge)")
    p_adapt.add_argument("--student", metavar="MODEL", help="the model that learns the documents (default: the policy itself)")
    p_adapt.add_argument("--merge", action="store_true", help="learn the documents one after another into one model (OUT/model) instead of an adapter per document")
    p_adapt.add_argument("--limit", type=int, metavar="N", help="learn only the first N readable documents")
    p_adapt.add_argument("--resume", metavar="OUT", help="continue an interrupted seal-run adapt in OUT with its own settings")
    p_adapt.add_argument("--config", metavar="FILE.yaml", help="YAML config file (domain.*, generator.*, inner.*, model.*)")
    p_adapt.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides", help="override one config key (repeatable)")
    plugin_arg(p_adapt)
    p_ask = sub.add_parser("ask", help="ask a saved model or adapter a question, without the document")
    p_ask.add_argument("model", metavar="MODEL", help="a model directory (checkpoints/policy, adapt's OUT/model) or a peft adapter directory (OUT/adapters/NAME)")
    p_ask.add_argument("question")
    p_ask.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p_ask.add_argument("--max-new-tokens", type=int, default=32, metavar="N")
    p_ask.add_argument("--chat-template", choices=("auto", "none"), default="auto",
                       help="none: a plain-text prompt, for a model adapted with model.chat_template=none")
    return parser


def cmd_plugins(args: argparse.Namespace) -> int:
    """Every component by kind, with its plugin and where that plugin came from.

    ``--json`` prints one object per component: kind, name, plugin, distribution and version
    (null for a plugin passed as a file or module), file (the plugin module's file) and source
    ("distribution==version", else the file). ``SEAL_TRACE_HOOKS=1`` also logs each hook call.
    """
    from seal_core.registry import Registry

    registry = Registry(args.plugins)
    entries = registry.entries()
    if args.json:
        print(json.dumps([e.to_json() for e in entries], indent=2))
        return 0
    header = ("kind", "name", "plugin", "source")
    rows = [header] + [(e.kind, e.name, e.plugin, e.source) for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row[:3], widths)) + "  " + row[3])
    return 0


def _resolve(args: argparse.Namespace):
    from seal_core.config import load_raw, resolve
    from seal_core.registry import Registry

    registry = Registry(args.plugins)
    config = resolve(load_raw(args.config, args.overrides), registry)
    return registry, config


def cmd_config(args: argparse.Namespace) -> int:
    _, config = _resolve(args)
    print(config.to_yaml(), end="")
    return 0


def _run_dir(args: argparse.Namespace, config) -> Path:
    from seal_core.runstore import RUNS_DIR, default_run_dir, named_run_dir

    if args.run_dir:
        return Path(args.run_dir)
    if args.name:
        return named_run_dir(args.name, RUNS_DIR)
    return default_run_dir(config.components["domain"], config.components["algorithm"])


def cmd_run(args: argparse.Namespace) -> int:
    import shlex

    from seal_core import distributed, logs
    from seal_core.checkpoints import check_push, push_to_hub
    from seal_core.experiments import make_engine
    from seal_core.interrupt import Interrupted, StopFlag
    from seal_core.runstore import RunStore

    if args.resume:
        if args.config or args.overrides:
            raise SealError(
                f"--resume takes the config from {args.resume}/config.yaml; drop --config and --set "
                "(start a new run to change the config)."
            )
        store = RunStore.existing(Path(args.resume))
        args.config = store.config_path
    registry, config = _resolve(args)  # every config error surfaces here, before any model loads
    check_push(args.push_to_hub, config.run.checkpoint)
    distributed.init(config.model.device)  # under torchrun/deepspeed: join the ranks; else nothing
    if not distributed.is_main():
        os.environ.setdefault("SEAL_LOG_LEVEL", "warning")  # rank 0 tells the story, once
    stop = StopFlag()
    engine = make_engine(config, registry, stop)
    engine.load_tasks()  # data errors too, before the run directory is made
    if not args.resume:
        store = distributed.open_store(lambda: RunStore.create(_run_dir(args, config)))
    elif not distributed.is_main():
        store = distributed.FollowerStore(store.dir)
    logs.configure(store.log_path if distributed.is_main() else None)
    store.command = shlex.join(["seal-run", *args.argv])  # for the model card
    import structlog

    log = structlog.get_logger("seal")
    log.info("run resumed" if args.resume else "run started", run_dir=str(store.dir))
    try:
        with stop.on_sigint():
            engine.run(store, resume=bool(args.resume))
    except Interrupted:
        log.warning("run interrupted; everything scored so far is saved", run_dir=str(store.dir))
        print(f"\nInterrupted. Everything scored so far is saved. Resume with:\n  seal-run run --resume {store.dir}"
              + "".join(f" --plugins {p}" for p in args.plugins), file=sys.stderr)
        return 130
    finally:
        logs.configure()  # closes the run's log.jsonl
        distributed.finish()
    if not distributed.is_main():
        return 0
    print((store.dir / "results.md").read_text(encoding="utf-8").split("\n\n")[1])
    print(f"\nRun directory: {store.dir}  (results.md, plot.png, rollouts.jsonl, metrics.jsonl, log.jsonl)")
    if args.push_to_hub:
        print(f"Pushed {store.dir / 'checkpoints' / 'policy'} to {push_to_hub(store.dir / 'checkpoints' / 'policy', args.push_to_hub)}")
    return 0


# the options of a multi-run command, saved in its directory (command.json) for --resume
MULTI_OPTIONS = ("config", "overrides", "plugins", "seeds", "against", "algorithms", "edits_file", "seal_rounds", "seal_run")


def _resume_multi(args: argparse.Namespace, kind: str) -> None:
    """``--resume DIR``: take every option from the command that wrote DIR (its command.json)."""
    saved = Path(args.resume) / "command.json"
    if not saved.is_file():
        raise SealError(f"--resume {args.resume}: no command.json there, so it was not written by seal-run {kind} "
                        f"(or by a version before --resume); pass the directory a seal-run {kind} wrote.")
    given = [f"--{k.replace('_', '-')}" for k in MULTI_OPTIONS if k != "plugins" and getattr(args, k, None)]
    if given:
        raise SealError(f"--resume takes every option from {saved}; drop {', '.join(given)} (start a new "
                        f"seal-run {kind} to change them).")
    data = json.loads(saved.read_text(encoding="utf-8"))
    if data.get("command") != kind:
        raise SealError(f"--resume {args.resume}: written by seal-run {data.get('command')}, not seal-run {kind}.")
    for key, value in data["options"].items():
        setattr(args, key, value)


def _out_dir(args: argparse.Namespace, kind: str) -> Path:
    """A new, empty directory for a multi-run command (its options in command.json), or with
    ``--resume`` the existing one; its log.jsonl opened."""
    import time

    from seal_core import logs
    from seal_core.runstore import RUNS_DIR, atomic_write_text, named_run_dir

    if args.resume:
        out_dir = Path(args.resume)
        logs.configure(out_dir / "log.jsonl")
        return out_dir
    if args.run_dir:
        out_dir = Path(args.run_dir)
    elif args.name:
        out_dir = named_run_dir(args.name, RUNS_DIR)
    else:
        out_dir = RUNS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}"
    if out_dir.exists() and any(out_dir.iterdir()):
        raise SealError(f"Output directory '{out_dir}' already holds files; pass a new --run-dir.")
    out_dir.mkdir(parents=True, exist_ok=True)
    options = {k: getattr(args, k) for k in MULTI_OPTIONS if hasattr(args, k)}
    atomic_write_text(out_dir / "command.json", json.dumps({"command": kind, "options": options}, indent=1))
    logs.configure(out_dir / "log.jsonl")
    return out_dir


def cmd_compare(args: argparse.Namespace) -> int:
    from seal_core.compare import resolve_all, run_compare
    from seal_core.registry import Registry

    from seal_core.variants import parse_seeds

    if args.resume:
        _resume_multi(args, "compare")
    if not args.algorithms:
        raise SealError("seal-run compare needs --algorithms A,B,... (e.g. rest-em,grpo,ppo,rloo), or --resume DIR.")
    registry = Registry(args.plugins)
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    configs = resolve_all(args.config, args.overrides, algorithms, registry)  # all checked up front
    seeds = parse_seeds(args.seeds)
    if args.against and args.against not in algorithms:
        raise SealError(f"--against {args.against}: not one of the algorithms compared ({', '.join(algorithms)}).")
    out_dir = _out_dir(args, "compare")
    where = "<algorithm>/seed<S>/" if seeds else "<algorithm>/"
    return _run_many(out_dir, lambda stop: run_compare(configs, registry, out_dir, stop, seeds, args.against), "algorithm",
                     f"Comparison: {out_dir}/comparison.md, comparison.png; each run in {out_dir}/{where}; "
                     f"continue an interrupted one with seal-run compare --resume {out_dir}")


def _run_many(out_dir: Path, run: Any, unit: str, where: str) -> int:
    """Run a multi-run command (``run(stop) -> table``); Ctrl-C keeps the finished runs."""
    from seal_core import logs
    from seal_core.interrupt import Interrupted, StopFlag

    stop = StopFlag()
    try:
        with stop.on_sigint():
            table = run(stop)
    except Interrupted:
        command = "compare" if unit == "algorithm" else "baselines"
        print(f"\nInterrupted. Finished runs are kept in {out_dir}; continue with:\n  seal-run {command} --resume "
              f"{out_dir}", file=sys.stderr)
        return 130
    finally:
        logs.configure()
    print(table)
    print(f"\n{where}")
    return 0


def cmd_baselines(args: argparse.Namespace) -> int:
    from seal_core.baselines import baseline_configs, run_baselines
    from seal_core.registry import Registry

    from seal_core.variants import parse_seeds

    if args.resume:
        _resume_multi(args, "baselines")
    registry = Registry(args.plugins)
    if args.seal_rounds is not None and args.seal_rounds < 1:
        raise SealError(f"--seal-rounds must be >= 1, got {args.seal_rounds}.")
    seal_run = Path(args.seal_run) if args.seal_run else None
    if seal_run is not None and not (seal_run / "metrics.jsonl").is_file():
        raise SealError(f"--seal-run {seal_run}: no metrics.jsonl there; pass the directory of a finished run.")
    configs = baseline_configs(args.config, args.overrides, registry, args.edits_file, args.seal_rounds)
    seeds = parse_seeds(args.seeds)
    against = args.against or "passage-only"
    if against not in [*configs, "no-adaptation"]:
        raise SealError(f"--against {against}: not one of the baselines run ({', '.join(['no-adaptation', *configs])}).")
    out_dir = _out_dir(args, "baselines")
    argv = " ".join(["baselines", *(["--config", args.config] if args.config else []),
                     *[f"--set {o}" for o in args.overrides], *(["--edits-file", args.edits_file] if args.edits_file else []),
                     *(["--seal-rounds", str(args.seal_rounds)] if args.seal_rounds else []),
                     *(["--seal-run", args.seal_run] if args.seal_run else []), "--run-dir", str(out_dir)])
    where = "<variant>/seed<S>/" if seeds else "<variant>/"
    return _run_many(out_dir, lambda stop: run_baselines(configs, registry, out_dir, stop, seal_run, argv, seeds, against),
                     "variant", f"Baselines: {out_dir}/baselines.md; each run in {out_dir}/{where}; continue an "
                     f"interrupted one with seal-run baselines --resume {out_dir}")


def cmd_adapt(args: argparse.Namespace) -> int:
    """``seal-run adapt`` (see :mod:`seal_core.adapt`): checks everything, then adapts into OUT."""
    from seal_core.adapt import plan_from_args, run_command

    plan, out = plan_from_args(args)  # with --resume, args.config becomes OUT/config.yaml
    registry, config = _resolve(args)
    return run_command(plan, out, config, registry, resumed=bool(args.resume), plugins=args.plugins)


def cmd_ask(args: argparse.Namespace) -> int:
    """``seal-run ask MODEL QUESTION``: the saved model's answer, without the document."""
    from seal_core.ask import ask, load_for_asking

    print(ask(load_for_asking(args.model, args.device, args.chat_template), args.question, args.max_new_tokens))
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    from seal_core import logs

    logs.configure()
    handler = {"plugins": cmd_plugins, "run": cmd_run, "config": cmd_config, "compare": cmd_compare,
               "baselines": cmd_baselines, "adapt": cmd_adapt, "ask": cmd_ask}[args.command]
    try:
        return handler(args)
    except SealError as exc:
        print(f"seal-run: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
