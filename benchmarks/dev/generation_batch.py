"""Seconds per self-edit of hf-generate at several prompts per call (``generator.batch_size``), on
make run's workload: the embedded model, the bundled passages, 128-token self-edits, the held-out
greedy ones (6 tasks) and the sampled ones (6 tasks x 3; ``--tasks`` more). How the default batch size was chosen.

    .venv/bin/python benchmarks/dev/generation_batch.py [--sizes 1,2,3,6] [--repeats 2] [--tasks 6]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from seal_core.models.loading import load_model  # noqa: E402
from seal_core.runtime.seeding import seed_all  # noqa: E402
from seal_domains.knowledge import KnowledgeDomain, KnowledgeOptions  # noqa: E402
from seal_plugins.hf_generate import HFGenerate, HFGenerateOptions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,2,3,6")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=6, help="tasks of each kind (make run: 6; 12 at most)")
    args = parser.parse_args()
    model = load_model("embedded")
    domain = KnowledgeDomain().configured(KnowledgeOptions())
    held_out = [domain.edit_prompt(t) for t in domain.load_tasks("eval")[:args.tasks]]
    train = [domain.edit_prompt(t) for t in domain.load_tasks("train")[:args.tasks]]
    result = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        generator = HFGenerate().configured(HFGenerateOptions(max_new_tokens=128, batch_size=size))
        for label, prompts, k, greedy in (("greedy", held_out, 1, True), ("sampled", train, 3, False)):
            times = []
            for repeat in range(args.repeats):
                seed_all(repeat)
                started = time.perf_counter()
                for i in range(0, len(prompts), size):
                    generator.generate(model, prompts[i:i + size], k, greedy=greedy)
                times.append(time.perf_counter() - started)
            per_edit = min(times) / (len(prompts) * k)
            result[f"{label}_batch{size}"] = round(per_edit, 3)
            print(f"batch {size} {label}: {per_edit:.2f} s per self-edit (best of {args.repeats})", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
