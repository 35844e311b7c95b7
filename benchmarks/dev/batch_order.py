"""The inner updates of a round, with multi-lora's batches filled in the items' order or longest
training first: seconds (training and scoring apart) and whether the scores change.

    .venv/bin/python benchmarks/dev/batch_order.py RUN_DIR --items 15 --order as-written
    .venv/bin/python benchmarks/dev/batch_order.py RUN_DIR --items 15 --order longest-first
    .venv/bin/python benchmarks/dev/batch_order.py RUN_DIR --items 15 --order longest-first --max-adapters 16

RUN_DIR is a finished ``make run`` (or any run of a knowledge config): its round-0 rollouts (the
first ``--items``) are scored again with its config's inner loop and ``inner_runs``, exactly as the
engine's ``train_adapt`` phase scores them (``Scorer.score_edits``), from the initial policy. The
last line is one JSON object: wall, training and scoring seconds, the mean score, and how many
items scored exactly what the run recorded. Run each variant alone, one after another.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--items", type=int, default=15, help="round-0 rollouts scored (default 15)")
    parser.add_argument("--order", choices=("as-written", "longest-first"), default="longest-first")
    parser.add_argument("--max-adapters", type=int, help="inner.max_adapters (default: the run's)")
    args = parser.parse_args()

    from seal_core.api.types import EditItem
    from seal_core.hooks.registry import Registry
    from seal_core.loop.config import load_raw, resolve
    from seal_core.loop.scoring import Scorer
    from seal_core.loop.workbench import Workbench
    from seal_core.runtime.files import read_jsonl
    from seal_core.runtime.interrupt import StopFlag

    registry = Registry([])
    overrides = [f"inner.max_adapters={args.max_adapters}"] if args.max_adapters else []
    config = resolve(load_raw(str(args.run_dir / "config.yaml"), overrides), registry)
    workbench = Workbench(config, registry)
    train, evals = workbench.load_tasks()
    tasks = {t.id: t for t in [*train, *evals]}
    student = workbench.load(config.model.policy)
    evaluator = workbench.evaluators()[1]
    scorer = Scorer(evaluator, workbench, StopFlag())
    if args.order == "as-written":  # the batches before longest-first: the items' own order
        scorer.longest_first = lambda datas: list(range(len(datas)))
    recorded = [r for r in read_jsonl(args.run_dir / "rollouts.jsonl") if r["round"] == 0][:args.items]
    items = [EditItem(tasks[r["task_id"]], r["edit_index"], r["edit"]) for r in recorded]

    seconds = {"train": 0.0, "score": 0.0}

    def timed(owner, name, key):
        original = getattr(owner, name)

        def wrapper(*a, **k):
            started = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                seconds[key] += time.perf_counter() - started
        setattr(owner, name, wrapper)

    timed(workbench.updater, "adapt_batch", "train")
    timed(evaluator, "evaluate_routed", "score")
    scorer.prefetch(0, list({item.task.id: item.task for item in items}.values()), student)
    seconds["score"] = 0.0
    started = time.perf_counter()
    scored = {(s.item.task.id, s.item.index): s.score.value for s in scorer.score_edits(0, items, student, config.run.inner_runs)}
    wall = time.perf_counter() - started
    same = sum(abs(scored[(r["task_id"], r["edit_index"])] - r["score_after"]) < 1e-9 for r in recorded)
    print(json.dumps({"order": args.order, "max_adapters": workbench.updater.batch_capacity(), "items": len(items),
                      "inner_runs": config.run.inner_runs, "wall_s": round(wall, 1),
                      "train_s": round(seconds["train"], 1), "score_s": round(seconds["score"], 1),
                      "mean_score": sum(scored.values()) / len(scored), "recorded_mean": sum(r["score_after"] for r in recorded) / len(recorded),
                      "same_as_recorded": same}))


if __name__ == "__main__":
    main()
