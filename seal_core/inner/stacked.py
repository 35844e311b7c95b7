"""Stacked LoRA: K adapters on one frozen layer, with the adapter of each row or token chosen by a
shared :class:`Routing`. The building block of ``multi-lora``; a third-party updater can wrap
layers with :class:`StackedLoraLinear` the same way.

With no routing the wrapper returns the base layer's output itself, so between adaptations the
model computes exactly what the base model computes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Routing:
    """Which adapter each row (or, while training, each token) goes through, shared by every
    wrapped layer of one model."""

    def __init__(self) -> None:
        self.single: int | None = None  # every row through this adapter
        self.rows = 0  # with per-row routing: the batch size it is for (0: segments are tokens)
        self.segments: list[tuple[int, int, int]] | None = None  # (first, end, adapter or -1)
        self.bf16 = False
        self.written: set[tuple[int, int]] | None = None  # while training: (layer, adapter) with a gradient this step

    @property
    def active(self) -> bool:
        return self.single is not None or self.segments is not None

    def set_rows(self, owners: list[int] | None) -> None:
        """Route row r to adapter ``owners[r]`` (-1: base only); runs of equal owners share one
        matmul, so rows grouped by owner are cheapest."""
        self.single = None
        self.segments = None if owners is None else runs(owners)
        self.rows = 0 if owners is None else len(owners)

    def set_tokens(self, owners: list[int]) -> None:
        """Route token t of a packed (1, T) batch to adapter ``owners[t]``."""
        self.single, self.rows, self.segments = None, 0, runs(owners)


def runs(owners: list[int]) -> list[tuple[int, int, int]]:
    """[(start, end, owner)] for the runs of equal owners."""
    runs: list[tuple[int, int, int]] = []
    for i, owner in enumerate(owners):
        if runs and runs[-1][2] == owner:
            runs[-1] = (runs[-1][0], i + 1, owner)
        else:
            runs.append((i, i + 1, owner))
    return runs


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
        tokens = x.shape[:-1].numel()
        if route.single is not None:
            segments = [(0, tokens, route.single)]
        elif route.rows:
            if x.shape[0] != route.rows:
                raise RuntimeError(f"multi-lora routing covers {route.rows} rows, the batch has {x.shape[0]}")
            per_row = tokens // route.rows
            segments = [(start * per_row, end * per_row, k) for start, end, k in route.segments]
        else:
            if route.segments[-1][1] != tokens:
                raise RuntimeError(f"multi-lora routing covers {route.segments[-1][1]} tokens, the batch has {tokens}")
            segments = route.segments
        return RoutedLora.apply(y, self.dropout(x).to(self.lora_A.dtype), self.lora_A, self.lora_B, self, segments)


class RoutedLora(torch.autograd.Function):
    """``y += scale * B_k A_k x`` on each token segment routed to adapter k, in place on the base
    output ``y``. The backward writes each adapter's gradients straight into its slot of the
    stacked ``.grad`` tensors (the first segment of a step overwrites, later ones add), instead of
    letting autograd build, zero-fill and sum one K-slot gradient per segment.

    ``y`` comes first because it is the tensor modified in place: with a bias the base output is
    a view (``F.linear`` on 3-d input is addmm then view), and autograd then routes the
    gradient of the function's *first* input into the view's base (measured: with ``x`` first,
    every model with biased projections, Qwen2 among them, failed in backward)."""

    @staticmethod
    def forward(ctx, y, x, lora_a, lora_b, layer, segments):
        x2, y2 = x.reshape(-1, x.shape[-1]), y.view(-1, y.shape[-1])
        projected = []  # x_s A_k^T per segment, kept for the backward
        for start, end, k in segments:
            if k < 0:
                projected.append(None)
                continue
            xa = x2[start:end] @ lora_a[k].t()
            y2[start:end].addmm_(xa.to(y2.dtype), lora_b[k].t().to(y2.dtype), alpha=layer.scale)
            projected.append(xa)
        ctx.mark_dirty(y)
        ctx.save_for_backward(x, lora_a, lora_b)
        ctx.layer, ctx.segments, ctx.projected = layer, segments, projected
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, lora_a, lora_b = ctx.saved_tensors
        layer, scale = ctx.layer, ctx.layer.scale
        written = layer.routing.written
        x2, g2 = x.reshape(-1, x.shape[-1]), grad_y.reshape(-1, grad_y.shape[-1]).to(x.dtype)
        want_x = ctx.needs_input_grad[1]
        grad_x = None
        if want_x:
            grad_x = (torch.zeros_like(x2) if any(k < 0 for _, _, k in ctx.segments) else torch.empty_like(x2))
        for (start, end, k), xa in zip(ctx.segments, ctx.projected):
            if k < 0:
                continue
            g = g2[start:end]
            if written is not None:
                first = (id(layer), k) not in written
                written.add((id(layer), k))
                # beta=0 ignores what the slot held (even NaN): no zeroing pass between steps
                layer.lora_B.grad[k].addmm_(g.t(), xa, beta=0 if first else 1, alpha=scale)
            grad_xa = (g @ lora_b[k]).mul_(scale)
            if written is not None:
                layer.lora_A.grad[k].addmm_(grad_xa.t(), x2[start:end], beta=0 if first else 1)
            if want_x:
                torch.mm(grad_xa, lora_a[k], out=grad_x[start:end])
        return grad_y, (None if grad_x is None else grad_x.view_as(x)), None, None, None, None
