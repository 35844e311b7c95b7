"""What several ``seal-run`` commands share: their common options, resolving the config, and the
output directory of the commands that run several variants (``compare``, ``baselines``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from seal_core.api.errors import SealError


def plugin_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugins", action="append", default=[], metavar="X",
                        help="extra plugin: an importable module name or a .py file (repeatable)")


def config_args(parser: argparse.ArgumentParser, config_help: str = "YAML config file") -> None:
    """``--config``, ``--set`` (repeatable) and ``--plugins``."""
    parser.add_argument("--config", metavar="FILE.yaml", help=config_help)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one config key, e.g. --set rounds=3 (repeatable)")
    plugin_arg(parser)


def check_arg(parser: argparse.ArgumentParser) -> None:
    """``--check``: everything the command checks before it starts work, and nothing more."""
    parser.add_argument("--check", action="store_true", help="check the arguments, every config key, the data, the "
                        "models' specs and the output directory, then exit without running anything")


def free_output(directory: Path, flag: str) -> None:
    """Refuse an output directory that already holds files (as the commands do when they make it)."""
    if directory.exists() and any(directory.iterdir()):
        raise SealError(f"{flag} {directory}: that directory already holds files. Pass a new one, or remove it if "
                        "you no longer need it.")


def checked(command: str, where: Path) -> int:
    """What ``--check`` prints when every check passed."""
    print(f"seal-run {command} --check: the arguments, the config, the data and the models' specs are fine; it "
          f"would write to {where}. Nothing was run.")
    return 0


def resolve(args: argparse.Namespace) -> tuple[Any, Any]:
    """(registry, validated config) of ``--plugins``, ``--config`` and ``--set``: every config
    error surfaces here, before any model loads."""
    from seal_core.hooks.registry import Registry
    from seal_core.loop.config import load_raw, resolve as resolve_config

    registry = Registry(args.plugins)
    return registry, resolve_config(load_raw(args.config, args.overrides), registry)


def check_data(configs: Any, registry: Any) -> None:
    """Load every config's tasks once, so that a data error stops a multi-run command before its
    output directory is made (the runs load them again, cheaply)."""
    from seal_core.loop.workbench import Workbench

    for config in configs:
        Workbench(config, registry).load_tasks()


def resume_hint(command: str, directory: Path, plugins: list[str]) -> str:
    """The command that continues an interrupted ``seal-run COMMAND`` in ``directory``."""
    return f"seal-run {command} --resume {directory}" + "".join(f" --plugins {p}" for p in plugins)


# -- commands that run several variants (compare, baselines) --------------------------------------

#: the options of a multi-run command, saved in its directory (command.json) for --resume
MULTI_OPTIONS = ("config", "overrides", "plugins", "seeds", "against", "algorithms", "edits_file", "seal_rounds", "seal_run",
                 "controls")


def multi_run_args(parser: argparse.ArgumentParser, kind: str) -> None:
    """``--seeds``, ``--against`` and where the output goes (``--run-dir``, ``--name``, ``--resume``)."""
    parser.add_argument("--seeds", metavar="N|A,B,...", help="run every variant at every seed: a count (3: seeds "
                        "0, 1, 2) or a list; the tables then give 95%% intervals over seeds and passages")
    parser.add_argument("--against", metavar="NAME", help="the variant paired differences are taken from (compare: "
                        "the first algorithm; baselines: passage-only, or several, comma-separated)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--run-dir", metavar="DIR", help=f"output directory (default: runs/<time>-{kind})")
    where.add_argument("--name", metavar="NAME", help="write the output to runs/NAME")
    where.add_argument("--resume", metavar="DIR", help="continue the command that wrote DIR, with its own "
                       "options: finished runs are kept, unfinished ones resumed")
    check_arg(parser)


def resume_multi(args: argparse.Namespace, kind: str) -> None:
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


def out_path(args: argparse.Namespace, kind: str) -> Path:
    """Where a multi-run command writes: ``--resume``'s, ``--run-dir``'s, ``runs/NAME`` or ``runs/<time>-KIND``."""
    from seal_core.runs.store import RUNS_DIR, named_run_dir

    if args.resume:
        return Path(args.resume)
    if args.run_dir:
        return Path(args.run_dir)
    if args.name:
        return named_run_dir(args.name, RUNS_DIR)
    return RUNS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}"


def check_out_dir(args: argparse.Namespace, kind: str) -> Path:
    """``--check``: the directory a multi-run command would write, refused where ``out_dir`` would."""
    directory = out_path(args, kind)
    if not args.resume:
        free_output(directory, "--run-dir")
    return directory


def out_dir(args: argparse.Namespace, kind: str) -> Path:
    """A new, empty directory for a multi-run command (its options in command.json), or with
    ``--resume`` the existing one; its log.jsonl opened."""
    from seal_core.runtime import logs
    from seal_core.runtime.files import StorageError, atomic_write_text, writable, writing

    directory = out_path(args, kind)
    if not args.resume:
        free_output(directory, "--run-dir")
    try:
        if not args.resume:
            with writing(directory):
                directory.mkdir(parents=True, exist_ok=True)
        writable(directory)
        if not args.resume:
            options = {k: getattr(args, k) for k in MULTI_OPTIONS if hasattr(args, k)}
            atomic_write_text(directory / "command.json", json.dumps({"command": kind, "options": options}, indent=1))
    except StorageError as exc:
        raise SealError(f"{exc} Nothing has run yet. Free space (or make the directory writable), or pass a "
                        "--run-dir on a disk that can be written, and run the same command again.") from None
    logs.configure(directory / "log.jsonl")
    return directory


def run_many(command: str, directory: Path, run: Callable[[Any], str], where: str) -> int:
    """Run a multi-run command (``run(stop) -> table``) holding its directory's lock; Ctrl-C (or
    SIGTERM) keeps the finished runs."""
    from seal_core.runs.lock import RunLock
    from seal_core.runtime import logs
    from seal_core.runtime.files import StorageError
    from seal_core.runtime.interrupt import Interrupted, StopFlag

    hint = f"seal-run {command} --resume {directory}"
    stop = StopFlag()
    try:
        with RunLock(directory, f"seal-run {command}"), stop.on_sigint():
            table = run(stop)
    except Interrupted:
        print(f"\nInterrupted. Finished runs are kept in {directory}; continue with:\n  {hint}", file=sys.stderr)
        return 130
    except StorageError as exc:
        raise SealError(f"{exc} Finished runs are kept. Free space (or make {directory} writable again), then "
                        f"continue with: {hint}") from None
    finally:
        logs.configure()
    print(table)
    print(f"\n{where}")
    return 0
