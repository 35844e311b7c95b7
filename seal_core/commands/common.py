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


def resolve(args: argparse.Namespace) -> tuple[Any, Any]:
    """(registry, validated config) of ``--plugins``, ``--config`` and ``--set``: every config
    error surfaces here, before any model loads."""
    from seal_core.hooks.registry import Registry
    from seal_core.loop.config import load_raw, resolve as resolve_config

    registry = Registry(args.plugins)
    return registry, resolve_config(load_raw(args.config, args.overrides), registry)


def resume_hint(command: str, directory: Path, plugins: list[str]) -> str:
    """The command that continues an interrupted ``seal-run COMMAND`` in ``directory``."""
    return f"seal-run {command} --resume {directory}" + "".join(f" --plugins {p}" for p in plugins)


# -- commands that run several variants (compare, baselines) --------------------------------------

#: the options of a multi-run command, saved in its directory (command.json) for --resume
MULTI_OPTIONS = ("config", "overrides", "plugins", "seeds", "against", "algorithms", "edits_file", "seal_rounds", "seal_run")


def multi_run_args(parser: argparse.ArgumentParser, kind: str) -> None:
    """``--seeds``, ``--against`` and where the output goes (``--run-dir``, ``--name``, ``--resume``)."""
    parser.add_argument("--seeds", metavar="N|A,B,...", help="run every variant at every seed: a count (3: seeds "
                        "0, 1, 2) or a list; the tables then give 95%% intervals over seeds and passages")
    parser.add_argument("--against", metavar="NAME", help="the variant paired differences are taken from (compare: "
                        "the first algorithm; baselines: passage-only)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--run-dir", metavar="DIR", help=f"output directory (default: runs/<time>-{kind})")
    where.add_argument("--name", metavar="NAME", help="write the output to runs/NAME")
    where.add_argument("--resume", metavar="DIR", help="continue the command that wrote DIR, with its own "
                       "options: finished runs are kept, unfinished ones resumed")


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


def out_dir(args: argparse.Namespace, kind: str) -> Path:
    """A new, empty directory for a multi-run command (its options in command.json), or with
    ``--resume`` the existing one; its log.jsonl opened."""
    from seal_core.runs.store import RUNS_DIR, named_run_dir
    from seal_core.runtime import logs
    from seal_core.runtime.files import atomic_write_text

    if args.resume:
        directory = Path(args.resume)
        logs.configure(directory / "log.jsonl")
        return directory
    if args.run_dir:
        directory = Path(args.run_dir)
    elif args.name:
        directory = named_run_dir(args.name, RUNS_DIR)
    else:
        directory = RUNS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}"
    if directory.exists() and any(directory.iterdir()):
        raise SealError(f"Output directory '{directory}' already holds files; pass a new --run-dir.")
    directory.mkdir(parents=True, exist_ok=True)
    options = {k: getattr(args, k) for k in MULTI_OPTIONS if hasattr(args, k)}
    atomic_write_text(directory / "command.json", json.dumps({"command": kind, "options": options}, indent=1))
    logs.configure(directory / "log.jsonl")
    return directory


def run_many(command: str, directory: Path, run: Callable[[Any], str], where: str) -> int:
    """Run a multi-run command (``run(stop) -> table``); Ctrl-C keeps the finished runs."""
    from seal_core.runtime import logs
    from seal_core.runtime.interrupt import Interrupted, StopFlag

    stop = StopFlag()
    try:
        with stop.on_sigint():
            table = run(stop)
    except Interrupted:
        print(f"\nInterrupted. Finished runs are kept in {directory}; continue with:\n  seal-run {command} --resume "
              f"{directory}", file=sys.stderr)
        return 130
    finally:
        logs.configure()
    print(table)
    print(f"\n{where}")
    return 0
