"""Run under ``torchrun --nproc_per_node N``: each policy-gradient update once in one process
(plain, no DeepSpeed) and once data-parallel under DeepSpeed on all N ranks, from the same weights
and rollouts; rank 0 writes the largest weight difference per case to the JSON file ``argv[1]``.

Used by tests/test_distributed.py. The rollouts have non-zero, unequal rewards (so advantages are
not all 0) and 5 of them with ``batch_size=3`` (so one minibatch has fewer items than there are
ranks and a rank takes a zero-weight stand-in).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

from seal_core import distributed
from seal_core.components import UpdateContext
from seal_core.models import load_model, plain_state_dict
from seal_core.registry import Registry
from seal_core.types import Rollout
from seal_core.zero import load_config

CASES = [("grpo", "zero3"), ("ppo", "zero2")]  # both update loops, both sharding stages


def rollouts() -> list[Rollout]:
    edits = ["The bell rings at noon.", "Old Margery is a bell", "noon", "A bell in Thrushby rings.", "x y z"]
    rewards = [0.5, -0.25, 0.0, 1.0, -0.5]
    return [Rollout(round=0, task_id=f"t{i % 2}", edit_index=i, prompt=f"Passage {i % 2}: a bell.",
                    edit=e, score_before=0.0, score_after=r, reward=r) for i, (e, r) in enumerate(zip(edits, rewards))]


def updated(name: str, deepspeed: dict | None, workdir: Path) -> dict[str, torch.Tensor]:
    registry = Registry()
    algorithm = registry.get("algorithm", name)
    opts = algorithm.Options(learning_rate=1e-3, batch_size=3, max_grad_norm=1.0)
    algorithm = algorithm.configured(opts)
    policy = load_model("tiny-random")
    context = UpdateContext(round=0, seed=7, workdir=workdir, deepspeed=deepspeed)
    algorithm.update(policy, rollouts(), context)
    return {k: v.detach().clone() for k, v in plain_state_dict(policy.model).items()}


def main(out: str) -> None:
    distributed.init("cpu")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, stage in CASES:
            plain = updated(name, None, Path(tmp))
            sharded = updated(name, load_config(stage), Path(tmp))
            start = load_model("tiny-random").model.state_dict()
            results[f"{name}-{stage}"] = {
                "max_abs_diff": max(float((plain[k] - sharded[k]).abs().max()) for k in plain),
                "max_abs_change": max(float((plain[k] - start[k]).abs().max()) for k in plain),
            }
    if distributed.is_main():
        Path(out).write_text(json.dumps(results, indent=1))
    distributed.finish()


if __name__ == "__main__":
    main(sys.argv[1])
