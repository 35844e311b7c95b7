"""AdamW over stacked adapters: each adapter its own moments, learning rate and step count, and
its own gradient-norm clipping."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.adamw import adamw

from seal_core.inner.stacked import runs


class StackedAdamW:
    """torch.optim.AdamW's update on stacked adapter tensors, for the first ``n`` adapters only
    (the ones still stepping), with one learning rate per adapter. It runs the fused AdamW kernel
    that ``lora`` uses (``torch.optim.AdamW(fused=True)``) through torch's public functional
    ``torch.optim.adamw.adamw``, once per run of adapters sharing a learning rate, so each adapter
    gets the arithmetic it would get alone.

    Measured against calling the kernel ``torch._fused_adamw_`` directly (SmolLM2-135M-shaped
    stacks, 210 layers, r = 32, K = 8, 2-core CPU): bit-identical results, 51.3 against 50.8 ms
    per step, within noise."""

    def __init__(self, params: list[nn.Parameter], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.params, self.betas, self.eps, self.weight_decay = params, betas, eps, weight_decay
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, n: int, step: int, lrs: list[float]) -> None:
        """Step ``step`` (1-based) of the first ``n`` adapters, adapter j at learning rate ``lrs[j]``."""
        b1, b2 = self.betas
        for start, end, lr in runs(lrs[:n]):
            # the function adds 1 to each parameter's step count before the kernel reads it
            counts = torch.full((len(self.params),), float(step - 1), device=self.params[0].device).unbind()
            adamw([p[start:end] for p in self.params], [p.grad[start:end] for p in self.params],
                  [m[start:end] for m in self.m], [v[start:end] for v in self.v], [], list(counts), fused=True,
                  amsgrad=False, beta1=b1, beta2=b2, lr=lr, weight_decay=self.weight_decay, eps=self.eps,
                  maximize=False)


@torch.no_grad()
def clip_slots(params: list[torch.Tensor], slots: list[int], max_norm: float) -> None:
    """Scale each slot's gradient (over all its layers) to norm ``max_norm`` at most, as
    ``torch.nn.utils.clip_grad_norm_`` does for ``lora``'s one adapter."""
    # one norm per parameter over all its slots (not slot by slot: ~7k small ops a step at K = 8)
    norms = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(p.grad.flatten(1), dim=1) for p in params]), dim=0)
    coef = torch.ones_like(norms)
    chosen = torch.tensor(slots, dtype=torch.long, device=norms.device)
    coef[chosen] = torch.clamp(max_norm / (norms[chosen] + 1e-6), max=1.0)
    for p in params:
        p.grad.mul_(coef.view(-1, *[1] * (p.grad.dim() - 1)))
