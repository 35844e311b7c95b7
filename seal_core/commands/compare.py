"""``seal-run compare --algorithms rest-em,grpo,ppo,rloo [same options as run]``: several RL
algorithms from one config and seed, side by side (:mod:`seal_core.studies.compare`)."""

from __future__ import annotations

import argparse

from seal_core.api.errors import SealError
from seal_core.commands.common import (check_data, check_out_dir, checked, config_args, multi_run_args, out_dir,
                                       resume_multi, run_many)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser("compare", help="run several RL algorithms from one seed and budget, side by side")
    config_args(parser)
    parser.add_argument("--algorithms", metavar="A,B,...", help="comma-separated algorithm names, e.g. rest-em,grpo,ppo,rloo")
    multi_run_args(parser, "compare")
    return parser


def main(args: argparse.Namespace) -> int:
    from seal_core.hooks.registry import Registry
    from seal_core.studies.compare import resolve_all, run_compare
    from seal_core.studies.variants import parse_seeds

    if args.resume:
        resume_multi(args, "compare")
    if not args.algorithms:
        raise SealError("seal-run compare needs --algorithms A,B,... (e.g. rest-em,grpo,ppo,rloo), or --resume DIR.")
    registry = Registry(args.plugins)
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    configs = resolve_all(args.config, args.overrides, algorithms, registry)  # all checked up front
    seeds = parse_seeds(args.seeds)
    if args.against and args.against not in algorithms:
        raise SealError(f"--against {args.against}: not one of the algorithms compared ({', '.join(algorithms)}).")
    check_data(configs.values(), registry)  # data errors before the output directory is made
    if args.check:
        return checked("compare", check_out_dir(args, "compare"))
    directory = out_dir(args, "compare")
    where = "<algorithm>/seed<S>/" if seeds else "<algorithm>/"
    return run_many("compare", directory, lambda stop: run_compare(configs, registry, directory, stop, seeds, args.against),
                    f"Comparison: {directory}/comparison.md, comparison.png; each run in {directory}/{where}; "
                    f"continue an interrupted one with seal-run compare --resume {directory}")
