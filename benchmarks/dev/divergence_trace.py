"""Where do ``lora`` and ``multi-lora`` part ways on one self-edit? Per-step loss and adapter
weight norm of the same self-edit trained both ways, side by side.

    .venv/bin/python benchmarks/dev/divergence_trace.py --seed 0 --edit 0     # ~5 min on a 2-core CPU

The workload is ``inner_loop.py``'s (``--data bundled``, reference hyperparameters): ``lora``
trains self-edit ``--edit`` alone; ``multi-lora`` (K = 8, fp32) trains all 8 together, and its
adapter for that edit is traced. Both follow the same arithmetic up to float order (same
initialisation, data order, learning rate); the table shows each optimizer step's training loss
(before the step) and the Frobenius norm of all lora_B tensors (after it). Equal-to-ulp
trajectories that drift apart slowly and then suddenly, around a loss spike, are float-order
chaos; a difference from the first step, or a systematic one, would be a bug.

The step hooks are wrapped around the updaters from outside (this is a diagnostic), so nothing
in the updaters changes. The last line printed is one JSON object with both traces.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent  # benchmarks/dev
sys.path.insert(0, str(HERE))  # benchmarks/dev: the diagnostics import each other
sys.path.insert(0, str(HERE.parent))  # benchmarks/: inner_loop
sys.path.insert(0, str(HERE.parents[1]))  # the checkout: run without installing


def trace_lora(loaded, data, seed: int, args) -> list[dict]:
    import torch

    import seal_core.inner.sequential as sequential
    from seal_core.runtime.seeding import seed_all
    from seal_plugins.lora_updater import LoraOptions, LoraUpdater

    import inner_loop

    rows: list[dict] = []
    plain = torch.optim.AdamW

    class Traced(plain):
        def step(self, *a, **k):
            out = super().step(*a, **k)
            b = [p for g in self.param_groups for p in g["params"] if p.shape[-1] == 32 and p.shape[0] != 32]
            rows.append({"bnorm": math.sqrt(sum(float(p.detach().norm()) ** 2 for p in b))})
            return out

    losses: list[float] = []

    def recording_finite(x: float) -> bool:
        losses.append(x)
        return math.isfinite(x)

    sequential.torch.optim.AdamW = Traced
    sequential.math = type("TracedMath", (), {"isfinite": staticmethod(recording_finite)})
    try:
        up = LoraUpdater().configured(LoraOptions(**inner_loop.lora_options(args)))
        seed_all(seed)
        up.adapt(loaded, data)
        up.reset(loaded)
    finally:
        sequential.torch.optim.AdamW = plain
        sequential.math = math
    for row, loss in zip(rows, losses):
        row["loss"] = loss
    return rows


def trace_multi(loaded, datas, seeds, edit: int, args) -> list[dict]:
    import seal_plugins.multi_lora as multi_lora
    from seal_plugins.multi_lora import MultiLoraOptions, MultiLoraUpdater

    import inner_loop

    rows: list[dict] = []
    seen: dict = {}
    real_backward, real_step = multi_lora.MultiLoraUpdater._backward, multi_lora.StackedAdamW.step
    steps = [len(d.texts) * args.epochs for d in datas]  # batch size 1
    slot = sorted(range(len(datas)), key=lambda j: -steps[j]).index(edit)  # slots ordered by steps, stably

    def backward(self, model, installed, packs, weights):
        seen["installed"] = installed
        seen["means"] = real_backward(self, model, installed, packs, weights)
        return seen["means"]

    def step(self, n, at, lrs):
        real_step(self, n, at, lrs)
        layers = seen["installed"].layers
        rows.append({"loss": seen["means"][slot],
                     "bnorm": math.sqrt(sum(float(l.lora_B[slot].norm()) ** 2 for l in layers))})

    multi_lora.MultiLoraUpdater._backward, multi_lora.StackedAdamW.step = backward, step
    try:
        up = MultiLoraUpdater().configured(MultiLoraOptions(**inner_loop.lora_options(args, max_adapters=8, precision="fp32")))
        with up.adapted_batch(loaded, datas, seeds):
            pass
    finally:
        multi_lora.MultiLoraUpdater._backward, multi_lora.StackedAdamW.step = real_backward, real_step
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="run seed (data orders and adapter initialisations)")
    parser.add_argument("--edit", type=int, default=0, help="which of the 8 bundled self-edits to trace")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    args.edits, args.max_lines, args.data, args.model = 8, 8, "bundled", "embedded"

    from seal_core.models.loading import load_model

    import inner_loop

    tasks, datas, seeds, _ = inner_loop.workload(args)
    lora = trace_lora(load_model("embedded"), datas[args.edit], seeds[args.edit], args)
    multi = trace_multi(load_model("embedded"), datas, seeds, args.edit, args)
    print(f"self-edit {args.edit} ({tasks[args.edit].id}), seed {args.seed}: {len(lora)} steps")
    print(f"{'step':>4} {'loss lora':>10} {'loss K=8':>10} {'|diff|':>9} {'|B| lora':>9} {'|B| K=8':>9} {'rel diff':>9}")
    for i, (a, b) in enumerate(zip(lora, multi)):
        print(f"{i:>4} {a['loss']:>10.5f} {b['loss']:>10.5f} {abs(a['loss'] - b['loss']):>9.2e} {a['bnorm']:>9.4f} "
              f"{b['bnorm']:>9.4f} {abs(a['bnorm'] - b['bnorm']) / a['bnorm']:>9.2e}")
    print(json.dumps({"seed": args.seed, "edit": args.edit, "lora": lora, "multi_lora_k8": multi}))


if __name__ == "__main__":
    main()
