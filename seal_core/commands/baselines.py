"""``seal-run baselines [--edits-file F.json] [--seal-rounds N | --seal-run DIR] [same options as
run]``: the paper's knowledge-incorporation baselines table (:mod:`seal_core.studies.baselines`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from seal_core.api.errors import SealError
from seal_core.commands.common import (check_data, check_out_dir, checked, config_args, multi_run_args, out_dir,
                                       resume_multi, run_many)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser("baselines", help="the paper's knowledge-incorporation baselines table, in one command")
    config_args(parser)
    parser.add_argument("--edits-file", metavar="FILE.json", help="self-edits for the from-file row (SEAL format with completions)")
    seal = parser.add_mutually_exclusive_group()
    seal.add_argument("--seal-rounds", type=int, metavar="N", help="run SEAL for N rounds for the last row")
    seal.add_argument("--seal-run", metavar="RUN_DIR", help="take the last row from this finished run")
    parser.add_argument("--controls", action="store_true",
                        help="add the step-matched controls: the passage as lines, and the passage repeated to the "
                             "optimizer steps the own self-edits trained")
    multi_run_args(parser, "baselines")
    return parser


def main(args: argparse.Namespace) -> int:
    from seal_core.hooks.registry import Registry
    from seal_core.studies.baselines import baseline_configs, point_controls, run_baselines
    from seal_core.studies.variants import parse_seeds

    if args.resume:
        resume_multi(args, "baselines")
    registry = Registry(args.plugins)
    if args.seal_rounds is not None and args.seal_rounds < 1:
        raise SealError(f"--seal-rounds must be >= 1, got {args.seal_rounds}.")
    seal_run = Path(args.seal_run) if args.seal_run else None
    if seal_run is not None and not (seal_run / "metrics.jsonl").is_file():
        raise SealError(f"--seal-run {seal_run}: no metrics.jsonl there; pass the directory of a finished run.")
    configs = baseline_configs(args.config, args.overrides, registry, args.edits_file, args.seal_rounds,
                               args.controls)
    seeds = parse_seeds(args.seeds)
    against = (args.against or "passage-only").split(",")
    unknown = [name for name in against if name not in [*configs, "no-adaptation"]]
    if unknown:
        raise SealError(f"--against {','.join(unknown)}: not among the baselines run ({', '.join(['no-adaptation', *configs])}); "
                        "name one or several of them, comma-separated.")
    check_data(configs.values(), registry)  # data errors before the output directory is made
    if args.check:
        return checked("baselines", check_out_dir(args, "baselines"))
    directory = out_dir(args, "baselines")
    configs = point_controls(configs, directory, seeds)
    argv = " ".join(["baselines", *(["--config", args.config] if args.config else []),
                     *[f"--set {o}" for o in args.overrides], *(["--edits-file", args.edits_file] if args.edits_file else []),
                     *(["--seal-rounds", str(args.seal_rounds)] if args.seal_rounds else []),
                     *(["--seal-run", args.seal_run] if args.seal_run else []),
                     *(["--controls"] if args.controls else []), "--run-dir", str(directory)])
    where = "<variant>/seed<S>/" if seeds else "<variant>/"
    return run_many("baselines", directory,
                    lambda stop: run_baselines(configs, registry, directory, stop, seal_run, argv, seeds, against),
                    f"Baselines: {directory}/baselines.md; each run in {directory}/{where}; continue an "
                    f"interrupted one with seal-run baselines --resume {directory}")
