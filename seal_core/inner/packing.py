"""Packed training batches: several rows in one sequence, no padding, attention row by row.

:func:`pack_rows` cuts a step's rows into packs of at most ``max_tokens`` tokens. A pack runs
through the model inside :func:`packed_attention`, which switches the model's attention to
:data:`PACKED_ATTENTION` (registered with transformers at import) and back; the forward call
passes the pack's row lengths as the keyword argument :data:`LENGTHS_KWARG`, which transformers
hands to the attention function of every layer. It runs causal attention within each row only:
each row sees itself, as if alone in its batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers import AttentionInterface

PACKED_ATTENTION = "seal_packed_rows"  # transformers attention implementation used while training
LENGTHS_KWARG = "seal_packed_lengths"  # the forward keyword argument that carries a pack's row lengths


def _packed_rows_attention(module, query, key, value, attention_mask, **kwargs):
    """Attention of a packed (1, T) sequence one row at a time, each row causal over itself:
    what the row gets alone in a batch, at the cost of its own length squared rather than the
    whole pack's (a block-diagonal mask over the pack would compute, then discard, every
    cross-row score). transformers builds no mask for an implementation it does not know."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    lengths = kwargs.pop(LENGTHS_KWARG, None)
    if lengths is None or sum(lengths) != query.shape[2] or query.shape[0] != 1:
        raise RuntimeError(f"{PACKED_ATTENTION} attention runs only on one packed row with its {LENGTHS_KWARG}")
    kwargs.pop("is_causal", None)
    outputs, start = [], 0
    for n in lengths:
        span = slice(start, start + n)
        out, _ = sdpa_attention_forward(module, query[:, :, span], key[:, :, span], value[:, :, span], None,
                                        is_causal=True, **kwargs)
        outputs.append(out)  # (1, n, heads, head_dim)
        start += n
    return torch.cat(outputs, dim=1), None


AttentionInterface.register(PACKED_ATTENTION, _packed_rows_attention)


@contextmanager
def packed_attention(model: Any) -> Iterator[None]:
    """Inside: ``model`` attends row by row within packed sequences; its attention
    implementation is restored on exit, whatever happens inside."""
    before = model.config._attn_implementation
    model.set_attn_implementation(PACKED_ATTENTION)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def pack_rows(rows: list[tuple], max_tokens: int) -> list[list[tuple]]:
    """Consecutive runs of rows (slot, ids, targets) of at most ``max_tokens`` tokens together
    (a longer row is a pack of its own); each run becomes one packed sequence."""
    packs: list[list[tuple]] = []
    size = 0
    for row in rows:
        if packs and size + len(row[1]) <= max_tokens:
            packs[-1].append(row)
            size += len(row[1])
        else:
            packs.append([row])
            size = len(row[1])
    return packs
