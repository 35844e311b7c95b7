"""``seal-run``: the command line; each command is a module of :mod:`seal_core.commands`.

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
import os
import sys

from seal_core import __version__
from seal_core.api.errors import SealError
from seal_core.commands import adapt, ask, baselines, compare, config, plugins, run

COMMANDS = (plugins, run, config, compare, baselines, adapt, ask)


def parser() -> argparse.ArgumentParser:
    """``seal-run``'s parser: each command module adds its own subcommand."""
    top = argparse.ArgumentParser(prog="seal-run", description="SEAL: self-adapting language models.")
    top.add_argument("--version", action="version", version=f"seal-run {__version__}")
    # the deepspeed launcher passes --local_rank=N first; the rank is read from LOCAL_RANK anyway
    top.add_argument("--local_rank", "--local-rank", type=int, help=argparse.SUPPRESS)
    sub = top.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub).set_defaults(handler=command.main)
    return top


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    args = parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    from seal_core.runtime import logs
    from seal_core.runtime.quiet import silence_third_parties

    logs.configure()
    silence_third_parties()
    try:
        return args.handler(args)
    except SealError as exc:
        print(f"seal-run: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `seal-run plugins --json | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        return 0


if __name__ == "__main__":
    sys.exit(main())
