"""Inner updater ``multi-lora``: K self-edits trained at once, one LoRA adapter each.

Every adapted ``nn.Linear`` of the student is wrapped once per run in a :class:`StackedLoraLinear`
that keeps the frozen base layer (as ``base_layer``, like peft) and K stacked adapters
(``lora_A``: [K, r, in], ``lora_B``: [K, out, r]). A shared :class:`Routing` says, for the forward
pass at hand, which adapter each batch row goes through; with no routing the wrapper returns the
base layer's output itself, so between adaptations the student is exactly the base model.

One optimizer step trains every active self-edit: the rows of all edits' batches are packed into
one sequence (no padding; position ids restart at every row and attention runs row by row, so
each row sees only itself), which goes through one forward and one backward pass over the shared
base; each adapter's tokens form one contiguous segment. The loss is the sum over adapters of
each adapter's own mean token loss (so each adapter's gradient is the gradient it would get
alone), the backward writes each adapter's gradients straight into its slot, and AdamW (the fused
kernel ``lora`` uses) runs per adapter with its own moments and learning rate; an edit with fewer
steps stops stepping. Initial values are the ones ``lora`` gets from peft under
``torch.manual_seed(0)``, and each edit's data order is drawn from its own generator exactly as
``lora`` draws it from the global one, so each adapter follows ``lora``'s optimisation trajectory
up to float rounding (checked by tests/test_multi_lora.py). Packing needs a transformers model
that takes ``position_ids`` and the attention-function interface (current decoder-only models do).

``precision: bf16`` runs the base matmuls (and the output layer of the loss) in bfloat16 from a
bf16 copy of the frozen weights made per batch, with fp32 adapters, gradients and optimizer
state; outside an adaptation nothing changes. On CPUs with AMX (and on GPUs) that is several
times faster than fp32; on CPUs without native bf16 it is slower. Its effect on scores is
measured by benchmarks/inner_loop.py. Adapters and their optimizer state are fp32 whatever the
model's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import structlog
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface

from seal_core import InnerUpdater, hookimpl
from seal_core.components import AdaptedBatch
from seal_core.types import LoadedModel, TrainingSet
from seal_plugins.lora_updater import (LoraOptions, NonFiniteLoss, peft_initial_a, step_batches, tokenize_examples,
                                      warn_if_truncated)

log = structlog.get_logger(__name__)


@dataclass
class MultiLoraOptions(LoraOptions):
    """``lora``'s options (same meaning, same defaults) plus how many edits train at once."""

    max_adapters: int = 8  # K: self-edits trained together (memory grows with K)
    precision: Literal["fp32", "bf16"] = "fp32"  # dtype of the frozen base matmuls during adaptation
    loss_chunk_tokens: int = 512  # tokens per chunk of the output layer + loss (bounds memory)
    pack_tokens: int = 2048  # tokens per packed forward pass; a step's rows beyond it take more passes

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_adapters < 1:
            raise ValueError(f"max_adapters must be >= 1, got {self.max_adapters}")
        if self.loss_chunk_tokens < 1:
            raise ValueError(f"loss_chunk_tokens must be >= 1, got {self.loss_chunk_tokens}")
        if self.pack_tokens < 1:
            raise ValueError(f"pack_tokens must be >= 1, got {self.pack_tokens}")
        if self.autocast_bf16:  # lora's switch; here it means bf16 base matmuls
            self.precision = "bf16"


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
        self.segments = None if owners is None else _runs(owners)
        self.rows = 0 if owners is None else len(owners)

    def set_tokens(self, owners: list[int]) -> None:
        """Route token t of a packed (1, T) batch to adapter ``owners[t]``."""
        self.single, self.rows, self.segments = None, 0, _runs(owners)


def _runs(owners: list[int]) -> list[tuple[int, int, int]]:
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
        return _RoutedLora.apply(y, self.dropout(x).to(self.lora_A.dtype), self.lora_A, self.lora_B, self, segments)


class _RoutedLora(torch.autograd.Function):
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


class _LinearCrossEntropy(torch.autograd.Function):
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


PACKED_ATTENTION = "seal_packed_rows"  # transformers attention implementation used while training
_packed_lengths: ContextVar[list[int] | None] = ContextVar("multi_lora_packed_lengths", default=None)


def _packed_rows_attention(module, query, key, value, attention_mask, **kwargs):
    """Attention of a packed (1, T) sequence one row at a time, each row causal over itself:
    what the row gets alone in a batch, at the cost of its own length squared rather than the
    whole pack's (a block-diagonal mask over the pack would compute, then discard, every
    cross-row score). transformers builds no mask for an implementation it does not know."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    lengths = _packed_lengths.get()
    if lengths is None or sum(lengths) != query.shape[2] or query.shape[0] != 1:
        raise RuntimeError(f"{PACKED_ATTENTION} attention runs only inside multi-lora training, on one packed row")
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


def _packs(rows: list[tuple], max_tokens: int) -> list[list[tuple]]:
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


class _StackedAdamW:
    """torch.optim.AdamW's update on stacked adapter tensors, for the first ``n`` adapters only
    (the ones still stepping), with one learning rate per adapter. It runs the fused AdamW kernel
    that ``lora`` uses (``torch.optim.AdamW(fused=True)``), once per run of adapters sharing a
    learning rate, so each adapter gets the arithmetic it would get alone."""

    def __init__(self, params: list[nn.Parameter], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.params, self.betas, self.eps, self.weight_decay = params, betas, eps, weight_decay
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, n: int, step: int, lrs: list[float]) -> None:
        b1, b2 = self.betas
        count = torch.tensor(float(step), device=self.params[0].device)  # the kernel only reads it
        for start, end, lr in _runs(lrs[:n]):
            torch._fused_adamw_([p[start:end] for p in self.params], [p.grad[start:end] for p in self.params],
                                [m[start:end] for m in self.m], [v[start:end] for v in self.v], [],
                                [count] * len(self.params), lr=lr, beta1=b1, beta2=b2,
                                weight_decay=self.weight_decay, eps=self.eps, amsgrad=False, maximize=False)


class _Installed:
    """What ``multi-lora`` added to one model: the wrappers, their routing, initial values."""

    def __init__(self, signature: tuple, layers: list[StackedLoraLinear], routing: Routing,
                 initial_a: list[torch.Tensor]):
        self.signature, self.layers, self.routing, self.initial_a = signature, layers, routing, initial_a
        self.head_bf16: torch.Tensor | None = None  # bf16 copy of the output layer, during bf16 adaptation


class _Batch(AdaptedBatch):
    def __init__(self, installed: _Installed, slots: list[int | None], rejected: dict[int, str]):
        self._installed, self._slots, self.rejected = installed, slots, rejected

    @contextmanager
    def use(self, index: int) -> Iterator[None]:
        routing = self._installed.routing
        routing.single = self._slots[index]
        try:
            yield
        finally:
            routing.single = None

    @contextmanager
    def rows(self, owners: list[int]) -> Iterator[None]:
        routing = self._installed.routing
        routing.set_rows([self._slots[i] if i >= 0 else -1 for i in owners])
        try:
            yield
        finally:
            routing.set_rows(None)


class MultiLoraUpdater(InnerUpdater):
    """K self-edits at once: stacked LoRA adapters on one frozen base (see the module docstring)."""

    name = "multi-lora"
    Options = MultiLoraOptions

    def batch_capacity(self) -> int:
        return self.options.max_adapters

    # -- wrapping ------------------------------------------------------------------------------

    def _install(self, student: LoadedModel) -> _Installed:
        """Wrap the target layers on first use (the record lives on the model object)."""
        model, opts = student.model, self.options
        signature = (opts.r, opts.alpha, opts.dropout, tuple(opts.target_modules), opts.max_adapters)
        found = getattr(model, "_seal_multi_lora", None)
        if found is not None:
            if found.signature != signature:
                raise RuntimeError(f"{student.spec} already carries multi-lora adapters {found.signature}, not {signature}")
            return found
        if getattr(model, "_seal_lora", None) is not None:
            raise RuntimeError(f"{student.spec} already carries the `lora` updater's adapters; use one inner updater per model")
        initial = peft_initial_a(model, opts)
        if not initial:
            raise ValueError(f"inner.target_modules {opts.target_modules} match no linear layer of {student.spec}")
        routing, layers, initial_a = Routing(), [], []
        for name, a in initial.items():
            parent_name, _, leaf = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            layer = StackedLoraLinear(getattr(parent, leaf), opts.max_adapters, opts.r, opts.alpha / opts.r,
                                      opts.dropout, routing)
            setattr(parent, leaf, layer)
            layers.append(layer)
            initial_a.append(a.to(layer.lora_A.device))
        for pname, param in model.named_parameters():
            param.requires_grad_("lora_" in pname)
        installed = _Installed(signature, layers, routing, initial_a)
        model._seal_multi_lora = installed
        self._reset_slots(installed)
        log.info("multi-lora adapters injected", model=student.spec, r=opts.r, adapters=opts.max_adapters,
                 layers=len(layers), parameters_per_adapter=sum(a.numel() + l.lora_B[0].numel() for a, l in zip(initial_a, layers)))
        return installed

    @torch.no_grad()
    def _reset_slots(self, installed: _Installed) -> None:
        for layer, a in zip(installed.layers, installed.initial_a):
            layer.lora_A.copy_(a.expand_as(layer.lora_A))
            layer.lora_B.zero_()
            layer.lora_A.grad = layer.lora_B.grad = None

    @torch.no_grad()
    def _set_precision(self, installed: _Installed, model: Any, bf16: bool) -> None:
        """bf16 copies of the frozen weights for this adaptation (dropped again by reset)."""
        installed.routing.bf16 = bf16
        for layer in installed.layers:
            base = layer.base_layer
            layer.bf16_weight = base.weight.to(torch.bfloat16) if bf16 else None
            layer.bf16_bias = base.bias.to(torch.bfloat16) if bf16 and base.bias is not None else None
        head = model.get_output_embeddings()
        installed.head_bf16 = head.weight.to(torch.bfloat16) if bf16 and head is not None else None

    # -- the InnerUpdater API ----------------------------------------------------------------

    def adapt(self, student: LoadedModel, data: TrainingSet | list[str]) -> LoadedModel:
        """One self-edit, data order from the global RNG (as ``lora``)."""
        data = TrainingSet.coerce(data)
        installed = self._install(student)
        if not data:
            return student
        rejected = self._train(student, installed, [data], [torch.default_generator])
        if rejected:
            self.reset(student)
            raise NonFiniteLoss(rejected[0])
        installed.routing.single = 0
        return student

    def adapt_batch(self, student: LoadedModel, datas: list[TrainingSet], seeds: list[int]) -> AdaptedBatch:
        if len(datas) > self.options.max_adapters:
            raise ValueError(f"multi-lora holds {self.options.max_adapters} adapters, got {len(datas)} self-edits")
        installed = self._install(student)
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        with_data = [i for i, d in enumerate(datas) if d]
        rejected = self._train(student, installed, [datas[i] for i in with_data], [generators[i] for i in with_data])
        slots: list[int | None] = [None] * len(datas)
        for slot, i in enumerate(with_data):
            slots[i] = slot
        return _Batch(installed, slots, {with_data[slot]: why for slot, why in rejected.items()})

    @torch.no_grad()
    def merge(self, student: LoadedModel) -> None:
        """Fold the adapter of the last :meth:`adapt` into the base weights (W += scale * B @ A),
        then reset the adapters (``experiment=continual``)."""
        installed = self._install(student)
        for layer in installed.layers:
            weight = layer.base_layer.weight
            weight += (layer.scale * layer.lora_B[0] @ layer.lora_A[0]).to(weight.dtype)
        self.reset(student)

    @torch.no_grad()
    def reset(self, student: LoadedModel) -> None:
        installed = self._install(student)
        installed.routing.set_rows(None)
        self._reset_slots(installed)
        self._set_precision(installed, student.model, False)

    # -- training ------------------------------------------------------------------------------

    def _train(self, student: LoadedModel, installed: _Installed, datas: list[TrainingSet],
               generators: list[torch.Generator]) -> dict[int, str]:
        """Train adapter j on ``datas[j]``; returns {j: reason} for the ones that failed."""
        opts, model, device = self.options, student.model, student.device
        plans = [list(step_batches(d, opts, g)) for d, g in zip(datas, generators)]  # as lora draws them
        # slots ordered by number of steps, so the adapters still stepping are always a prefix
        order = sorted(range(len(datas)), key=lambda j: -len(plans[j]))
        rows_of = []  # per slot: per example (input_ids, next-token target at each position or -100)
        for j in order:
            d = datas[j]
            warn_if_truncated(student.tokenizer, d.texts, opts.max_length)
            enc = [tokenize_examples(student.tokenizer, [e], opts.max_length, device, d.loss_on == "completion")
                   for e in d.examples]
            rows_of.append([(x["input_ids"][0], F.pad(x["labels"][0, 1:], (0, 1), value=-100)) for x in enc])
        lrs = [datas[j].learning_rate or opts.learning_rate for j in order]
        steps = [len(plans[j]) for j in order]
        self._reset_slots(installed)
        self._set_precision(installed, model, opts.precision == "bf16")
        params = [p for layer in installed.layers for p in (layer.lora_A, layer.lora_B)]
        optimizer = _StackedAdamW(params, weight_decay=opts.weight_decay)
        failed: dict[int, str] = {}  # slot -> reason
        routing = installed.routing
        attention = model.config._attn_implementation
        model.set_attn_implementation(PACKED_ATTENTION)
        model.train()
        try:
            for p in params:
                p.grad = torch.zeros_like(p)
            for step in range(max(steps, default=0)):
                n = sum(1 for s in steps if s > step)
                live = [s for s in range(n) if s not in failed]
                if not live:
                    break
                rows = [(s, *rows_of[s][i]) for s in live for i in plans[order[s]][step]]  # (slot, ids, targets)
                counts = [0] * n  # labelled tokens per adapter in this step
                for s, _, targets in rows:
                    counts[s] += int((targets != -100).sum())
                weights = torch.tensor([1.0 / max(c, 1) for c in counts], device=device)
                # all rows of the step packed into one sequence (no padding): one forward and one
                # backward pass, each adapter's tokens a contiguous segment
                means = self._backward(model, installed, _packs(rows, opts.pack_tokens), weights)
                if len(live) > 1 and not all(math.isfinite(means[s]) for s in live):
                    # a diverged adapter's NaNs can reach other rows of its pack through attention
                    # (a masked-out weight of 0 times NaN is NaN): redo the step one adapter per
                    # pack, so only the adapters that really diverged are rejected
                    alone = [pack for s in live for pack in _packs([r for r in rows if r[0] == s], opts.pack_tokens)]
                    means = self._backward(model, installed, alone, weights)
                for s in live:
                    if not math.isfinite(means[s]):
                        failed[s] = f"inner-loop loss became {means[s]}"
                if any(s not in failed for s in live):
                    optimizer.step(n, step + 1, lrs)  # failed slots step too, harmlessly: reset later
        finally:
            routing.set_rows(None)
            routing.written = None
            _packed_lengths.set(None)
            model.set_attn_implementation(attention)
            model.eval()
            for p in params:
                p.grad = None
        # slot s holds adapter order[s]; move adapter j to slot j so callers can index by position
        self._permute_slots(installed, order)
        return {order[s]: why for s, why in failed.items()}

    def _backward(self, model: Any, installed: _Installed, packs: list[list[tuple]], weights: torch.Tensor) -> list[float]:
        """Forward and backward of one optimizer step over its packed rows; writes the adapters'
        gradients and returns each adapter's mean token loss."""
        routing, device = installed.routing, weights.device
        routing.written = set()  # the first gradient of each (layer, adapter) this step overwrites
        sums = torch.zeros(len(weights), device=device)
        for pack in packs:
            owners = [r[0] for r in pack for _ in range(len(r[1]))]
            routing.set_tokens(owners)
            tok_loss, tok_owner = self._token_losses(model, installed, pack, torch.tensor(owners, device=device))
            sums.index_add_(0, tok_owner, tok_loss.detach())
            # the sum over adapters of each one's mean loss: adapter s gets the gradient it would get alone
            (tok_loss * weights[tok_owner]).sum().backward()
        return (sums * weights).tolist()

    @torch.no_grad()
    def _permute_slots(self, installed: _Installed, order: list[int]) -> None:
        """Slot s holds adapter order[s]; afterwards slot j holds adapter j."""
        if order == sorted(order):
            return
        inverse = torch.tensor(sorted(range(len(order)), key=lambda s: order[s]), dtype=torch.long)
        for layer in installed.layers:
            for p in (layer.lora_A, layer.lora_B):
                p[:len(order)] = p[:len(order)][inverse.to(p.device)]

    def _token_losses(self, model: Any, installed: _Installed, pack: list[tuple], owners: torch.Tensor):
        """Per-token losses (next-token cross-entropy at every labelled position) of rows
        (slot, ids, targets) packed into one sequence, and each loss's adapter. Position ids
        restart at every row and attention runs row by row (:func:`_packed_rows_attention`), so
        each row sees only itself, as if alone in its batch."""
        input_ids = torch.cat([r[1] for r in pack])[None]
        positions = torch.cat([torch.arange(len(r[1]), device=input_ids.device) for r in pack])[None]
        _packed_lengths.set([len(r[1]) for r in pack])
        targets = torch.cat([r[2] for r in pack])
        valid = targets != -100
        head = model.get_output_embeddings()
        plain_head = (isinstance(head, nn.Linear) and head.bias is None and hasattr(model, "get_decoder")
                      and getattr(model.config, "final_logit_softcapping", None) is None
                      and getattr(model.config, "logit_scale", None) is None)
        if plain_head:
            hidden = model.get_decoder()(input_ids=input_ids, position_ids=positions, use_cache=False).last_hidden_state
            weight = installed.head_bf16 if installed.routing.bf16 else head.weight
            losses = _LinearCrossEntropy.apply(hidden[0][valid], weight.detach(), targets[valid], self.options.loss_chunk_tokens)
        else:
            logits = model(input_ids=input_ids, position_ids=positions, use_cache=False).logits[0][valid].float()
            losses = F.cross_entropy(logits, targets[valid], reduction="none")
        return losses, owners[valid]


@hookimpl
def seal_register_inner_updaters(register):
    register(MultiLoraUpdater())
