"""benchmarks/round.py on tiny-random: rounds 0 and 1 run, round 1's phases are timed and its last
line is the JSON summary (benchmarks/gpu_check.py runs it on a GPU, at the 0.5B shape)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "round.py"
TINY_ROUND = ["algorithm.min_reward=-1", "checkpoint=none", "domain.train_limit=2", "domain.eval_limit=2",
              "edits_per_task=2", "generator.max_new_tokens=8", "inner.epochs=1"]


def test_round_times_each_phase_of_round_1(tmp_path):
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, str(SCRIPT), "--model", "tiny-random", "--run-dir", str(run_dir),
                           *[a for s in TINY_ROUND for a in ("--set", s)]], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["scored"] == 2 * 2 + 2  # round 1: the sampled self-edits and the held-out ones
    assert set(result["phases"]) == {"eval_edits", "eval_base", "eval_adapt", "train_edits", "train_base",
                                     "train_adapt", "update", "checkpoint"}
    # each phase is rounded to 0.01 s and the round to 0.1 s: their sum may pass it by the roundings
    assert 0 < sum(result["phases"].values()) <= result["round_seconds"] + 0.05 + 0.005 * len(result["phases"])
    assert result["rollouts_per_minute"] == round(result["scored"] / (result["round_seconds"] / 60), 2)
    assert "| update |" in done.stdout
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == [0, 1]  # stopped after the measured round
