"""``seal-run run``: one SEAL run into a run directory.

    seal-run run [--config FILE.yaml] [--set KEY=VALUE]... [--plugins X]... [--run-dir DIR | --name NAME]
    seal-run run --resume RUN_DIR [--plugins X]...   continue a killed or interrupted run
    seal-run run ... --push-to-hub REPO            then upload checkpoints/policy to the hub
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from contextlib import nullcontext
from pathlib import Path

from seal_core.api.errors import SealError
from seal_core.commands.common import check_arg, checked, config_args, free_output, resolve, resume_hint


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser("run", help="run SEAL")
    config_args(parser)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--run-dir", metavar="DIR", help="where to write the run (default: runs/<time>-<domain>-<algorithm>)")
    where.add_argument("--name", metavar="NAME", help="write the run to runs/NAME")
    where.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR with its own config.yaml")
    parser.add_argument("--push-to-hub", metavar="REPO", help="after the run, upload checkpoints/policy to this "
                        "hub model repository (needs hub access and a token in the environment; off by default)")
    check_arg(parser)
    return parser


def run_dir(args: argparse.Namespace, config) -> Path:
    """``--run-dir``, ``runs/NAME`` for ``--name``, else ``runs/<time>-<domain>-<algorithm>``."""
    from seal_core.runs.store import RUNS_DIR, default_run_dir, named_run_dir

    if args.run_dir:
        return Path(args.run_dir)
    if args.name:
        return named_run_dir(args.name, RUNS_DIR)
    return default_run_dir(config.components["domain"], config.components["algorithm"])


def main(args: argparse.Namespace) -> int:
    import structlog

    from seal_core.loop.experiments import make_engine
    from seal_core.loop.workbench import Workbench
    from seal_core.runs.checkpoints import check_push, push_to_hub
    from seal_core.runs.lock import RunLock
    from seal_core.runs.store import FollowerStore, RunStore, open_store
    from seal_core.runtime.files import StorageError
    from seal_core.runtime import distributed, logs
    from seal_core.runtime.interrupt import Interrupted, StopFlag

    if args.resume:
        if args.config or args.overrides:
            raise SealError(
                f"--resume takes the config from {args.resume}/config.yaml; drop --config and --set "
                "(start a new run to change the config)."
            )
        store = RunStore.existing(Path(args.resume))
        args.config = store.config_path
    registry, config = resolve(args)  # every config error surfaces here, before any model loads
    check_push(args.push_to_hub, config.run.checkpoint)
    if args.check:
        Workbench(config, registry).load_tasks()
        target = store.dir if args.resume else run_dir(args, config)
        if not args.resume:
            free_output(target, "--run-dir")
        return checked("run", target)
    distributed.init(config.model.device, timeout=config.trainer.collective_timeout)  # under a launcher; else nothing
    if not distributed.is_main():
        os.environ.setdefault("SEAL_LOG_LEVEL", "warning")  # rank 0 tells the story, once
    workbench = Workbench(config, registry)
    workbench.load_tasks()  # data errors too, before the run directory is made
    if not args.resume:
        store = open_store(lambda: RunStore.create(run_dir(args, config), config.to_yaml()))
    elif not distributed.is_main():
        store = FollowerStore(store.dir)
    command = shlex.join(["seal-run", *args.argv])
    stop = StopFlag()
    try:
        with RunLock(store.dir, command) if distributed.is_main() else nullcontext():  # one writer per run directory
            logs.configure(store.log_path if distributed.is_main() else None)
            engine = make_engine(workbench, store, stop, command=command)  # the command line, for the model card
            log = structlog.get_logger("seal")
            log.info("run resumed" if args.resume else "run started", run_dir=str(store.dir))
            try:
                with stop.on_sigint():
                    engine.run(resume=bool(args.resume))
            except Interrupted:
                log.warning("run interrupted; everything scored so far is saved", run_dir=str(store.dir))
                print(f"\nInterrupted. Everything scored so far is saved. Resume with:\n  "
                      f"{resume_hint('run', store.dir, args.plugins)}", file=sys.stderr)
                return 130
            finally:
                logs.configure()  # closes the run's log.jsonl
                distributed.finish()
    except StorageError as exc:
        raise SealError(f"{exc} Nothing scored so far is lost. Free space (or make {store.dir} writable again), "
                        f"then continue with: {resume_hint('run', store.dir, args.plugins)}") from None
    if not distributed.is_main():
        return 0
    print((store.dir / "results.md").read_text(encoding="utf-8").split("\n\n")[1])
    print(f"\nRun directory: {store.dir}  (results.md, plot.png, rollouts.jsonl, metrics.jsonl, log.jsonl)")
    if args.push_to_hub:
        policy = store.dir / "checkpoints" / "policy"
        print(f"Pushed {policy} to {push_to_hub(policy, args.push_to_hub)}")
    return 0
