"""ARC end to end through the CLI on tiny-random: model-written self-edits, free (unparsable:
rejected with their reason, reward 0, no crash) and constrained to the domain's schema (every one
parses, trains and is scored; grpo reads constrained log-probs), and the fixed-configuration
baseline (real TTT)."""

from __future__ import annotations

import contextlib
import io
import json

from seal_core.runtime import logs
from seal_core.commands.main import main

COMMON = ["--set", "domain.name=arc", "--set", "model.policy=tiny-random", "--set", "rounds=1",
          "--set", "domain.train_limit=2", "--set", "domain.eval_limit=1", "--set", "domain.max_steps=2",
          "--set", "evaluator.transforms=identity,rot90", "--set", "evaluator.max_new_tokens=12",
          "--set", "checkpoint=none"]


def _run(tmp_path, name, extra):
    run_dir = tmp_path / name
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["run", "--run-dir", str(run_dir), *COMMON, *extra])
    logs.configure()  # close the run's log.jsonl
    assert rc == 0, err.getvalue()[-3000:]
    read = lambda f: [json.loads(line) for line in (run_dir / f).read_text(encoding="utf-8").splitlines()]  # noqa: E731
    return read("rollouts.jsonl"), read("metrics.jsonl"), read("evaluations.jsonl")


def test_model_written_edits_are_rejected_with_reason(tmp_path):
    rollouts, metrics, evaluations = _run(tmp_path, "model", [
        "--set", "edits_per_task=2", "--set", "generator.max_new_tokens=6", "--set", "generator.constrained=false"])
    assert len(rollouts) == 4 and len(metrics) == 2
    for r in rollouts:  # a random model writes no valid JSON
        assert r["reward"] == 0 and r["details"]["reason"]
    assert metrics[0]["train_rejected"] == 1.0 and metrics[0]["eval_rejected"] == 1.0
    assert evaluations[0]["reason"] and "solved" in evaluations[0]["details_before"]


def test_constrained_edits_are_never_rejected_and_grpo_reads_their_constrained_logprobs(tmp_path):
    rollouts, metrics, evaluations = _run(tmp_path, "constrained", [
        "--set", "edits_per_task=2", "--set", "generator.temperature=2.0", "--set", "algorithm.name=grpo"])
    assert len(rollouts) == 4 and metrics[0]["train_rejected"] == 0.0 and metrics[0]["eval_rejected"] == 0.0
    for r in rollouts:
        assert "reason" not in r["details"] and json.loads(r["edit"])["strategy"] in ("output", "all")
        forced = sum(lp == 0.0 for lp in r["logprobs"])  # keys and separators: log-prob 0 under the schema
        assert forced > len(r["logprobs"]) / 2 and all(lp <= 0.0 for lp in r["logprobs"])
    assert all(e["reason"] is None for e in evaluations)


def test_fixed_configuration_trains_and_scores(tmp_path):
    rollouts, metrics, evaluations = _run(tmp_path, "fixed", [
        "--set", "generator.name=arc-config", "--set", "generator.strategies=all",
        "--set", "edits_per_task=1", "--set", "algorithm.name=none"])
    assert len(rollouts) == 2 and all("reason" not in r["details"] for r in rollouts)
    assert all(r["details"]["attempts"] is not None and 0 <= r["score_after"] <= 1 for r in rollouts)
    assert json.loads(rollouts[0]["edit"])["strategy"] == "all"
    assert metrics[0]["train_rejected"] == 0.0 and evaluations[0]["reason"] is None
