#!/bin/bash
# the RL gain of configs/paper.yaml (round 1 - round 0), greedy and sampled, and what each round wrote
cd "$(git rev-parse --show-toplevel)"
R=benchmarks/results/2026-12-06-self-edit-or-steps
D=runs/science/rl-paper
S=${SEEDS:-$(ls -d $D/seed* | sort)}
{
for f in score_after sampled_score_after; do
  echo "## round 1 minus round 0, $f"
  .venv/bin/python -m seal_core.studies.power $S --against $S --round 1 --against-round 0 --field $f --seeds 3 --passages 24
done
} > $R/rl-paper-gain.txt
.venv/bin/python - $S > $R/rl-paper-rounds.md <<'PY'
import json, sys, statistics
keys = ["eval_adapted", "eval_sampled", "collapse_greedy_similarity", "collapse_greedy_lines", "collapse_greedy_tokens",
        "collapse_greedy_distinct_2", "collapse_sampled_similarity", "collapse_sampled_lines", "collapse_sampled_tokens",
        "collapse_sampled_distinct_2", "train_reward_mean", "n_kept", "kl", "sft_loss", "seconds"]
rows = {}
for d in sys.argv[1:]:
    for line in open(f"{d}/metrics.jsonl"):
        m = json.loads(line)
        rows.setdefault(m["round"], []).append(m)
present = [k for k in keys if any(k in m for ms in rows.values() for m in ms)]
print("| round | seeds | " + " | ".join(present) + " |")
print("|---:|---:|" + "---:|" * len(present))
for rnd, ms in sorted(rows.items()):
    cells = []
    for k in present:
        vals = [m[k] for m in ms if isinstance(m.get(k), (int, float))]
        cells.append(f"{statistics.fmean(vals):.3f}" if vals else "-")
    print(f"| {rnd} | {len(ms)} | " + " | ".join(cells) + " |")
print("\nMeans over the seeds that reached each round; every run's metrics.jsonl has the per-seed values.")
PY
cat $R/rl-paper-gain.txt $R/rl-paper-rounds.md
