"""``seal-run ask MODEL "question"``: a saved model's (or adapter's) answer, without the document
(:mod:`seal_core.deploy.ask`)."""

from __future__ import annotations

import argparse

from seal_core.commands.common import check_arg


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser("ask", help="ask a saved model or adapter a question, without the document")
    parser.add_argument("model", metavar="MODEL", help="a model directory (checkpoints/policy, adapt's OUT/model) or a "
                        "peft adapter directory (OUT/adapters/NAME)")
    parser.add_argument("question")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--max-new-tokens", type=int, default=32, metavar="N")
    parser.add_argument("--chat-template", choices=("auto", "none"), default="auto",
                        help="none: a plain-text prompt, for a model adapted with model.chat_template=none")
    check_arg(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    from seal_core.deploy.ask import ask, check_model, load_for_asking

    if args.check:
        check_model(args.model)
        print(f"seal-run ask --check: {args.model} is a model or adapter to load. Nothing was asked.")
        return 0
    print(ask(load_for_asking(args.model, args.device, args.chat_template), args.question, args.max_new_tokens))
    return 0
