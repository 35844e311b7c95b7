"""Schema-constrained self-edits: a domain's JSON schema compiled for a tokenizer (llguidance).

A domain may declare the form of its self-edits as a JSON schema (``Domain.edit_schema()``). An
edit generator that honours it (``hf-generate`` and ``vllm``, ``generator.constrained``, on by
default) then samples only tokens that keep the self-edit a prefix of a member of the schema's
language, so every self-edit it writes parses. Sampling stays sampling: at each step the model's
logits of the disallowed tokens are set to -inf and the rest are renormalised (then temperature
and top-p apply as before). The RL algorithms score self-edits under the same constrained
distribution: :mod:`seal_core.models.logprobs` replays the schema over each self-edit's tokens and masks
the logits the same way, so a token the schema forces has log-prob 0.

The compiler is llguidance (chosen on measurement, see docs/arc.md). Masks are llguidance's
bitmasks: int32 words, bit ``j`` of word ``w`` allows token ``32 w + j``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import llguidance
import llguidance.hf
import llguidance.torch
import structlog
import torch

from seal_core.api.errors import ConfigError

log = structlog.get_logger(__name__)

Tensor = torch.Tensor

#: The JSON layout constrained self-edits are written in, as ``json.dumps`` writes JSON (and as
#: the edit prompts show it): no free whitespace (which a sampler could run on with), ``", "``
#: between items, ``": "`` after keys. A schema's own ``x-guidance`` entries win.
LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


def laid_out(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with :data:`LAYOUT` in its ``x-guidance`` entry (llguidance's, and vLLM's
    ``guidance`` backend's, JSON options), so every backend writes the same text."""
    out = copy.deepcopy(schema)
    out["x-guidance"] = {**LAYOUT, **schema.get("x-guidance", {})}
    return out


def check_schema(schema: Any, owner: str) -> None:
    """Raise :class:`ConfigError` when ``schema`` (declared by ``owner``) does not compile."""
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(laid_out(schema))
        failed, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
        error = messages[0] if failed else ""
    except (ValueError, TypeError, AttributeError) as exc:
        error = str(exc) or type(exc).__name__
    if error:
        raise ConfigError(
            f"{owner} declares a self-edit schema that cannot be compiled for constrained decoding: "
            f"{error}. Fix the schema that edit_schema() returns (a JSON schema object: "
            "https://json-schema.org), or set generator.constrained=false to generate self-edits freely."
        )


def run_schema(domain: Any, generator: Any) -> dict[str, Any] | None:
    """The schema the run's self-edits follow: the domain's ``edit_schema()`` where the generator
    constrains to it (``generator.constrained_by(schema)``), checked; None: free generation.

    Components that do not subclass :class:`seal_core.Domain` / :class:`seal_core.EditGenerator`
    and lack these methods declare no schema and generate freely.
    """
    declare = getattr(domain, "edit_schema", None)
    schema = declare() if callable(declare) else None
    if schema is None:
        return None
    follow = getattr(generator, "constrained_by", None)
    schema = follow(schema) if callable(follow) else None
    if schema is not None:
        check_schema(schema, f"domain '{domain.name}'")
    return schema


def allowed(bitmask: Tensor, vocab: int) -> Tensor:
    """(..., W) int32 bitmasks -> (..., vocab) bool: True where the token is allowed. Tokens past
    the bitmask's 32 W (ids the tokenizer does not have) are never allowed."""
    bits = torch.arange(32, dtype=torch.int32, device=bitmask.device)
    flat = ((bitmask.unsqueeze(-1) >> bits) & 1).bool().flatten(-2)  # (..., 32 W)
    if flat.shape[-1] >= vocab:
        return flat[..., :vocab]
    pad = torch.zeros((*flat.shape[:-1], vocab - flat.shape[-1]), dtype=torch.bool, device=flat.device)
    return torch.cat([flat, pad], dim=-1)


def mask_logits(logits: Tensor, bitmask: Tensor) -> Tensor:
    """``logits`` (..., V) with -inf where ``bitmask`` (..., W) disallows the token (out of place,
    so gradients flow through the allowed ones)."""
    return logits.masked_fill(~allowed(bitmask.to(logits.device), logits.shape[-1]), float("-inf"))


class EditConstraint:
    """A JSON schema compiled for one tokenizer. Build it with :func:`constraint_for` (cached)."""

    def __init__(self, schema: dict[str, Any], tokenizer: Any):
        self.schema = schema
        self.eos = tokenizer.eos_token_id
        self.vocab = len(tokenizer)
        self.width = (self.vocab + 31) // 32
        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=self.vocab)
        self.grammar = llguidance.LLMatcher.grammar_from_json_schema(laid_out(schema))

    def matcher(self, quiet: bool = False) -> Any:
        """A fresh llguidance matcher at the start of a self-edit (``quiet``: it prints no
        warning of its own when it refuses a token)."""
        m = llguidance.LLMatcher(self.tokenizer, self.grammar, log_level=0 if quiet else 1)
        if m.is_error():
            raise ConfigError(f"the self-edit schema does not compile: {m.get_error()}")
        return m

    def fill(self, matcher: Any, bitmask: Tensor, row: int) -> None:
        """Write the mask of ``matcher``'s next token into ``bitmask[row]`` (a CPU int32 tensor)."""
        llguidance.torch.fill_next_token_bitmask(matcher, bitmask, row)

    def masks(self, token_ids: list[int]) -> Tensor:
        """(T, W) int32: row ``t`` is the mask the sampler applied before token ``t`` of a
        self-edit (its completion ids, eos included). A token the schema refuses (a self-edit
        not written under this schema) leaves that row and the later ones all-allowed (-1),
        i.e. unconstrained, with a warning."""
        out = torch.full((len(token_ids), self.width), -1, dtype=torch.int32)
        m = self.matcher(quiet=True)
        for t, token in enumerate(token_ids):
            self.fill(m, out, t)
            if token == self.eos and m.is_stopped():
                break
            if not m.consume_token(token):
                out[t:] = -1
                log.warning("self-edit does not follow the schema; its log-probs from here on are unconstrained",
                            position=t, token=token)
                break
        return out

    def processor(self) -> "SchemaLogitsProcessor":
        """A transformers logits processor for one ``generate`` call."""
        return SchemaLogitsProcessor(self)


class SchemaLogitsProcessor:
    """Masks each row's next-token logits to the tokens the schema allows (one matcher per row,
    advanced by the token the row sampled last). Runs before temperature and top-p, which
    transformers applies after custom processors, so sampling draws from the renormalised
    constrained distribution."""

    def __init__(self, constraint: EditConstraint):
        self.constraint = constraint
        self.matchers: list[Any] = []  # one per row, made on the first call (the prompts, no token sampled yet)

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:  # (N, L), (N, V)
        c = self.constraint
        if not self.matchers:
            self.matchers = [c.matcher() for _ in range(input_ids.shape[0])]
        else:
            for m, token in zip(self.matchers, input_ids[:, -1].tolist()):
                if not m.is_stopped():  # a finished row is padded from here on: nothing to follow
                    m.consume_token(token)
        bitmask = torch.full((len(self.matchers), c.width), -1, dtype=torch.int32)
        for row, m in enumerate(self.matchers):
            if not m.is_error():  # a matcher in error (never expected) leaves its row unconstrained
                c.fill(m, bitmask, row)
        return mask_logits(scores, bitmask)


_CACHE: dict[tuple[int, str], tuple[Any, EditConstraint]] = {}
_CACHE_SIZE = 4


def constraint_for(schema: dict[str, Any], tokenizer: Any) -> EditConstraint:
    """The compiled constraint of ``schema`` for ``tokenizer``, built once per pair (building
    llguidance's tokenizer view takes about half a second)."""
    key = (id(tokenizer), json.dumps(schema, sort_keys=True))
    hit = _CACHE.get(key)
    if hit is None or hit[0] is not tokenizer:
        hit = (tokenizer, EditConstraint(schema, tokenizer))
        while len(_CACHE) >= _CACHE_SIZE:  # a reference policy brings a new tokenizer object each round
            del _CACHE[next(iter(_CACHE))]
        _CACHE[key] = hit
    return hit[1]
