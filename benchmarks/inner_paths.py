"""The ways ``inner_loop.py`` scores self-edits, each on one loaded model in one process: the SEAL
reference code's pattern (as ``inner_loop.py`` runs it, and as written), ``lora`` one self-edit at
a time, and ``multi-lora`` K at a time. Each returns (scores, training seconds, scoring seconds);
``Scorer`` is what they all score with. ``inner_loop.py`` describes the paths and runs them; this
module is not run on its own (the diagnostics in ``dev/`` reach it through ``inner_loop``).
"""

from __future__ import annotations

import sys
import tempfile
import time

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
AS_WRITTEN = "reference-as-written"
AS_WRITTEN_LENGTH = 2048  # the reference code's max_seq_length, every text padded to it


# -- options -------------------------------------------------------------------------------------


def lora_options(args, **extra):
    """The reference hyperparameters for ``lora`` and ``multi-lora``, then ``--inner`` overrides."""
    base = dict(r=32, alpha=64.0, learning_rate=1e-3, epochs=args.epochs, batch_size=1, target_modules=list(TARGETS))
    return {**base, **extra, **inner_overrides(getattr(args, "inner", None))}


def inner_overrides(items: list[str] | None) -> dict:
    """``--inner KEY=VALUE`` items as LoraOptions fields (values parsed as the config parses them)."""
    from seal_core.loop.config import parse_override

    out = {}
    for item in items or []:
        keys, value = parse_override(item)
        out[keys[0]] = value
    return out


# -- the paths -----------------------------------------------------------------------------------


def clock(loaded) -> float:
    """time.perf_counter() once the device has finished the work queued so far."""
    import torch

    if loaded.device.type == "cuda":
        torch.cuda.synchronize(loaded.device)
    return time.perf_counter()


class Scorer:
    """What every path scores an adapted model with: greedy ``qa`` (the score, as the engine
    reports it) and, beside it, the dense ``answer-likelihood`` (the gold answers' mean token
    log-prob, teacher-forced: no greedy flips on ties), each timed on its own."""

    def __init__(self, loaded):
        from seal_core.evaluation.answer_likelihood import AnswerLikelihoodEvaluator
        from seal_core.evaluation.qa import QAEvaluator

        self.loaded, self.qa, self.dense = loaded, QAEvaluator(), AnswerLikelihoodEvaluator()
        self.reset()

    def reset(self) -> None:
        self.dense_scores: list = []
        self.dense_seconds = 0.0

    def evaluate(self, model, tokenizer, task):
        score = self.qa.evaluate(model, tokenizer, task)
        began = clock(self.loaded)
        self.dense_scores.append(self.dense.evaluate(model, tokenizer, task))
        self.dense_seconds += clock(self.loaded) - began
        return score

    def evaluate_routed(self, model, tokenizer, tasks, rows):
        scores = self.qa.evaluate_routed(model, tokenizer, tasks, rows)
        began = clock(self.loaded)
        self.dense_scores += self.dense.evaluate_routed(model, tokenizer, tasks, rows)
        self.dense_seconds += clock(self.loaded) - began
        return scores


def run_reference(loaded, tasks, datas, seeds, args, qa):
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    tok, model = loaded.tokenizer, loaded.model
    collator = DataCollatorForLanguageModeling(tok, mlm=False)
    scores, train_s, score_s = [], 0.0, 0.0
    for task, data, seed in zip(tasks, datas, seeds):
        started = time.perf_counter()
        rows = [{"input_ids": ids} for ids in tok([t + tok.eos_token for t in data.texts], truncation=True,
                                                   max_length=256, add_special_tokens=False)["input_ids"]]
        peft_model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0, target_modules=TARGETS,
                                                      task_type="CAUSAL_LM"))
        with tempfile.TemporaryDirectory() as out:
            targs = TrainingArguments(output_dir=out, per_device_train_batch_size=1, num_train_epochs=args.epochs,
                                      learning_rate=1e-3, save_strategy="no", logging_strategy="no",
                                      report_to=[], use_cpu=loaded.device.type == "cpu", disable_tqdm=True, seed=seed,
                                      dataloader_num_workers=0)
            Trainer(model=peft_model, args=targs, train_dataset=rows, data_collator=collator).train()
        peft_model.eval()
        middle = clock(loaded)
        scores.append(qa.evaluate(peft_model, tok, task))
        model = peft_model.unload()
        score_s += clock(loaded) - middle
        train_s += middle - started
    return scores, train_s, score_s


def run_reference_as_written(loaded, tasks, datas, seeds, args, qa):
    """The reference code's tokenization: pad to 2048, labels on the pads; ``args.as_written_steps``
    steps of the first self-edit timed, the rest extrapolated. Returns (None, train s, score s)
    for that one self-edit, train s extrapolated to all its steps."""
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator

    tok, model = loaded.tokenizer, loaded.model
    task, data, seed = tasks[0], datas[0], seeds[0]
    enc = tok([t + tok.eos_token for t in data.texts], padding="max_length", truncation=True,
              max_length=AS_WRITTEN_LENGTH, add_special_tokens=False)
    # labels = input_ids, pads included (attention_mask still 0 there), as the reference code does
    rows = [{"input_ids": ids, "attention_mask": mask, "labels": list(ids)}
            for ids, mask in zip(enc["input_ids"], enc["attention_mask"])]
    stamps = []

    class StepClock(TrainerCallback):
        def on_step_end(self, *_, **__):
            stamps.append(clock(loaded))

    peft_model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0, target_modules=TARGETS,
                                                  task_type="CAUSAL_LM"))
    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(output_dir=out, per_device_train_batch_size=1, max_steps=args.as_written_steps,
                                  learning_rate=1e-3, save_strategy="no", logging_strategy="no", report_to=[],
                                  use_cpu=loaded.device.type == "cpu", disable_tqdm=True, seed=seed,
                                  dataloader_num_workers=0)
        trainer = Trainer(model=peft_model, args=targs, train_dataset=rows, data_collator=default_data_collator,
                          callbacks=[StepClock()])
        stamps.append(clock(loaded))
        trainer.train()
    steps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    per_step = steps[len(steps) // 2]  # the median: the first step carries one-off set-up
    peft_model.eval()
    middle = clock(loaded)
    qa.evaluate(peft_model, tok, task)
    peft_model.unload()
    return None, per_step * len(data.texts) * args.epochs, clock(loaded) - middle


def run_lora(loaded, tasks, datas, seeds, args, qa):
    from seal_core.runtime.seeding import seed_all
    from seal_plugins.lora_updater import LoraOptions, LoraUpdater

    up = LoraUpdater().configured(LoraOptions(**lora_options(args)))
    scores, train_s, score_s = [], 0.0, 0.0
    for task, data, seed in zip(tasks, datas, seeds):
        seed_all(seed)
        started = time.perf_counter()
        up.adapt(loaded, data)
        middle = clock(loaded)
        scores.append(qa.evaluate(loaded.model, loaded.tokenizer, task))
        up.reset(loaded)
        score_s += clock(loaded) - middle
        train_s += middle - started
    return scores, train_s, score_s


def run_multi(loaded, tasks, datas, seeds, args, qa, k, precision, profile=False):
    from seal_plugins.multi_lora import MultiLoraOptions, MultiLoraUpdater

    up = MultiLoraUpdater().configured(MultiLoraOptions(**lora_options(args, max_adapters=k, precision=precision)))
    if profile:
        profile_batch(loaded, datas[:k], seeds[:k], up.options)
    scores, train_s, score_s = [], 0.0, 0.0
    for start in range(0, len(tasks), k):
        chunk = slice(start, start + k)
        began = time.perf_counter()
        batch = up.adapt_batch(loaded, datas[chunk], seeds[chunk])
        assert not batch.rejected, batch.rejected
        middle = clock(loaded)
        scores += qa.evaluate_routed(loaded.model, loaded.tokenizer, tasks[chunk], batch.rows)
        up.reset(loaded)
        score_s += clock(loaded) - middle
        train_s += middle - began
    return scores, train_s, score_s


def profile_batch(loaded, datas, seeds, options) -> None:
    """torch.profiler's table of one batch trained for one epoch with ``options`` (the timed path's
    multi-lora options), before and apart from the timed run: the profiler's own cost stays out of
    the timings, and one epoch shows every kind of step while keeping the recorded events (memory)
    small."""
    from dataclasses import replace

    from torch.profiler import ProfilerActivity, profile as torch_profile

    from seal_plugins.multi_lora import MultiLoraUpdater

    up = MultiLoraUpdater().configured(replace(options, epochs=1))
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        up.adapt_batch(loaded, datas, seeds)
    up.reset(loaded)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
    print(f"PROFILE-BEGIN\n{table}\nPROFILE-END", file=sys.stderr)


def multi_path(path: str) -> tuple[int, str]:
    """(K, precision) of a ``multi-lora-k<K>-<precision>`` path name."""
    k, precision = path.removeprefix("multi-lora-k").split("-")
    return int(k), precision


def run_path(path: str, loaded, tasks, datas, seeds, args, qa):
    """(scores, training seconds, scoring seconds) of one path on these self-edits."""
    if path == "reference":
        return run_reference(loaded, tasks, datas, seeds, args, qa)
    if path == "lora":
        return run_lora(loaded, tasks, datas, seeds, args, qa)
    if path == AS_WRITTEN:
        return run_reference_as_written(loaded, tasks, datas, seeds, args, qa)
    k, precision = multi_path(path)
    return run_multi(loaded, tasks, datas, seeds, args, qa, k, precision,
                     profile=args.profile and path == f"multi-lora-k8-{args.fast}")
