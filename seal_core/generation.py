"""Batched text generation with left padding: the one place that calls ``model.generate``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class SamplingOptions:
    """The sampling knobs every edit generator that samples has (``hf-generate``, ``vllm``)."""

    temperature: float = 1.0  # sampling temperature (greedy edits for evaluation ignore it)
    top_p: float = 0.95  # nucleus sampling
    max_new_tokens: int = 192  # self-edit length in tokens; longer edits are cut there
    constrained: bool = True  # follow the domain's self-edit schema (constrained decoding) where it declares one; false: free text

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@torch.no_grad()
def generate_texts(
    model: Any,
    tokenizer: Any,
    inputs: list[str],
    *,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    num_return_sequences: int = 1,
    logits_processor: Any = None,
) -> list[str]:
    """Complete each already-formatted input; returns ``len(inputs) * num_return_sequences``
    completions, the samples of one input next to each other, special tokens removed.

    ``logits_processor``: a transformers logits processor (such as
    :meth:`seal_core.constrained.EditConstraint.processor`), applied before temperature and top-p.
    """
    if not inputs:
        return []
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(inputs, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = previous_side
    device = next(model.parameters()).device
    enc = {k: v.to(device) for k, v in enc.items()}
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if do_sample else {"do_sample": False}
    if logits_processor is not None:
        from transformers import LogitsProcessorList

        sampling["logits_processor"] = LogitsProcessorList([logits_processor])
    out = model.generate(
        **enc,
        max_new_tokens=max_new_tokens,
        num_return_sequences=num_return_sequences,
        pad_token_id=tokenizer.pad_token_id,
        **sampling,
    )
    new_tokens = out[:, enc["input_ids"].shape[1]:]
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
