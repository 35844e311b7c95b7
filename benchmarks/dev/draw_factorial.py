"""Do the reference pattern's random draws score differently from ours? ``lora`` with the
reference Trainer's behaviours on the 8 bundled self-edits, its initial LoRA A and its data
order each drawn either the reference pattern's way or ``lora``'s.

    .venv/bin/python benchmarks/dev/draw_factorial.py --seed 0 --a ref --order ours   # ~3 min on a 2-core CPU

``reference_trace.py`` shows that, given the same initial A and data order, the reference pattern
(peft ``get_peft_model`` + transformers ``Trainer``) and ``lora`` run bit-identical steps and score
identically. What is left to differ between them is how those two draws are made:

- A, ``ref``: peft's own draw on a fresh ``get_peft_model`` after ``torch.manual_seed`` of the
  previous self-edit's seed (in the reference pattern the global RNG is left where the previous
  self-edit's ``Trainer(seed=...)`` put it; the first self-edit uses a fixed seed here);
  ``ours``: ``seeded_lora_a`` from a seed drawn after ``seed_all`` of the self-edit's seed
  (``inner.adapter_init=per-edit``);
- order, ``ref``: each epoch a ``torch.randperm`` from a generator seeded with the self-edit's seed
  plus the epoch (what the Trainer's sampler does: accelerate's seedable sampler);
  ``ours``: ``step_batches`` from the global RNG after ``seed_all`` (as ``lora`` draws it).

Prints one ``RESULT`` JSON line: per-edit greedy containment (``qa``) and answer log-prob (``dense``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent  # benchmarks/dev
sys.path.insert(0, str(HERE))  # benchmarks/dev: the diagnostics import each other
sys.path.insert(0, str(HERE.parent))  # benchmarks/: inner_loop
sys.path.insert(0, str(HERE.parents[1]))  # the checkout: run without installing

FIRST_EDIT_SEED = 12345  # the A draw of self-edit 0 under "ref" (no previous self-edit)


def reference_a(model_holder: dict, seed: int) -> dict:
    """peft's initial lora_A values by layer name, drawn on a fresh get_peft_model after manual_seed(seed)."""
    import torch
    from peft import LoraConfig, get_peft_model

    import inner_loop

    torch.manual_seed(seed)
    peft_model = get_peft_model(model_holder["model"], LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0,
                                                                  target_modules=inner_loop.TARGETS, task_type="CAUSAL_LM"))
    suffix = ".lora_A.default.weight"
    out = {n.removeprefix("base_model.model.").removesuffix(suffix): p.detach().clone()
           for n, p in peft_model.named_parameters() if n.endswith(suffix)}
    model_holder["model"] = peft_model.unload()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="run seed")
    parser.add_argument("--a", choices=["ref", "ours"], required=True, help="how the initial LoRA A is drawn")
    parser.add_argument("--order", choices=["ref", "ours"], required=True, help="how the data order is drawn")
    args = parser.parse_args()
    run = argparse.Namespace(edits=8, max_lines=8, data="bundled", model="embedded", inner=[], epochs=10, seed=args.seed)

    import torch

    import inner_loop
    import reference_trace
    import seal_core.inner.sequential as sequential
    from seal_core.inner.peft_lora import ADAPTER, draw_init_seed, seeded_lora_a
    from seal_core.models.loading import load_model
    from seal_core.runtime.seeding import seed_all
    from seal_plugins.lora_updater import LoraOptions, LoraUpdater

    tasks, datas, seeds, _ = inner_loop.workload(run)
    loaded = load_model("embedded")
    holder = {"model": load_model("embedded").model} if args.a == "ref" else {}
    suffix = f".lora_A.{ADAPTER}.weight"
    updater = LoraUpdater().configured(LoraOptions(**{**inner_loop.lora_options(run), **reference_trace.MATCH_REFERENCE}))
    real_batches, real_init = sequential.step_batches, LoraUpdater.initialise
    scores = []
    for i, (task, data, seed) in enumerate(zip(tasks, datas, seeds)):
        n = len(data.examples)
        seed_all(seed)  # what lora's adapt draws from: its A's seed first, then the epochs' shuffles
        init_seed = draw_init_seed(None)
        ours_order = [[j] for _ in range(run.epochs) for j in torch.randperm(n).tolist()]
        ref_order = [[j] for e in range(run.epochs)
                     for j in torch.randperm(n, generator=torch.Generator().manual_seed(seed + e)).tolist()]
        ref_a = reference_a(holder, seeds[i - 1] if i else FIRST_EDIT_SEED) if args.a == "ref" else None
        order = ref_order if args.order == "ref" else ours_order

        def initialise(self, student, ref_a=ref_a, init_seed=init_seed):
            params = [(name, p) for name, p in student.model.named_parameters() if name.endswith(suffix)]
            values = ([ref_a[name.removesuffix(suffix)] for name, _ in params] if ref_a is not None
                      else seeded_lora_a([p.shape for _, p in params], init_seed))
            with torch.no_grad():
                for (_, p), value in zip(params, values):
                    p.copy_(value)

        sequential.step_batches = lambda *a, order=order, **k: iter(order)
        LoraUpdater.initialise = initialise
        try:
            updater.adapt(loaded, data)
            scores.append(reference_trace.score(loaded, loaded.model, task))
            updater.reset(loaded)
        finally:
            sequential.step_batches, LoraUpdater.initialise = real_batches, real_init
    print("RESULT", json.dumps({"seed": args.seed, "a": args.a, "order": args.order, "qa": [s["qa"] for s in scores],
                                "dense": [round(s["dense"], 4) for s in scores],
                                "mean_qa": sum(s["qa"] for s in scores) / len(scores),
                                "mean_dense": sum(s["dense"] for s in scores) / len(scores)}))


if __name__ == "__main__":
    main()
