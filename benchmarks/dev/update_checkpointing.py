"""rest-em's update with gradient checkpointing on (TRL's default) and off: seconds and loss.

    .venv/bin/python benchmarks/dev/update_checkpointing.py RUN_DIR [--repeats 2]

RUN_DIR: a finished run of make run's config: its round-0 rollouts are the data, selected and
trained with make run's rest-em options (top 1 per task above reward 0, lr 5e-4, 3 epochs,
batch 2). The embedded model updates on them with
``gradient_checkpointing`` true and false, alternating, from the same weights; each update's
wall time and SFT loss is printed, then one JSON line. The losses must be equal: recomputing
activations changes the time, not the arithmetic.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from seal_core import Rollout, UpdateContext  # noqa: E402
from seal_core.models.loading import load_model, plain_copy  # noqa: E402
from seal_plugins.rest_em import RestEM, RestEMOptions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rollouts = [Rollout.from_json(json.loads(line)) for line in (args.run_dir / "rollouts.jsonl").read_text().splitlines()
                if line.strip() and json.loads(line)["round"] == 0]
    base = load_model("embedded", device="cpu")
    results: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, flag in (("on", True), ("off", False)):
                policy = plain_copy(base)
                algorithm = RestEM().configured(RestEMOptions(learning_rate=5e-4, epochs=3, batch_size=2,
                                                                gradient_checkpointing=flag))
                began = time.perf_counter()
                stats = algorithm.update(policy, rollouts, UpdateContext(round=0, seed=0, workdir=Path(tmp)))
                seconds = time.perf_counter() - began
                results[name].append((round(seconds, 1), stats["sft_loss"]))
                print(f"gradient_checkpointing {name}: {seconds:.1f} s, {stats['n_kept']} kept, loss {stats['sft_loss']:.6f}",
                      flush=True)
    best = {name: min(s for s, _ in runs) for name, runs in results.items()}
    print(json.dumps({"seconds": results, "best_on": best["on"], "best_off": best["off"],
                      "saving": round(1 - best["off"] / best["on"], 3)}))


if __name__ == "__main__":
    main()
