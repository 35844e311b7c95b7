"""``seal-run adapt --policy MODEL --documents PATH --out DIR [--merge] [--student MODEL]`` (or
``--resume DIR``): a trained policy writes self-edits for new documents and the student learns
them (:mod:`seal_core.deploy.adapter`)."""

from __future__ import annotations

import argparse

from seal_core.commands.common import check_arg, checked, config_args, free_output, resolve


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser("adapt", help="a trained policy writes self-edits for new documents; the student learns them")
    parser.add_argument("--policy", metavar="MODEL", help="the model that writes the self-edits (a run's checkpoints/policy, "
                        "a hub id, embedded)")
    parser.add_argument("--documents", metavar="PATH", help="a .txt, .md, .json or .jsonl file (records with a 'text' "
                        "field), or a folder of them")
    parser.add_argument("--out", metavar="DIR", help="a new output directory (adapters/, self_edits/, model/ with --merge)")
    parser.add_argument("--student", metavar="MODEL", help="the model that learns the documents (default: the policy itself)")
    parser.add_argument("--merge", action="store_true", help="learn the documents one after another into one model "
                        "(OUT/model) instead of an adapter per document")
    parser.add_argument("--limit", type=int, metavar="N", help="learn only the first N readable documents")
    parser.add_argument("--resume", metavar="OUT", help="continue an interrupted seal-run adapt in OUT with its own settings")
    config_args(parser, "YAML config file (domain.*, generator.*, inner.*, model.*)")
    check_arg(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    """Check everything, then adapt into OUT."""
    from seal_core.deploy.adapter import check_plan, plan_from_args, run_command

    plan, out = plan_from_args(args)  # with --resume, args.config becomes OUT/config.yaml
    registry, config = resolve(args)
    if args.check:
        check_plan(plan, config, registry)
        if not args.resume:
            free_output(out, "--out")
        return checked("adapt", out)
    return run_command(plan, out, config, registry, resumed=bool(args.resume), plugins=args.plugins)
