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
steps stops stepping, and with ``stop_loss`` (adaptive training) an adapter whose epoch's mean loss
fell below it leaves the pack, as ``lora`` stops there. Each edit's initial lora_A (``adapter_init``) and data order are drawn
from its own generator exactly as ``lora`` draws them from the global one, so each adapter follows ``lora``'s optimisation trajectory
up to float rounding (checked by tests/unit/test_multi_lora.py). Packing needs a transformers model
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
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
import torch
import torch.nn.functional as F
from torch import nn

from seal_core import InnerUpdater, hookimpl
from seal_core.api.components import AdaptedBatch
from seal_core.api.errors import NonFiniteLoss
from seal_core.inner.compiling import compiled_layers
from seal_core.inner import (LENGTHS_KWARG, LinearCrossEntropy, LoraOptions, Routing, StackedAdamW, StackedLoraLinear, clip_slots,
                             adapter_state, draw_init_seed, epoch_mean_below, learning_rate_at, pack_rows, packed_attention,
                             peft_initial_a, planned_steps, seeded_lora_a, step_batches, steps_per_epoch, tokenize_examples,
                             warn_if_truncated)
from seal_core.api.types import LoadedModel, TrainingSet

log = structlog.get_logger(__name__)


@dataclass
class MultiLoraOptions(LoraOptions):
    """``lora``'s options (same meaning, same defaults) plus how many edits train at once."""

    max_adapters: int = 8  # K: self-edits trained together (memory grows with K)
    precision: Literal["fp32", "bf16"] = "fp32"  # dtype of the frozen base matmuls during adaptation
    loss_chunk_tokens: int = 512  # tokens per chunk of the output layer + loss (bounds memory)
    pack_tokens: int = 2048  # tokens per packed forward pass; a step's rows beyond it take more passes
    # torch.compile the decoder layers while training (seal_core/inner/compiling.py). Off by
    # default: on a 2-core CPU (embedded model, K = 8, fp32) the first batch compiled for 504 s and
    # the next ran 1.33x slower than eager (docs/reports/2026-12-06-round-speed.md); worth
    # measuring where the step waits on kernel launches (GPUs: benchmarks/gpu_check.py)
    compile: bool = False

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


class _Installed:
    """What ``multi-lora`` added to one model (the state in its adapter record): the wrappers,
    their routing, the adapters' initial values."""

    def __init__(self, layers: list[StackedLoraLinear], routing: Routing, initial_a: list[torch.Tensor]):
        self.layers, self.routing, self.initial_a = layers, routing, initial_a
        self.head_bf16: torch.Tensor | None = None  # bf16 copy of the output layer, during bf16 adaptation


@dataclass
class _Plan:
    """One training of several adapters. Slot s trains adapter ``order[s]``; slots are ordered by
    their number of steps, so the slots still stepping are always a prefix."""

    order: list[int]
    batches: list[list[list[int]]]  # per slot: per step, the indices of its examples
    rows_of: list[list[tuple[torch.Tensor, torch.Tensor]]]  # per slot: per example (ids, next-token targets or -100)
    lrs: list[float]
    steps: list[int]
    per_epoch: list[int]
    init_seeds: list[int] | None  # per slot: the seed of its initial lora_A (adapter_init=per-edit)
    device: Any
    epoch_losses: list[list[float]] = field(default_factory=list)  # per slot: this epoch's step losses
    trained: list[dict[str, int]] = field(default_factory=list)  # per slot: optimizer steps and tokens under the loss
    stopped: set[int] = field(default_factory=set)  # slots whose texts are learned (stop_loss)

    @classmethod
    def of(cls, student: LoadedModel, opts: MultiLoraOptions, datas: list[TrainingSet],
           generators: list[torch.Generator]) -> "_Plan":
        # as lora draws them: the adapter's initialisation first, then the data order
        init_seeds = [draw_init_seed(g) for g in generators] if opts.adapter_init == "per-edit" else None
        plans = [list(step_batches(d, opts, g)) for d, g in zip(datas, generators)]
        order = sorted(range(len(datas)), key=lambda j: -len(plans[j]))
        rows_of = []
        for j in order:
            d = datas[j]
            warn_if_truncated(student.tokenizer, d.texts, opts.max_length)
            enc = [tokenize_examples(student.tokenizer, [e], opts.max_length, student.device, d.loss_on == "completion",
                                     opts.loss_on_eos)
                   for e in d.examples]
            rows_of.append([(x["input_ids"][0], F.pad(x["labels"][0, 1:], (0, 1), value=-100)) for x in enc])
        return cls(order=order, batches=[plans[j] for j in order], rows_of=rows_of,
                   lrs=[datas[j].learning_rate or opts.learning_rate for j in order],
                   steps=[len(plans[j]) for j in order],
                   per_epoch=[steps_per_epoch(len(datas[j].examples), opts.batch_size) for j in order],
                   init_seeds=None if init_seeds is None else [init_seeds[j] for j in order], device=student.device,
                   epoch_losses=[[] for _ in order], trained=[{"steps": 0, "tokens": 0} for _ in order])


class _Batch(AdaptedBatch):
    def __init__(self, installed: _Installed, slots: list[int | None], rejected: dict[int, str]):
        self._installed, self._slots, self.rejected = installed, slots, rejected

    def use(self, index: int) -> AbstractContextManager[None]:
        return self._installed.routing.single(self._slots[index])

    def rows(self, owners: list[int]) -> AbstractContextManager[None]:
        return self._installed.routing.rows([self._slots[i] if i >= 0 else -1 for i in owners])


class MultiLoraUpdater(InnerUpdater):
    """K self-edits at once: stacked LoRA adapters on one frozen base (see the module docstring)."""

    name = "multi-lora"
    Options = MultiLoraOptions

    def batch_capacity(self) -> int:
        return self.options.max_adapters

    def planned_steps(self, data: TrainingSet) -> int:
        return planned_steps(data, self.options)

    # -- wrapping ------------------------------------------------------------------------------

    def _install(self, student: LoadedModel) -> _Installed:
        """Wrap the target layers on first use (kept in the model's adapter record)."""
        opts = self.options
        signature = (opts.r, opts.alpha, opts.dropout, tuple(opts.target_modules), opts.max_adapters)
        return adapter_state(student.model, self.name, signature, student.spec, lambda: self._wrap(student))

    def _wrap(self, student: LoadedModel) -> _Installed:
        model, opts = student.model, self.options
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
        installed = _Installed(layers, routing, initial_a)
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
    def _initialise_slots(self, installed: _Installed, seeds: list[int]) -> None:
        """Slot s's lora_A drawn from ``seeds[s]``, as ``lora`` draws one edit's."""
        shapes = [a.shape for a in installed.initial_a]
        for slot, seed in enumerate(seeds):
            for layer, value in zip(installed.layers, seeded_lora_a(shapes, seed)):
                layer.lora_A[slot].copy_(value)

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
        rejected, counted = self._train(student, installed, [data], [torch.default_generator])
        if rejected:
            self.reset(student)
            raise NonFiniteLoss(rejected[0])
        installed.routing.hold(0)  # until reset
        self.trained = counted.get(0)
        return student

    def adapt_batch(self, student: LoadedModel, datas: list[TrainingSet], seeds: list[int]) -> AdaptedBatch:
        if len(datas) > self.options.max_adapters:
            raise ValueError(f"multi-lora holds {self.options.max_adapters} adapters, got {len(datas)} self-edits")
        installed = self._install(student)
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        with_data = [i for i, d in enumerate(datas) if d]
        rejected, counted = self._train(student, installed, [datas[i] for i in with_data],
                                        [generators[i] for i in with_data])
        slots: list[int | None] = [None] * len(datas)
        for slot, i in enumerate(with_data):
            slots[i] = slot
        batch = _Batch(installed, slots, {with_data[slot]: why for slot, why in rejected.items()})
        batch.trained = {with_data[slot]: counts for slot, counts in counted.items()}
        return batch

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
        installed.routing.clear()
        self._reset_slots(installed)
        self._set_precision(installed, student.model, False)

    # -- training ------------------------------------------------------------------------------

    def _train(self, student: LoadedModel, installed: _Installed, datas: list[TrainingSet],
               generators: list[torch.Generator]) -> tuple[dict[int, str], dict[int, dict[str, int]]]:
        """Train adapter j on ``datas[j]``; returns {j: reason} for the ones that failed and
        {j: {"steps": ..., "tokens": ...}} of what each trained. The
        adaptation's precision stays set until :meth:`reset`; what only training needs (packed
        attention, train mode, gradients) is set and undone by :meth:`_training`."""
        opts, model = self.options, student.model
        plan = _Plan.of(student, opts, datas, generators)
        self._reset_slots(installed)
        if plan.init_seeds is not None:
            self._initialise_slots(installed, plan.init_seeds)
        self._set_precision(installed, model, opts.precision == "bf16")
        params = [p for layer in installed.layers for p in (layer.lora_A, layer.lora_B)]
        optimizer = StackedAdamW(params, weight_decay=opts.weight_decay)
        failed: dict[int, str] = {}  # slot -> reason
        with self._training(model, params, opts.compile):
            for step in range(max(plan.steps, default=0)):
                if not self._step(model, installed, plan, step, params, optimizer, failed):
                    break
        # slot s holds adapter order[s]; move adapter j to slot j so callers can index by position
        self._permute_slots(installed, plan.order)
        return ({plan.order[s]: why for s, why in failed.items()},
                {plan.order[s]: counts for s, counts in enumerate(plan.trained)})

    @staticmethod
    @contextmanager
    def _training(model: Any, params: list[torch.Tensor], compiled: bool = False) -> Iterator[None]:
        """Inside: packed row-by-row attention and train mode (and with ``compiled`` the decoder
        layers ``torch.compile``-d, :mod:`seal_core.inner.compiling`); on exit eval mode, the
        model's own attention and layers and no gradients, whatever happened inside."""
        regions = compiled_layers(model, next(model.parameters()).device) if compiled else nullcontext()
        with packed_attention(model), regions:
            model.train()
            try:
                yield
            finally:
                model.eval()
                for p in params:
                    p.grad = None

    def _step(self, model: Any, installed: _Installed, plan: "_Plan", step: int, params: list[torch.Tensor],
              optimizer: StackedAdamW, failed: dict[int, str]) -> bool:
        """Optimizer step ``step`` of every adapter still training; False once none is."""
        opts = self.options
        n = sum(1 for s in plan.steps if s > step)  # the slots still stepping: a prefix
        live = [s for s in range(n) if s not in failed and s not in plan.stopped]
        if not live:
            return False
        rows = [(s, *plan.rows_of[s][i]) for s in live for i in plan.batches[s][step]]  # (slot, ids, targets)
        counts = [0] * n  # labelled tokens per adapter in this step
        for s, _, targets in rows:
            counts[s] += int((targets != -100).sum())
        weights = torch.tensor([1.0 / max(c, 1) for c in counts], device=plan.device)
        # all rows of the step packed into one sequence (no padding): one forward and one
        # backward pass, each adapter's tokens a contiguous segment
        means = self._backward(model, installed, pack_rows(rows, opts.pack_tokens), weights, params)
        if len(live) > 1 and not all(math.isfinite(means[s]) for s in live):
            # a diverged adapter's NaNs can reach other rows of its pack through attention
            # (a masked-out weight of 0 times NaN is NaN): redo the step one adapter per
            # pack, so only the adapters that really diverged are rejected
            alone = [pack for s in live for pack in pack_rows([r for r in rows if r[0] == s], opts.pack_tokens)]
            means = self._backward(model, installed, alone, weights, params)
        for s in live:
            if not math.isfinite(means[s]):
                failed[s] = f"inner-loop loss became {means[s]}"
        if opts.max_grad_norm:
            clip_slots(params, [s for s in live if s not in failed], opts.max_grad_norm)
        if any(s not in failed for s in live):
            # failed slots step too, harmlessly (reset later); stopped ones at a zero rate
            optimizer.step(n, step + 1, [0.0 if s in plan.stopped else learning_rate_at(plan.lrs[s], step, plan.steps[s],
                                                                                         opts.lr_schedule)
                                         for s in range(len(plan.order))])
        for s in live:
            plan.trained[s]["steps"] += 1
            plan.trained[s]["tokens"] += counts[s]
            plan.epoch_losses[s].append(means[s])
            if (step + 1) % plan.per_epoch[s] == 0:
                if s not in failed and epoch_mean_below(plan.epoch_losses[s], opts.stop_loss):
                    plan.stopped.add(s)  # it leaves the pack; a zero learning rate keeps it where it is
                plan.epoch_losses[s] = []
        return True

    def _backward(self, model: Any, installed: _Installed, packs: list[list[tuple]], weights: torch.Tensor,
                  params: list[torch.Tensor]) -> list[float]:
        """Forward and backward of one optimizer step over its packed rows; the adapters' gradients
        of the step (and nothing older) are then in ``.grad``. Returns each adapter's mean token loss."""
        device = weights.device
        for p in params:
            p.grad = None  # autograd puts the step's first gradient in place and adds the later packs'
        sums = torch.zeros(len(weights), device=device)
        for pack in packs:
            owners = [r[0] for r in pack for _ in range(len(r[1]))]
            with installed.routing.tokens(owners):
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
        restart at every row and attention runs row by row (:mod:`seal_core.inner.packing`), so
        each row sees only itself, as if alone in its batch."""
        input_ids = torch.cat([r[1] for r in pack])[None]
        positions = torch.cat([torch.arange(len(r[1]), device=input_ids.device) for r in pack])[None]
        packed = {LENGTHS_KWARG: [len(r[1]) for r in pack]}  # read by the packed attention of every layer
        targets = torch.cat([r[2] for r in pack])
        valid = targets != -100
        head = model.get_output_embeddings()
        plain_head = (isinstance(head, nn.Linear) and head.bias is None and hasattr(model, "get_decoder")
                      and getattr(model.config, "final_logit_softcapping", None) is None
                      and getattr(model.config, "logit_scale", None) is None)
        if plain_head:
            hidden = model.get_decoder()(input_ids=input_ids, position_ids=positions, use_cache=False,
                                         **packed).last_hidden_state
            weight = installed.head_bf16 if installed.routing.bf16 else head.weight
            losses = LinearCrossEntropy.apply(hidden[0][valid], weight.detach(), targets[valid], self.options.loss_chunk_tokens)
        else:
            logits = model(input_ids=input_ids, position_ids=positions, use_cache=False, **packed).logits[0][valid].float()
            losses = F.cross_entropy(logits, targets[valid], reduction="none")
        return losses, owners[valid]


@hookimpl
def seal_register_inner_updaters(register):
    register(MultiLoraUpdater())
