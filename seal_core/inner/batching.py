"""A self-edit's training set as tensors and optimizer steps: tokenization and the step plan.

Every inner updater draws its steps from :func:`step_batches` (a fresh shuffle per epoch, the
training set's epoch, learning-rate and step caps honoured), so ``lora``, ``full`` and
``multi-lora`` follow the same data order for the same seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import structlog
import torch

from seal_core.inner.options import LoraOptions
from seal_core.api.types import TrainingExample, TrainingSet

log = structlog.get_logger(__name__)


def tokenize_texts(tokenizer: Any, texts: list[str], max_length: int, device: Any) -> dict[str, torch.Tensor]:
    """Right-padded causal-LM batch; labels are -100 on padding. EOS ends every text."""
    return tokenize_examples(tokenizer, [TrainingExample(t) for t in texts], max_length, device)


def tokenize_examples(tokenizer: Any, examples: list[TrainingExample], max_length: int, device: Any,
                      completion_only: bool = False, loss_on_eos: bool = True) -> dict[str, torch.Tensor]:
    """Right-padded causal-LM batch of prompt + completion + EOS; labels are -100 on padding,
    with ``completion_only`` on the prompt's tokens too, and without ``loss_on_eos`` on every eos
    token (as the reference code's collator does where, as in SmolLM2, the pad token is the eos)."""
    eos = tokenizer.eos_token or ""
    enc = tokenizer([e.text + eos for e in examples], padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt", add_special_tokens=False)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    if not loss_on_eos and tokenizer.eos_token_id is not None:
        labels = labels.masked_fill(enc["input_ids"] == tokenizer.eos_token_id, -100)
    if completion_only:
        prompt_lengths = [len(ids) for ids in tokenizer([e.prompt for e in examples], add_special_tokens=False)["input_ids"]]
        for row, n in enumerate(prompt_lengths):
            labels[row, :n] = -100
    return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device),
            "labels": labels.to(device)}


def warn_if_truncated(tokenizer: Any, texts: list[str], max_length: int) -> None:
    """Texts longer than ``max_length`` tokens are cut there; say so, once per self-edit."""
    eos = tokenizer.eos_token or ""
    lengths = [len(ids) for ids in tokenizer([t + eos for t in texts], add_special_tokens=False)["input_ids"]]
    over = [n for n in lengths if n > max_length]
    if over:
        log.warning("training text truncated", texts=len(over), longest_tokens=max(over),
                    max_length=max_length, hint="raise inner.max_length to keep more")


def steps_per_epoch(examples: int, batch_size: int) -> int:
    """Optimizer steps in one epoch over ``examples`` training texts."""
    return -(-examples // batch_size)


def planned_steps(data: TrainingSet, opts: LoraOptions) -> int:
    """The optimizer steps :func:`step_batches` plans for ``data`` (adaptive training may stop sooner)."""
    steps = (data.epochs or opts.epochs) * steps_per_epoch(len(data.examples), opts.batch_size)
    return steps if data.max_steps is None else min(steps, data.max_steps)


def learning_rate_at(base: float, step: int, total: int, schedule: str) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total``: ``base`` throughout
    (``constant``), or decaying linearly to 0 (``linear``: base x (total - step) / total, as
    transformers' linear schedule without warm-up, stepped after each optimizer step)."""
    return base if schedule == "constant" else base * max(0.0, (total - step) / max(1, total))


def epoch_mean_below(losses: list[float], threshold: float) -> bool:
    """Adaptive training's rule (``stop_loss``): the epoch's mean step loss is below ``threshold``
    (never with a threshold of 0)."""
    return threshold > 0 and sum(losses) / len(losses) < threshold


def step_batches(data: TrainingSet, opts: LoraOptions, generator: torch.Generator | None = None) -> Iterator[list[int]]:
    """The example indices of each optimizer step of one self-edit: a fresh shuffle per epoch
    (from ``generator``, or torch's global RNG), ``opts.batch_size`` examples a step, at most
    ``data.max_steps`` steps. Lazy, so the shuffles interleave with training as they always did."""
    steps = 0
    for _ in range(data.epochs or opts.epochs):
        order = torch.randperm(len(data.examples), generator=generator).tolist()
        for start in range(0, len(order), opts.batch_size):
            if data.max_steps is not None and steps >= data.max_steps:
                break
            steps += 1
            yield order[start:start + opts.batch_size]
