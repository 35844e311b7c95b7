"""Batched text generation with left padding: the one place that calls ``model.generate``."""

from __future__ import annotations

from typing import Any

import torch


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
) -> list[str]:
    """Complete each already-formatted input; returns ``len(inputs) * num_return_sequences``
    completions, the samples of one input next to each other, special tokens removed."""
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
    out = model.generate(
        **enc,
        max_new_tokens=max_new_tokens,
        num_return_sequences=num_return_sequences,
        pad_token_id=tokenizer.pad_token_id,
        **sampling,
    )
    new_tokens = out[:, enc["input_ids"].shape[1]:]
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
