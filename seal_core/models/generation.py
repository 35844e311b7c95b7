"""Batched text generation with left padding: the one place that calls ``model.generate``."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from seal_core.models.shared_prefix import SharedRows, shared_prefix_inputs

#: prompts per generate call by default. Measured on the embedded model, 128-token self-edits, a
#: 2-core CPU (benchmarks/results/2026-12-06-round-speed/generation_batch_size.txt): seconds per
#: self-edit fell from 6.9 (greedy) and 5.0 (sampled, k = 3) at 1 prompt per call to 2.3 and 1.9
#: at 6, and to 1.6 and 1.4 at 12: generation on a CPU is bound by per-step overhead, not arithmetic
BATCH_SIZE = 12


@dataclass
class SamplingOptions:
    """The sampling knobs every edit generator that samples has (``hf-generate``, ``vllm``)."""

    temperature: float = 1.0  # sampling temperature (greedy edits for evaluation ignore it)
    top_p: float = 0.95  # nucleus sampling
    max_new_tokens: int = 192  # self-edit length in tokens; longer edits are cut there
    constrained: bool = True  # follow the domain's self-edit schema (constrained decoding) where it declares one; false: free text
    batch_size: int = BATCH_SIZE  # prompts per generate call (tasks whose self-edits are written together)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass
class Sample:
    """One completion as the sampler drew it: ``text`` (decoded, special tokens removed),
    ``token_ids`` (the drawn tokens up to and including the first eos; without one when
    ``max_new_tokens`` cut it) and ``logprobs``, the log-probability of each token under the
    distribution it was drawn from: the model's logits after every logits processor and warper
    ``generate`` applied (a schema's mask, temperature, top-k, top-p), renormalised."""

    text: str
    token_ids: list[int]
    logprobs: list[float]


def generate_texts(model: Any, tokenizer: Any, inputs: list[str], *, max_new_tokens: int, **sampling: Any) -> list[str]:
    """Complete each already-formatted input; returns ``len(inputs) * num_return_sequences``
    completions, the samples of one input next to each other, special tokens removed.

    ``sampling``: ``do_sample``, ``temperature``, ``top_p``, ``num_return_sequences``,
    ``logits_processor``, ``first_line`` and ``shared``, as :func:`generate_samples` takes them (which this
    calls without scores).
    """
    return [s.text for s in generate_samples(model, tokenizer, inputs, max_new_tokens=max_new_tokens,
                                             scores=False, **sampling)]


@torch.no_grad()
def generate_samples(
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
    scores: bool = True,
    first_line: bool = False,
    shared: SharedRows | None = None,
) -> list[Sample]:
    """Complete each already-formatted input: ``len(inputs) * num_return_sequences`` samples
    (:class:`Sample`: text, drawn token ids, their log-probs under the processed distribution),
    the samples of one input next to each other. ``scores=False`` skips the log-probs (empty
    lists) and the memory ``generate`` needs to return the processed scores.

    ``logits_processor``: a transformers logits processor (such as
    :meth:`seal_core.models.constrained.EditConstraint.processor`), applied before temperature and top-p.
    ``first_line``: a row stops once its first line is complete (a newline after some text), for
    callers that read only the first line of the stripped completion: that line is what the full
    completion's would be, and the other rows compute what they would anyway.
    ``shared``: which rows run on the same weights (:class:`SharedRows`); given, the prompts'
    common prefix is computed once per group instead of once per row (one sample per input
    only), and the generation runs inside ``shared.route``. None: every row computes its whole
    prompt, on whatever the model is routed to.
    """
    if not inputs:
        return []
    device = next(model.parameters()).device
    enc = None
    if shared is not None and num_return_sequences == 1:
        rows = tokenizer(inputs, add_special_tokens=False)["input_ids"]
        enc = shared_prefix_inputs(model, rows, tokenizer.pad_token_id, shared, device)
    if enc is None:
        previous_side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        try:
            enc = tokenizer(inputs, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            tokenizer.padding_side = previous_side
        enc = {k: v.to(device) for k, v in enc.items()}
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if do_sample else {"do_sample": False}
    if logits_processor is not None:
        from transformers import LogitsProcessorList

        sampling["logits_processor"] = LogitsProcessorList([logits_processor])
    if first_line:
        sampling["stopping_criteria"] = [FirstLineDone(tokenizer, enc["input_ids"].shape[1])]
    with shared.routed(shared.groups) if shared is not None else nullcontext():
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            num_return_sequences=num_return_sequences,
            pad_token_id=tokenizer.pad_token_id,
            return_dict_in_generate=True,
            output_scores=scores,
            **sampling,
        )
    new_tokens = out.sequences[:, enc["input_ids"].shape[1]:]  # (N, S)
    texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    logprobs = None
    if scores:  # out.scores: S tensors (N, V), the processed logits each token was drawn from
        logprobs = torch.stack([torch.log_softmax(step.float(), dim=-1).gather(-1, new_tokens[:, t, None]).squeeze(-1)
                                for t, step in enumerate(out.scores)], dim=1)  # (N, S)
    eos = _eos_ids(model, tokenizer)
    samples = []
    for row, text in enumerate(texts):
        ids = new_tokens[row].tolist()
        end = next((t + 1 for t, token in enumerate(ids) if token in eos), len(ids))  # through the first eos
        lps = [] if logprobs is None else logprobs[row, :end].tolist()
        samples.append(Sample(text, ids[:end], lps))
    return samples


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """The token ids that end a sequence in ``generate`` (the generation config's, else the tokenizer's)."""
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    return set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])


class FirstLineDone:
    """A ``generate`` stopping criterion: row r is done once its completion, leading whitespace
    stripped, holds a newline (its first line can no longer change)."""

    def __init__(self, tokenizer: Any, prompt_length: int):
        self.tokenizer, self.start = tokenizer, prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.start:], skip_special_tokens=True)
        return torch.tensor(["\n" in text.lstrip() for text in texts], dtype=torch.bool, device=input_ids.device)
