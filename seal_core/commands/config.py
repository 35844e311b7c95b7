"""``seal-run config [--config FILE.yaml] [--set KEY=VALUE]...``: print the resolved config, every key
and the domain's data checked, and exit."""

from __future__ import annotations

import argparse

from seal_core.commands.common import config_args, resolve


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser("config", help="print the resolved config, its keys and data checked, and exit")
    config_args(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    """Print the config once every key is checked and the domain's data reads (as ``run`` checks
    them before its run directory is made)."""
    from seal_core.loop.workbench import Workbench

    registry, config = resolve(args)
    Workbench(config, registry).load_tasks()
    print(config.to_yaml(), end="")
    return 0
