"""Scoring with the questions' common prompt prefix computed once per adapter against every row
computing its whole prompt, on make run's workload: the embedded model, K = 8 adapters trained
together (multi-lora, make run's inner options) on 8 generated passages, each adapter answering its
passage's questions in one routed ``generate`` call; and the unadapted model answering the same
questions. Alternating repeats in one process; the share of identical answers is reported.

    .venv/bin/python benchmarks/dev/shared_prefix.py [--repeats 3] [--tasks 8] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: round's cpu_name
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from seal_core.evaluation.qa import QUESTION_PROMPT, QAEvaluator  # noqa: E402
from seal_core.models.generation import generate_texts  # noqa: E402
from seal_core.models.loading import load_model  # noqa: E402
from seal_core.models.prompting import format_prompt  # noqa: E402
from seal_core.models.shared_prefix import SharedRows, common_prefix  # noqa: E402
from seal_core.api.types import TrainingSet  # noqa: E402
from seal_domains.knowledge import KnowledgeDomain, KnowledgeOptions  # noqa: E402
from seal_plugins.multi_lora import MultiLoraOptions, MultiLoraUpdater  # noqa: E402
from round import cpu_name  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=8, help="passages, one adapter each")
    parser.add_argument("--epochs", type=int, default=2, help="inner epochs of the adapters (make run: 5)")
    args = parser.parse_args()
    student = load_model("embedded")
    model, tokenizer = student.model, student.tokenizer
    domain = KnowledgeDomain().configured(KnowledgeOptions())
    tasks = domain.load_tasks("train", "synthetic:400:1")[:args.tasks]
    questions = [q["question"] for t in tasks for q in t.evaluation["questions"]]
    owners = [j for j, t in enumerate(tasks) for _ in t.evaluation["questions"]]
    inputs = [format_prompt(tokenizer, QUESTION_PROMPT.format(question=q)) for q in questions]
    rows = tokenizer(inputs, add_special_tokens=False)["input_ids"]
    max_new = QAEvaluator().options.max_new_tokens
    print(f"# {cpu_name()}; {len(tasks)} adapters, {len(inputs)} questions, prompts of {min(map(len, rows))}-"
          f"{max(map(len, rows))} tokens, {common_prefix(rows)} shared; answers up to {max_new} tokens", flush=True)
    updater = MultiLoraUpdater().configured(MultiLoraOptions(r=32, alpha=64, learning_rate=1e-3, epochs=args.epochs,
                                                             batch_size=1, lr_schedule="constant", max_adapters=len(tasks)))
    datas = [TrainingSet.from_texts(domain.training_texts(t, "")) for t in tasks]
    seconds: dict[str, list[float]] = {}
    answers: dict[str, list[str]] = {}

    def timed(label, call):
        start = time.perf_counter()
        answers[label] = call()
        seconds.setdefault(label, []).append(time.perf_counter() - start)

    with updater.adapted_batch(student, datas, list(range(len(tasks)))) as batch:
        def routed_plain():
            with batch.rows(owners):
                return generate_texts(model, tokenizer, inputs, max_new_tokens=max_new, first_line=True)

        def routed_shared():
            return generate_texts(model, tokenizer, inputs, max_new_tokens=max_new, first_line=True,
                                  shared=SharedRows(owners, batch.rows))

        for _ in range(args.repeats):
            timed("adapted, whole prompts", routed_plain)
            timed("adapted, shared prefix", routed_shared)
    for _ in range(args.repeats):
        timed("base, whole prompts", lambda: generate_texts(model, tokenizer, inputs, max_new_tokens=max_new, first_line=True))
        timed("base, shared prefix", lambda: generate_texts(model, tokenizer, inputs, max_new_tokens=max_new,
                                                            first_line=True, shared=SharedRows()))
    result = {}
    print("| scoring | seconds (each repeat) | median |")
    print("| --- | --- | ---: |")
    for label, times in seconds.items():
        median = sorted(times)[len(times) // 2]
        result[label] = round(median, 2)
        print(f"| {label} | {', '.join(f'{t:.2f}' for t in times)} | {median:.2f} |")
    for kind in ("adapted", "base"):
        plain, shared = answers[f"{kind}, whole prompts"], answers[f"{kind}, shared prefix"]
        same = sum(a == b for a, b in zip(plain, shared))
        result[f"{kind}_speedup"] = round(result[f"{kind}, whole prompts"] / result[f"{kind}, shared prefix"], 2)
        result[f"{kind}_identical_answers"] = f"{same}/{len(plain)}"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
