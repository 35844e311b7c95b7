"""``seal-run config [--config FILE.yaml] [--set KEY=VALUE]...``: print the resolved config and exit."""

from __future__ import annotations

import argparse

from seal_core.commands.common import config_args, resolve


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser("config", help="print the resolved config and exit")
    config_args(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    _, config = resolve(args)
    print(config.to_yaml(), end="")
    return 0
