"""A prompt prefix that the rows of a ``generate`` batch share, computed once per model.

Batched scoring asks many questions in one call, and each prompt starts with the same tokens: the
chat template's system turn and the instruction before the question (35 of about 52 tokens on
SmolLM2). ``generate`` computes that prefix once per row; here it is computed once per group of
rows that run on the same weights (one group per adapter under multi-lora routing) and its
key/value cache copied to the group's rows.

The batch is laid out prefix first, then each row's padding, then the rest of its prompt, so the
cached prefix sits at the same positions in every row. ``generate`` takes position ids from the
attention mask, so every token keeps the position it has under plain left padding; the
arithmetic differs from the plain path only in the order of float operations.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

#: the fewest shared tokens worth a separate forward call: below this the call's own overhead
#: (one pass through every layer) costs about what the shared tokens save
MIN_SHARED_TOKENS = 16


@dataclass
class SharedRows:
    """Which rows of a batch run on the same weights, so that their common prompt prefix can be
    computed once per group.

    ``groups[r]``: the group of row r (None: every row on the one model). ``route(groups)``: a
    context manager inside which row i of a batch runs on group ``groups[i]`` (None: no routing,
    one model); the whole generation runs inside ``route(groups)``.
    """

    groups: list[int] | None = None
    route: Callable[[list[int]], AbstractContextManager] | None = None

    def __post_init__(self) -> None:
        if self.route is not None and self.groups is None:
            raise ValueError("SharedRows: a route needs the groups of the rows it routes")

    def routed(self, groups: list[int] | None) -> AbstractContextManager:
        """The context that runs a batch whose row i is on group ``groups[i]`` (with a route,
        groups are always given: ``__post_init__``)."""
        return self.route(groups) if self.route is not None else nullcontext()


def common_prefix(rows: list[list[int]]) -> int:
    """How many leading tokens all ``rows`` share, leaving each row at least one token of its own."""
    first, limit = rows[0], min(len(row) for row in rows) - 1
    n = 0
    while n < limit and all(row[n] == first[n] for row in rows):
        n += 1
    return n


@functools.cache
def _cache_name() -> str:
    """``generate``'s keyword for a cache: ``cache`` in recent transformers, ``past_key_values`` before."""
    from transformers import GenerationMixin

    return "cache" if "cache" in inspect.signature(GenerationMixin.prepare_inputs_for_generation).parameters else "past_key_values"


#: models whose cache is not a plain per-layer key/value cache (sliding windows, recurrent
#: states): they always take the plain path
_UNSHAREABLE: weakref.WeakSet = weakref.WeakSet()


def shared_prefix_inputs(model: Any, rows: list[list[int]], pad_id: int, shared: SharedRows,
                         device: torch.device) -> dict[str, Any] | None:
    """``generate``'s inputs for the token ``rows`` with their common prefix already computed
    (``input_ids``, ``attention_mask`` and the cache), or None where sharing does not apply: fewer
    than :data:`MIN_SHARED_TOKENS` shared tokens, or a model whose cache is not a plain
    key/value cache."""
    prefix = common_prefix(rows)
    if prefix < MIN_SHARED_TOKENS or model in _UNSHAREABLE:
        return None
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    name = _cache_name()
    groups = shared.groups if shared.groups is not None else [0] * len(rows)
    distinct = list(dict.fromkeys(groups))
    head = torch.tensor([rows[0][:prefix]] * len(distinct), device=device)
    with shared.routed(distinct):
        out = model(input_ids=head, use_cache=True, logits_to_keep=1)
    cache = getattr(out, name)
    if type(cache) is not DynamicCache or any(type(layer) is not DynamicLayer for layer in cache.layers):
        _UNSHAREABLE.add(model)
        return None
    slot = {group: i for i, group in enumerate(distinct)}
    cache.reorder_cache(torch.tensor([slot[g] for g in groups], device=device))
    width = max(len(row) for row in rows) - prefix
    ids = [row[:prefix] + [pad_id] * (width - len(row) + prefix) + row[prefix:] for row in rows]
    mask = [[1] * prefix + [0] * (width - len(row) + prefix) + [1] * (len(row) - prefix) for row in rows]
    return {"input_ids": torch.tensor(ids, device=device), "attention_mask": torch.tensor(mask, device=device), name: cache}
