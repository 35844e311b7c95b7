"""Is a self-edit's score a function of its random draws alone, the same function in the reference
pattern and in ``lora``? The reference pattern run as ``inner_loop.py`` runs it (its own draws),
then ``lora`` forced to the draws it made.

    .venv/bin/python benchmarks/dev/reference_replay.py --seed 6      # ~8 min on a 2-core CPU

For each of the 8 bundled self-edits in turn, on one model (as ``inner_loop.py``'s ``reference``
path does): a fresh peft ``get_peft_model`` and a transformers ``Trainer(seed=...)`` for 10
epochs, recording the initial ``lora_A`` that peft drew and the order in which the Trainer's
sampler fed the texts, then the score (greedy ``qa`` and dense answer log-prob). Then ``lora``
with the Trainer's behaviours (``reference_trace.MATCH_REFERENCE``) trains each self-edit from
that same ``lora_A`` in that same order and is scored the same way. Equal scores for every
self-edit mean that nothing but the draws separates the two. It also checks whether the
reference's ``lora_A`` for self-edit i is peft's draw right after ``torch.manual_seed`` of
self-edit i-1's seed (it is not: the Trainer consumes the global RNG in between), which is how
``draw_factorial.py`` emulates it. Prints ``REF``, ``LORA`` and one ``RESULT`` JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent  # benchmarks/dev
sys.path.insert(0, str(HERE))  # benchmarks/dev: the diagnostics import each other
sys.path.insert(0, str(HERE.parent))  # benchmarks/: inner_loop
sys.path.insert(0, str(HERE.parents[1]))  # the checkout: run without installing


def run_reference(loaded, task, data, seed: int, epochs: int):
    """The reference pattern on one self-edit: (scores, initial lora_A by layer, data order)."""
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    import inner_loop
    import reference_trace

    tok = loaded.tokenizer
    ids = tok([t + tok.eos_token for t in data.texts], truncation=True, max_length=256, add_special_tokens=False)["input_ids"]
    index = {tuple(i): n for n, i in enumerate(ids)}
    peft_model = get_peft_model(loaded.model, LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0,
                                                         target_modules=inner_loop.TARGETS, task_type="CAUSAL_LM"))
    suffix = ".lora_A.default.weight"
    initial = {n.removeprefix("base_model.model.").removesuffix(suffix): p.detach().clone()
               for n, p in peft_model.named_parameters() if n.endswith(suffix)}
    order: list[list[int]] = []

    class Recording(Trainer):
        def compute_loss(self, model, inputs, *a, **k):
            order.append([index[tuple(inputs["input_ids"][0].tolist())]])
            return super().compute_loss(model, inputs, *a, **k)

    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(output_dir=out, per_device_train_batch_size=1, num_train_epochs=epochs,
                                  learning_rate=1e-3, save_strategy="no", logging_strategy="no", report_to=[],
                                  use_cpu=True, disable_tqdm=True, seed=seed, dataloader_num_workers=0)
        Recording(model=peft_model, args=targs, train_dataset=[{"input_ids": i} for i in ids],
                  data_collator=DataCollatorForLanguageModeling(tok, mlm=False)).train()
    peft_model.eval()
    scores = reference_trace.score(loaded, peft_model, task)
    loaded.model = peft_model.unload()
    return scores, initial, order


def run_lora_forced(loaded, task, data, initial: dict, order: list[list[int]], run) -> dict:
    """``lora`` with the reference's behaviours, from ``initial`` lora_A, in ``order``: its scores."""
    import torch

    import inner_loop
    import reference_trace
    import seal_core.inner.sequential as sequential
    from seal_core.inner.peft_lora import ADAPTER
    from seal_plugins.lora_updater import LoraOptions, LoraUpdater

    updater = LoraUpdater().configured(LoraOptions(**{**inner_loop.lora_options(run), **reference_trace.MATCH_REFERENCE}))
    suffix = f".lora_A.{ADAPTER}.weight"

    def initialise(self, student):
        with torch.no_grad():
            for name, p in student.model.named_parameters():
                if name.endswith(suffix):
                    p.copy_(initial[name.removesuffix(suffix)])

    real_batches, real_init = sequential.step_batches, LoraUpdater.initialise
    sequential.step_batches, LoraUpdater.initialise = (lambda *a, **k: iter(order)), initialise
    try:
        updater.adapt(loaded, data)
        scores = reference_trace.score(loaded, loaded.model, task)
        updater.reset(loaded)
    finally:
        sequential.step_batches, LoraUpdater.initialise = real_batches, real_init
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=6, help="run seed")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    run = argparse.Namespace(edits=8, max_lines=8, data="bundled", model="embedded", inner=[], epochs=args.epochs,
                             seed=args.seed)

    import torch
    from peft import LoraConfig, get_peft_model

    import inner_loop
    from seal_core.models.loading import load_model

    tasks, datas, seeds, _ = inner_loop.workload(run)
    reference_model = load_model("embedded")
    drawn = []
    for e, (task, data, seed) in enumerate(zip(tasks, datas, seeds)):
        drawn.append(run_reference(reference_model, task, data, seed, args.epochs))
        print("REF", e, drawn[-1][0], flush=True)
    emulating = load_model("embedded").model
    emulated_equal = []
    for e in range(1, len(tasks)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeds[e - 1])
            peft_model = get_peft_model(emulating, LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0,
                                                              target_modules=inner_loop.TARGETS, task_type="CAUSAL_LM"))
            first = next(p for n, p in peft_model.named_parameters() if n.endswith("lora_A.default.weight")).detach().clone()
            emulating = peft_model.unload()
        emulated_equal.append(bool(torch.equal(first, next(iter(drawn[e][1].values())))))
    print("A_i equals manual_seed(seed_{i-1}) emulation for i=1..7:", emulated_equal, flush=True)
    lora_model = load_model("embedded")
    forced = []
    for e, (task, data) in enumerate(zip(tasks, datas)):
        forced.append(run_lora_forced(lora_model, task, data, drawn[e][1], drawn[e][2], run))
        print("LORA", e, forced[-1], flush=True)
    print("RESULT", json.dumps({"seed": args.seed, "reference": [d[0] for d in drawn], "lora_forced": forced,
                                "mean_reference": sum(d[0]["qa"] for d in drawn) / len(drawn),
                                "mean_lora_forced": sum(f["qa"] for f in forced) / len(forced),
                                "emulated_a_equal": emulated_equal}))


if __name__ == "__main__":
    main()
