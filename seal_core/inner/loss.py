"""The output layer and cross-entropy of a packed batch, in chunks: no full logits tensor."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class LinearCrossEntropy(torch.autograd.Function):
    """Per-token cross-entropy of ``hidden @ weight.T`` computed in chunks, never holding all
    logits; the gradient w.r.t. ``hidden`` is computed on the way (``weight`` is frozen)."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk):  # hidden (N, H), weight (V, H), targets (N,)
        losses = hidden.new_empty(hidden.shape[0], dtype=torch.float32)
        grad = torch.empty_like(hidden)
        for s in range(0, hidden.shape[0], chunk):
            h, t = hidden[s:s + chunk], targets[s:s + chunk]
            logits = F.linear(h.to(weight.dtype), weight).float()  # (n, V)
            lse = torch.logsumexp(logits, dim=-1)
            losses[s:s + chunk] = lse - logits.gather(1, t[:, None]).squeeze(1)
            probs = logits.sub_(lse[:, None]).exp_()
            probs[torch.arange(len(t), device=t.device), t] -= 1.0  # d loss / d logits
            grad[s:s + chunk] = (probs.to(weight.dtype) @ weight).to(hidden.dtype)
        ctx.save_for_backward(grad)
        return losses

    @staticmethod
    def backward(ctx, grad_losses):
        (grad,) = ctx.saved_tensors
        g = grad_losses[:, None]
        # a row with zero weight contributes exactly nothing, even if its loss is NaN
        return torch.where(g != 0, grad * g, torch.zeros_like(grad)), None, None, None
