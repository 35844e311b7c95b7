"""The spread of the inner loop's scores over data orders: ``inner_loop.py`` once per seed, then each
path's mean score with a 95% interval over seeds, and each path's paired difference from a
reference path (same seed, same passages) with its interval.

    .venv/bin/python benchmarks/seed_spread.py --seeds 0,1,2,3,4 --data bundled \\
        --paths reference,lora,multi-lora-k8-fp32        # ~10 min per seed on a 2-core CPU

Every other option goes to ``inner_loop.py`` unchanged. A seed changes each self-edit's data order
(the order of its texts in each epoch) and the reference Trainer's seed; LoRA's initial values
do not change (``lora`` and ``multi-lora`` draw them under seed 0). The interval is Student's t
over the per-seed means (the seeds are the replicates); it does not cover the sampling of
passages and questions, which stay fixed. Each seed's full JSON line is kept in the output, and
the last line printed is one JSON object with the table.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# two-sided 95% quantiles of Student's t, by degrees of freedom (1..30)
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
       2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
       2.045, 2.042]


def interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval); the half-width is nan for one value."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    t = T95[min(len(values) - 1, len(T95)) - 1]
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated run seeds")
    parser.add_argument("--against", default="reference", help="the path the paired differences are taken from")
    args, rest = parser.parse_known_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = []
    for seed in seeds:
        proc = subprocess.run([sys.executable, str(HERE / "inner_loop.py"), *rest, "--seed", str(seed)],
                              capture_output=True, text=True)
        lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
        if proc.returncode or not lines:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
            raise SystemExit(f"inner_loop.py failed at seed {seed} (exit {proc.returncode})")
        runs.append(json.loads(lines[-1]))
        print(f"seed {seed}: " + ", ".join(f"{p} {v:.3f}" for p, v in runs[-1]["mean_score"].items()), flush=True)
        print(lines[-1], flush=True)
    paths = list(runs[0]["mean_score"])
    passages = len(runs[0]["scores"][paths[0]])  # one score per passage: the mean over its questions
    table = {}
    for path in paths:
        mean, half = interval([r["mean_score"][path] for r in runs])
        row = {"mean": mean, "ci95": half, "per_seed": [r["mean_score"][path] for r in runs],
               "seconds_per_edit": statistics.fmean(r["seconds_per_edit"][path] for r in runs)}
        if args.against in paths and path != args.against:
            diff, dhalf = interval([r["mean_score"][path] - r["mean_score"][args.against] for r in runs])
            row |= {f"minus_{args.against}": diff, f"minus_{args.against}_ci95": dhalf}
        table[path] = row
    print(f"\n{len(seeds)} seeds x {passages} passages ({runs[0]['source']}), {runs[0]['epochs']} epochs; "
          f"mean score with 95% t-interval over seeds; paired difference from {args.against}:")
    for path, row in table.items():
        diff = (f"   {row[f'minus_{args.against}']:+.3f} ± {row[f'minus_{args.against}_ci95']:.3f}"
                if f"minus_{args.against}" in row else "")
        print(f"{path:>22}: {row['mean']:.3f} ± {row['ci95']:.3f}{diff}   ({row['seconds_per_edit']:.1f} s/edit)")
    print(json.dumps({"seeds": seeds, "passages": passages, "source": runs[0]["source"], "epochs": runs[0]["epochs"],
                      "against": args.against, "paths": table}))


if __name__ == "__main__":
    main()
