"""reward.name: rollouts rewarded by one evaluator while the held-out table reports another."""

from __future__ import annotations

import json



def test_dense_reward_beside_the_qa_table(tiny_run):
    run_dir = tiny_run("domain.eval_limit=2", "reward.name=answer-likelihood", "algorithm.min_reward=-100")
    rollouts = [json.loads(l) for l in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    evaluations = [json.loads(l) for l in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    assert len(rollouts) == 4
    # rollouts: mean answer-token log-probs (negative, dense), the reward their difference
    for r in rollouts:
        assert r["score_before"] < 0 and "per_question" in r["details"]
        assert r["reward"] == r["score_after"] - r["score_before"]
    assert any(r["reward"] != 0 for r in rollouts)  # a random model's containment would be 0 everywhere
    # held-out: still the qa evaluator's containment, in [0, 1], with its predictions
    assert evaluations and all(0 <= e["score_after"] <= 1 and "predictions" in e["details"] for e in evaluations)
