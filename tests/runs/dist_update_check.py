"""Each outer update once in one process (plain, no DeepSpeed) and once data-parallel under
DeepSpeed on all ranks, from the same weights and rollouts; rank 0 writes, per case, the largest
weight difference, the largest change from the start, and the seconds each update took, to the
JSON file OUT.

    torchrun --nproc_per_node 2 tests/runs/dist_update_check.py OUT        # tests/runs/test_distributed.py (gloo)
    python tests/runs/dist_update_check.py OUT --device cuda --model random:qwen2.5-0.5b \
        --cases grpo:zero2,grpo:zero3,rest-em:zero2,rest-em:zero3     # benchmarks/gpu_check.py (one GPU, NCCL)

Started without a launcher, the DeepSpeed updates run in a one-rank group (NCCL on CUDA).
``rest-em`` draws its minibatches differently with and without DeepSpeed (docs/distributed.md),
so its difference is reported, not expected to be small. The rollouts have non-zero, unequal rewards (so advantages are
not all 0) and 5 of them with ``batch_size=3`` (so one minibatch has fewer items than there are
ranks and a rank takes a zero-weight stand-in).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch

from seal_core.runtime import distributed
from seal_core.api.components import UpdateContext
from seal_core.models.loading import load_model, plain_state_dict
from seal_core.hooks.registry import Registry
from seal_core.api.types import Rollout
from seal_core.rl.zero import load_config

CASES = "grpo:zero3,ppo:zero2"  # both update loops, both sharding stages


def rollouts() -> list[Rollout]:
    edits = ["The bell rings at noon.", "Old Margery is a bell", "noon", "A bell in Thrushby rings.", "x y z"]
    rewards = [0.5, -0.25, 0.0, 1.0, -0.5]
    return [Rollout(round=0, task_id=f"t{i % 2}", edit_index=i, prompt=f"Passage {i % 2}: a bell.",
                    edit=e, score_before=0.0, score_after=r, reward=r) for i, (e, r) in enumerate(zip(edits, rewards))]


def updated(name: str, deepspeed: dict | None, workdir: Path, args) -> tuple[dict[str, torch.Tensor], float]:
    """The policy's weights after one update (on the CPU, as float32), and the update's seconds."""
    registry = Registry()
    algorithm = registry.get("algorithm", name)
    wanted = {"learning_rate": 1e-3, "batch_size": 3, "max_grad_norm": 1.0}  # rest-em clips at 1 itself
    opts = algorithm.Options(**{k: v for k, v in wanted.items() if k in {f.name for f in dataclasses.fields(algorithm.Options)}})
    algorithm = algorithm.configured(opts)
    policy = load_model(args.model, device=args.device)
    context = UpdateContext(round=0, seed=7, workdir=workdir, deepspeed=deepspeed, components=registry.get)
    started = time.perf_counter()
    algorithm.update(policy, rollouts(), context)
    if policy.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {k: v.detach().float().cpu() for k, v in plain_state_dict(policy.model).items()}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="JSON file for the results (rank 0 writes it)")
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL)")
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--cases", default=CASES, help="comma-separated ALGORITHM:CONFIG pairs")
    parser.add_argument("--floor", action="store_true",
                        help="run each plain update twice and report their difference: the noise floor "
                             "(on CUDA some kernels, e.g. the embedding backward, add in varying order)")
    args = parser.parse_args()
    distributed.init(args.device, single=args.device.startswith("cuda"))
    results = {}
    start = {k: v.float().cpu() for k, v in load_model(args.model, device=args.device).model.state_dict().items()}
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            name, stage = case.split(":")
            plain, plain_s = updated(name, None, Path(tmp), args)
            sharded, sharded_s = updated(name, load_config(stage), Path(tmp), args)
            floor = None
            if args.floor:
                again, _ = updated(name, None, Path(tmp), args)
                floor = max(float((plain[k] - again[k]).abs().max()) for k in plain)
                del again
            results[f"{name}-{stage}"] = {
                "max_abs_diff": max(float((plain[k] - sharded[k]).abs().max()) for k in plain),
                "max_abs_change": max(float((plain[k] - start[k]).abs().max()) for k in plain),
                "plain_floor": floor,
                "finite": all(bool(torch.isfinite(v).all()) for v in sharded.values()),
                "plain_seconds": plain_s, "deepspeed_seconds": sharded_s,
                "world_size": distributed.world_size(),
                "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
            }
            del plain, sharded
            if distributed.is_main():  # after every case: a run stopped at a time limit keeps what it did
                Path(args.out).write_text(json.dumps(results, indent=1))
    distributed.finish()


if __name__ == "__main__":
    main()
