"""Stacked LoRA: K adapters on one frozen layer, with the adapter of each row or token chosen by a
shared :class:`Routing`. The building block of ``multi-lora``; a third-party updater can wrap
layers with :class:`StackedLoraLinear` the same way.

With no routing the wrapper returns the base layer's output itself, so between adaptations the
model computes exactly what the base model computes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
import torch.nn.functional as F
from torch import nn

#: (first, end, adapter): a run of rows or tokens that go through one adapter (-1: the base only)
Segments = list[tuple[int, int, int]]


class Routing:
    """Which adapter each row (or, while training, each token) goes through, shared by every
    wrapped layer of one model.

    Every change is made in one place and undone there: :meth:`rows`, :meth:`tokens` and
    :meth:`single` are context managers that route the passes inside them and restore what was
    routed before. :meth:`hold` routes every row through one adapter until :meth:`clear` (an
    updater's ``adapt`` until its ``reset``). Nothing else, the backward pass included, writes it.
    """

    def __init__(self) -> None:
        self._single: int | None = None  # every row through this adapter
        self._rows = 0  # with per-row routing: the batch size it is for (0: segments are tokens)
        self._segments: Segments | None = None
        self.bf16 = False  # the base matmuls in bf16 (the updater's precision, for one adaptation)

    @property
    def active(self) -> bool:
        return self._single is not None or self._segments is not None

    @property
    def held(self) -> int | None:
        """The adapter every row goes through (``hold`` or ``single``), or None."""
        return self._single

    def segments_for(self, rows: int, tokens: int) -> Segments:
        """The segments of a (rows, tokens / rows) batch, as token ranges."""
        if self._single is not None:
            return [(0, tokens, self._single)]
        assert self._segments is not None
        if self._rows:
            if rows != self._rows:
                raise RuntimeError(f"multi-lora routing covers {self._rows} rows, the batch has {rows}")
            per_row = tokens // rows
            return [(start * per_row, end * per_row, k) for start, end, k in self._segments]
        if self._segments[-1][1] != tokens:
            raise RuntimeError(f"multi-lora routing covers {self._segments[-1][1]} tokens, the batch has {tokens}")
        return self._segments

    @contextmanager
    def _routed(self, single: int | None, rows: int, segments: Segments | None) -> Iterator[None]:
        before = (self._single, self._rows, self._segments)
        self._single, self._rows, self._segments = single, rows, segments
        try:
            yield
        finally:
            self._single, self._rows, self._segments = before

    def rows(self, owners: list[int]) -> AbstractContextManager[None]:
        """Inside: row r goes to adapter ``owners[r]`` (-1: base only); runs of equal owners share
        one matmul, so rows grouped by owner are cheapest."""
        return self._routed(None, len(owners), runs(owners))

    def tokens(self, owners: list[int]) -> AbstractContextManager[None]:
        """Inside: token t of a packed (1, T) batch goes to adapter ``owners[t]``."""
        return self._routed(None, 0, runs(owners))

    def single(self, adapter: int | None) -> AbstractContextManager[None]:
        """Inside: every row goes through ``adapter`` (None: the base only)."""
        return self._routed(adapter, 0, None)

    def hold(self, adapter: int) -> None:
        """Every row through ``adapter`` from now until :meth:`clear`."""
        self._single, self._rows, self._segments = adapter, 0, None

    def clear(self) -> None:
        """No routing: every wrapped layer computes its base layer alone."""
        self._single, self._rows, self._segments = None, 0, None


def runs(owners: list[int]) -> Segments:
    """[(start, end, owner)] for the runs of equal owners."""
    found: Segments = []
    for i, owner in enumerate(owners):
        if found and found[-1][2] == owner:
            found[-1] = (found[-1][0], i + 1, owner)
        else:
            found.append((i, i + 1, owner))
    return found


class StackedLoraLinear(nn.Module):
    """``base_layer(x) + scale * B_k A_k x`` with adapter k chosen per row by the routing."""

    def __init__(self, base: nn.Linear, k: int, r: int, scale: float, dropout: float, routing: Routing):
        super().__init__()
        self.base_layer = base
        self.lora_A = nn.Parameter(torch.zeros(k, r, base.in_features, device=base.weight.device))  # [K, r, in]
        self.lora_B = nn.Parameter(torch.zeros(k, base.out_features, r, device=base.weight.device))  # [K, out, r]
        self.scale = scale
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.routing = routing
        self.bf16_weight: torch.Tensor | None = None  # not a buffer: never in state_dict
        self.bf16_bias: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        route = self.routing
        if not route.active:
            return self.base_layer(x)
        if route.bf16:
            y = F.linear(x.to(torch.bfloat16), self.bf16_weight, self.bf16_bias).to(x.dtype)
        else:
            y = self.base_layer(x)
        segments = route.segments_for(x.shape[0], x.shape[:-1].numel())
        return RoutedLora.apply(y, self.dropout(x).to(self.lora_A.dtype), self.lora_A, self.lora_B, self.scale, segments)


class RoutedLora(torch.autograd.Function):
    """``y += scale * B_k A_k x`` on each token segment routed to adapter k, in place on the base
    output ``y``. The backward returns the stacked adapters' gradients as whole [K, ...] tensors,
    each routed adapter's slot filled by one product per segment (no zero-filled K-slot gradient
    per segment, and no state outside the function: autograd accumulates them into ``.grad``);
    a slot no segment routes to gets zeros.

    ``y`` comes first because it is the tensor modified in place: with a bias the base output is
    a view (``F.linear`` on 3-d input is addmm then view), and autograd then routes the
    gradient of the function's *first* input into the view's base (measured: with ``x`` first,
    every model with biased projections, Qwen2 among them, failed in backward)."""

    @staticmethod
    def forward(ctx, y, x, lora_a, lora_b, scale: float, segments: Segments):
        x2, y2 = x.reshape(-1, x.shape[-1]), y.view(-1, y.shape[-1])
        projected = []  # x_s A_k^T per segment, kept for the backward
        for start, end, k in segments:
            if k < 0:
                projected.append(None)
                continue
            xa = x2[start:end] @ lora_a[k].t()
            y2[start:end].addmm_(xa.to(y2.dtype), lora_b[k].t().to(y2.dtype), alpha=scale)
            projected.append(xa)
        ctx.mark_dirty(y)
        ctx.save_for_backward(x, lora_a, lora_b)
        ctx.scale, ctx.segments, ctx.projected = scale, segments, projected
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, lora_a, lora_b = ctx.saved_tensors
        scale = ctx.scale
        x2, g2 = x.reshape(-1, x.shape[-1]), grad_y.reshape(-1, grad_y.shape[-1]).to(x.dtype)
        want_x, want_a, want_b = ctx.needs_input_grad[1], ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        grad_x = None
        if want_x:
            grad_x = (torch.zeros_like(x2) if any(k < 0 for _, _, k in ctx.segments) else torch.empty_like(x2))
        grad_a = torch.empty_like(lora_a) if want_a else None
        grad_b = torch.empty_like(lora_b) if want_b else None
        filled: set[int] = set()  # slots written so far: the first product overwrites, later ones add
        for (start, end, k), xa in zip(ctx.segments, ctx.projected):
            if k < 0:
                continue
            g = g2[start:end]
            beta = 1 if k in filled else 0  # beta=0 ignores what the fresh tensor held (even NaN)
            filled.add(k)
            if grad_b is not None:
                grad_b[k].addmm_(g.t(), xa, beta=beta, alpha=scale)
            grad_xa = (g @ lora_b[k]).mul_(scale)
            if grad_a is not None:
                grad_a[k].addmm_(grad_xa.t(), x2[start:end], beta=beta)
            if want_x:
                torch.mm(grad_xa, lora_a[k], out=grad_x[start:end])
        for grad in (grad_a, grad_b):
            if grad is not None and len(filled) < grad.shape[0]:
                grad[[k for k in range(grad.shape[0]) if k not in filled]] = 0
        return grad_y, (None if grad_x is None else grad_x.view_as(x)), grad_a, grad_b, None, None
