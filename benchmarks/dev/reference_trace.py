"""Does ``lora`` do the reference pattern's arithmetic? One self-edit trained both ways from the
same start, step by step.

    .venv/bin/python benchmarks/dev/reference_trace.py --seed 0 --edit 0     # ~2 min on a 2-core CPU

The workload is ``inner_loop.py``'s (``--data bundled``, reference hyperparameters). ``lora`` runs
with the reference Trainer's behaviours switched on (eos masked, linear decay, clipping at 1). The
reference pattern (a fresh peft ``get_peft_model`` and a transformers ``Trainer``) is then given
``lora``'s initial ``lora_A`` and ``lora``'s data order (the Trainer reads the steps' examples in
sequence, one epoch over the concatenated order, so its linear schedule spans the same steps), so
the two differ only in machinery: PeftModel against injected adapters, the Trainer's loss
normalisation, optimizer call and loop against ours. The table shows each step's loss (before
the step) and the Frobenius norm of all lora_B tensors (after it). Agreement to rounding at the
first steps means the machinery does the same arithmetic; a difference from step 0 names a cause.
The last line printed is one JSON object with both traces.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent  # benchmarks/dev
sys.path.insert(0, str(HERE))  # benchmarks/dev: the diagnostics import each other
sys.path.insert(0, str(HERE.parent))  # benchmarks/: inner_loop
sys.path.insert(0, str(HERE.parents[1]))  # the checkout: run without installing

MATCH_REFERENCE = {"loss_on_eos": False, "lr_schedule": "linear", "max_grad_norm": 1.0}


def b_norm(params) -> float:
    return math.sqrt(sum(float(p.detach().norm()) ** 2 for p in params))


def trace_lora(loaded, task, data, seed: int, args) -> tuple[list[dict], dict, list[list[int]], dict]:
    """lora's per-step trace, its initial lora_A by layer name, its data order and its scores."""
    import torch

    import seal_core.inner.sequential as sequential
    from seal_core.inner.peft_lora import ADAPTER
    from seal_core.runtime.seeding import seed_all
    from seal_plugins.lora_updater import LoraOptions, LoraUpdater

    import inner_loop

    rows: list[dict] = []
    order: list[list[int]] = []
    initial: dict = {}
    plain, plain_batches = torch.optim.AdamW, sequential.step_batches
    suffix = f".lora_A.{ADAPTER}.weight"

    class Traced(plain):
        def step(self, *a, **k):
            out = super().step(*a, **k)
            rows.append({"bnorm": b_norm([p for n, p in loaded.model.named_parameters() if ".lora_B." in n])})
            return out

    def batches(*a, **k):
        initial.update({n.removesuffix(suffix): p.detach().clone()
                        for n, p in loaded.model.named_parameters() if n.endswith(suffix)})
        for step in plain_batches(*a, **k):
            order.append(step)
            yield step

    losses: list[float] = []

    def recording_finite(x: float) -> bool:
        losses.append(x)
        return math.isfinite(x)

    sequential.torch.optim.AdamW, sequential.step_batches = Traced, batches
    sequential.math = type("TracedMath", (), {"isfinite": staticmethod(recording_finite)})
    try:
        up = LoraUpdater().configured(LoraOptions(**{**inner_loop.lora_options(args), **MATCH_REFERENCE}))
        seed_all(seed)
        up.adapt(loaded, data)
        scores = score(loaded, loaded.model, task)
        up.reset(loaded)
    finally:
        sequential.torch.optim.AdamW, sequential.step_batches = plain, plain_batches
        sequential.math = math
    for row, loss in zip(rows, losses):
        row["loss"] = loss
    return rows, initial, order, scores


def score(loaded, model, task) -> dict:
    """The adapted model's greedy ``qa`` score and dense answer log-prob on the passage's questions."""
    from seal_core.evaluation.answer_likelihood import AnswerLikelihoodEvaluator
    from seal_core.evaluation.qa import QAEvaluator

    return {"qa": QAEvaluator().evaluate(model, loaded.tokenizer, task).value,
            "dense": AnswerLikelihoodEvaluator().evaluate(model, loaded.tokenizer, task).value}


def trace_reference(loaded, task, data, initial: dict, order: list[list[int]], args) -> tuple[list[dict], dict]:
    """The reference pattern from lora's start and in lora's data order: its trace and scores."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import SequentialSampler
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments

    import inner_loop

    tok, model = loaded.tokenizer, loaded.model
    ids = tok([t + tok.eos_token for t in data.texts], truncation=True, max_length=256,
              add_special_tokens=False)["input_ids"]
    rows_in_order = [{"input_ids": ids[i]} for step in order for i in step]
    peft_model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0,
                                                  target_modules=inner_loop.TARGETS, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, module in peft_model.named_modules():
            key = name.removeprefix("base_model.model.")
            if key in initial and hasattr(module, "lora_A"):
                module.lora_A["default"].weight.copy_(initial[key])
    b_params = [p for n, p in peft_model.named_parameters() if ".lora_B." in n]
    trace: list[dict] = []

    class InOrder(Trainer):
        def _get_train_sampler(self, *a, **k):
            return SequentialSampler(self.train_dataset)

        def compute_loss(self, model, inputs, *a, **k):
            out = super().compute_loss(model, inputs, *a, **k)
            loss = out[0] if isinstance(out, tuple) else out
            trace.append({"loss": float(loss.detach()), "num_items": int((inputs["labels"] != -100).sum())})
            return out

    class Norms(TrainerCallback):
        def on_step_end(self, *a, **k):
            trace[-1]["bnorm"] = b_norm(b_params)

    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(output_dir=out, per_device_train_batch_size=1, num_train_epochs=1,
                                  learning_rate=1e-3, save_strategy="no", logging_strategy="no", report_to=[],
                                  use_cpu=True, disable_tqdm=True, dataloader_num_workers=0)
        InOrder(model=peft_model, args=targs, train_dataset=rows_in_order,
                data_collator=DataCollatorForLanguageModeling(tok, mlm=False), callbacks=[Norms()]).train()
    peft_model.eval()
    scores = score(loaded, peft_model, task)
    peft_model.unload()
    return trace, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="run seed (data order and adapter initialisation)")
    parser.add_argument("--edit", type=int, default=0, help="which of the 8 bundled self-edits to trace")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    args.edits, args.max_lines, args.data, args.model, args.inner = 8, 8, "bundled", "embedded", []

    from seal_core.models.loading import load_model

    import inner_loop

    tasks, datas, seeds, _ = inner_loop.workload(args)
    task = tasks[args.edit]
    lora, initial, order, lora_scores = trace_lora(load_model("embedded"), task, datas[args.edit], seeds[args.edit], args)
    ref, ref_scores = trace_reference(load_model("embedded"), task, datas[args.edit], initial, order, args)
    print(f"self-edit {args.edit} ({tasks[args.edit].id}), seed {args.seed}: {len(lora)} lora steps, "
          f"{len(ref)} reference steps; lora options {MATCH_REFERENCE}")
    print(f"{'step':>4} {'loss lora':>10} {'loss ref':>10} {'ratio':>8} {'|B| lora':>9} {'|B| ref':>9} {'rel diff':>9}")
    for i, (a, b) in enumerate(zip(lora, ref)):
        print(f"{i:>4} {a['loss']:>10.5f} {b['loss']:>10.5f} {b['loss'] / a['loss']:>8.4f} {a['bnorm']:>9.4f} "
              f"{b.get('bnorm', float('nan')):>9.4f} {abs(a['bnorm'] - b.get('bnorm', 0)) / a['bnorm']:>9.2e}")
    print(f"scores after training: lora {lora_scores}, reference {ref_scores}")
    print(json.dumps({"seed": args.seed, "edit": args.edit, "lora": lora, "reference": ref,
                      "lora_scores": lora_scores, "reference_scores": ref_scores}))


if __name__ == "__main__":
    main()
