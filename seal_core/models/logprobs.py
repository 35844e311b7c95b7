"""Log-probabilities of self-edits given their edit prompts: the token-level scores that every RL
algorithm computes the same way (the engine stores the sampling policy's with each rollout).

Conventions as in :mod:`seal_core.rl`: ``B`` rollouts in a batch, ``T`` completion tokens
(right-padded), ``L`` prompt + completion tokens, ``W`` words of a token bitmask; masks are float
tensors of 0 and 1.

A rollout whose generator reported the sampled tokens (:class:`seal_core.SampledEdit`, stored as
``Rollout.token_ids`` and ``Rollout.logprobs``) is scored on those token ids, and its old log-probs
are the sampler's own, under the distribution it drew from (after temperature, top-p and any
schema mask); other rollouts are re-tokenised from their text, with an eos appended, and their old
log-probs computed here at temperature 1 (:func:`old_logprobs`). The log-probs an algorithm
computes during its update (:func:`forward_completions`) are always the policy's at temperature 1.

Under a self-edit schema (``schema=``, the run's ``UpdateContext.edit_schema``) the log-probs are
those of the constrained distribution the self-edits were sampled from: before the log-softmax,
the logits of the tokens the schema did not allow at that position are set to -inf
(:mod:`seal_core.models.constrained`), so a token the schema forces has log-prob 0.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
import torch

from seal_core.models.constrained import constraint_for, mask_logits
from seal_core.models.prompting import format_prompt
from seal_core.api.types import LoadedModel, Rollout

log = structlog.get_logger(__name__)

Tensor = torch.Tensor


@dataclass
class CompletionBatch:
    """Prompts and completions as one batch: prompts left-padded, completions right-padded, so
    every completion starts at the same column and the model computes logits for those only."""

    input_ids: Tensor  # (B, L) padding, prompt ids | completion ids, eos, padding
    attention_mask: Tensor  # (B, L)
    position_ids: Tensor  # (B, L) positions as if unpadded (the same numbers as generation)
    targets: Tensor  # (B, T) the completion token ids (0 under padding); L = P + T
    mask: Tensor  # (B, T) float: 1 for a completion token, 0 for padding
    allowed: Tensor | None = None  # (B, T, W) int32 bitmasks of the tokens allowed at each position; None: all


def tokenize_pairs(tokenizer: Any, prompts: Sequence[str], completions: Sequence[str],
                   max_length: int = 1024,
                   completion_ids: Sequence[list[int] | None] | None = None) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids + eos) per pair; the prompt formatted as the generator saw it.

    Prompt and completion are tokenised separately, as generation produced them: one tokenizer
    call on the joined text could merge tokens across the boundary. ``completion_ids``: per pair,
    the completion's token ids as sampled (used as they are, no eos added), or None to tokenise
    its text. A pair longer than ``max_length`` loses the end of its completion (eos first).
    """
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    pairs = []
    for prompt, completion, ids in zip(prompts, completions, completion_ids or [None] * len(prompts)):
        p = tokenizer(format_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
        if not p:
            raise ValueError(f"prompt {prompt!r} has no tokens: nothing predicts the completion's first token")
        c = list(ids) if ids is not None else tokenizer(completion, add_special_tokens=False)["input_ids"] + eos
        pairs.append((p, c[: max(0, max_length - len(p))]))
    return pairs


def collate(pairs: Sequence[tuple[list[int], list[int]]], pad_id: int, device: Any = "cpu",
            allowed: Sequence[Tensor] | None = None) -> CompletionBatch:
    """Left-pad the prompts to the longest (P), right-pad the completions to the longest (T);
    ``allowed``: each completion's (its T, W) bitmasks, padded with all-allowed rows."""
    P = max(len(p) for p, _ in pairs)
    T = max(1, max(len(c) for _, c in pairs))
    B = len(pairs)
    input_ids = torch.full((B, P + T), pad_id, dtype=torch.long)
    attention = torch.zeros((B, P + T), dtype=torch.long)
    targets = torch.zeros((B, T), dtype=torch.long)
    mask = torch.zeros((B, T))
    for b, (p, c) in enumerate(pairs):
        input_ids[b, P - len(p): P + len(c)] = torch.tensor(p + c, dtype=torch.long)
        attention[b, P - len(p): P + len(c)] = 1
        targets[b, : len(c)] = torch.tensor(c, dtype=torch.long)
        mask[b, : len(c)] = 1.0
    position_ids = (attention.cumsum(-1) - 1).clamp_min(0)  # (B, L)
    bits = None
    if allowed is not None:
        bits = torch.full((B, T, allowed[0].shape[-1]), -1, dtype=torch.int32)  # (B, T, W)
        for b, rows in enumerate(allowed):
            bits[b, : len(rows)] = rows[:T]
        bits = bits.to(device)
    return CompletionBatch(*(t.to(device) for t in (input_ids, attention, position_ids, targets, mask)), allowed=bits)


def _keeps_logits(model: Any) -> bool:
    model = getattr(model, "module", model)  # a DeepSpeed engine forwards to its module
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def forward_completions(model: Any, batch: CompletionBatch, *, hidden: bool = False) -> tuple[Tensor, Tensor | None]:
    """Log-probs (B, T) of the completion tokens (0 under padding) and, with ``hidden``, the last
    hidden state (B, T, H) at the position that predicts each of them (what a value head reads).

    Gradients flow unless the caller uses ``torch.no_grad()``. The model computes logits for the
    last T + 1 positions only (``logits_to_keep``, where the model supports it), never for the
    prompt, and log-softmax runs on them in float32.
    """
    T = batch.targets.shape[1]
    kwargs = {"logits_to_keep": T + 1} if _keeps_logits(model) else {}
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                output_hidden_states=hidden, **kwargs)
    logits = out.logits[:, -(T + 1):-1].float()  # (B, T, V): position P - 1 + t predicts token t
    if batch.allowed is not None:
        logits = mask_logits(logits, batch.allowed)  # (B, T, V): the constrained distribution
    logp = torch.log_softmax(logits, dim=-1).gather(-1, batch.targets[..., None]).squeeze(-1)  # (B, T)
    states = out.hidden_states[-1][:, -(T + 1):-1] if hidden else None  # (B, T, H)
    return logp * batch.mask, states


def completion_logprobs(model: Any, tokenizer: Any, prompts: list[str], completions: list[str], *,
                        max_length: int = 1024, schema: dict[str, Any] | None = None) -> tuple[Tensor, Tensor]:
    """Per-token log-probs (B, T) of each completion (and the eos after it) given its edit prompt,
    and the float mask (B, T) of real completion tokens.

    ``prompts`` are raw edit prompts: they are formatted with
    :func:`seal_core.models.prompting.format_prompt`, as the generator formats them. Call under
    ``torch.no_grad()`` unless you want gradients. The log-probs of rollout ``i`` as
    :class:`seal_core.Rollout` stores them: ``[lp for lp, m in zip(logp[i], mask[i]) if m]``.
    ``schema``: the self-edit schema they were sampled under (log-probs of the constrained
    distribution); None: unconstrained.
    """
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    pairs = tokenize_pairs(tokenizer, prompts, completions, max_length)
    batch = collate(pairs, pad, device, schema_masks(schema, tokenizer, pairs))
    logp, _ = forward_completions(model, batch)
    return logp, batch.mask


def schema_masks(schema: dict[str, Any] | None, tokenizer: Any,
                 pairs: Sequence[tuple[list[int], list[int]]]) -> list[Tensor] | None:
    """Each completion's (T, W) bitmasks under ``schema`` (what the sampler allowed before each
    token); None without a schema."""
    if schema is None:
        return None
    constraint = constraint_for(schema, tokenizer)
    return [constraint.masks(c) for _, c in pairs]


def pad_rows(rows: Sequence[Tensor], T: int) -> Tensor:
    """1-D tensors of up to ``T`` values as one (B, T) tensor, zero-padded on the right."""
    out = torch.zeros((len(rows), T), dtype=torch.float32, device=rows[0].device if rows else "cpu")
    for b, row in enumerate(rows):
        out[b, : len(row)] = row
    return out


class TokenizedRollouts:
    """A round's rollouts tokenised once (each on its sampled ``token_ids`` where it has them,
    else on its re-tokenised text); :meth:`batch` collates any subset of them."""

    def __init__(self, loaded: LoadedModel, rollouts: Sequence[Rollout], max_length: int,
                 schema: dict[str, Any] | None = None):
        """``schema``: the self-edit schema the rollouts were sampled under (``context.edit_schema``);
        every log-prob computed from :meth:`batch` is then that of the constrained distribution."""
        self.rollouts = list(rollouts)
        self.pairs = tokenize_pairs(loaded.tokenizer, [r.prompt for r in rollouts], [r.edit for r in rollouts], max_length,
                                    [getattr(r, "token_ids", None) for r in rollouts])
        self.allowed = schema_masks(schema, loaded.tokenizer, self.pairs)
        tok = loaded.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        self.device = loaded.device

    def __len__(self) -> int:
        return len(self.pairs)

    def batch(self, idx: Sequence[int]) -> CompletionBatch:
        allowed = None if self.allowed is None else [self.allowed[i] for i in idx]
        return collate([self.pairs[i] for i in idx], self.pad_id, self.device, allowed)

    def n_tokens(self, i: int) -> int:
        return len(self.pairs[i][1])


@torch.no_grad()
def rollout_logprobs(model: Any, data: TokenizedRollouts, idx: Sequence[int], batch_size: int) -> list[Tensor]:
    """Per-token log-probs of rollouts ``idx`` under ``model``, one 1-D tensor each (no grad)."""
    out: list[Tensor] = []
    for start in range(0, len(idx), batch_size):
        chunk = list(idx[start:start + batch_size])
        batch = data.batch(chunk)
        logp, _ = forward_completions(model, batch)
        out += [logp[b, : data.n_tokens(i)] for b, i in enumerate(chunk)]
    return out


def old_logprobs(model: Any, data: TokenizedRollouts, batch_size: int,
                 computed: Sequence[Tensor] | None = None) -> list[Tensor]:
    """The log-probs each rollout was sampled with: stored ones where their length fits (the
    sampler's own for rollouts with ``token_ids``, cut where ``max_length`` cut the tokens), the
    current ``model``'s at temperature 1 otherwise (call before the first update step, so that
    model is the policy that wrote them; pass ``computed`` if you already have them). A stored
    list of the wrong length is recomputed with a warning."""
    found: list[Tensor | None] = []
    for i, r in enumerate(data.rollouts):
        stored, n = r.logprobs, data.n_tokens(i)
        ids = getattr(r, "token_ids", None)
        if stored is not None and ids is not None and len(stored) == len(ids) >= n:
            stored = stored[:n]  # the sampled tokens, cut by max_length: their prefix's log-probs
        if stored is not None and len(stored) != n:
            log.warning("stored logprobs do not match the completion's tokens; recomputing",
                        task_id=r.task_id, edit_index=r.edit_index, stored=len(stored), tokens=n)
            found.append(None)
        else:
            found.append(None if stored is None else torch.tensor(stored, dtype=torch.float32, device=data.device))
    missing = [i for i, lp in enumerate(found) if lp is None]
    fresh = [computed[i] for i in missing] if computed is not None else rollout_logprobs(model, data, missing, batch_size)
    for i, lp in zip(missing, fresh):
        found[i] = lp
    return found  # type: ignore[return-value]


def sampled_logprobs(loaded: LoadedModel, prompt: str, edits: Sequence[str],
                     schema: dict[str, Any] | None = None) -> list[tuple[list[int] | None, list[float]]]:
    """(token ids, per-token log-probs) of each of ``edits`` (written by ``loaded`` for ``prompt``)
    as the rollout stores them: the sampler's own for a :class:`seal_core.SampledEdit`; for a
    plain string, None and the log-probs of its re-tokenised text plus eos under ``loaded`` at
    temperature 1 (:func:`completion_logprobs`, under ``schema``)."""
    out: list[tuple[list[int] | None, list[float]] | None] = [
        (list(e.token_ids), list(e.logprobs)) if getattr(e, "token_ids", None) is not None else None for e in edits]
    todo = [i for i, pair in enumerate(out) if pair is None]
    if todo:
        with torch.no_grad():
            logp, mask = completion_logprobs(loaded.model, loaded.tokenizer, [prompt] * len(todo),
                                             [str(edits[i]) for i in todo], schema=schema)
        for i, row, keep in zip(todo, logp.tolist(), mask.tolist()):
            out[i] = (None, [v for v, m in zip(row, keep) if m])
    return out  # type: ignore[return-value]
