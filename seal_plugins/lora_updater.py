"""Inner updater ``lora``: LoRA fine-tuning on a self-edit's training texts, with peft.

The adapter layers are injected into the student once per run (``peft.inject_adapter_in_model``,
in place: the model object stays the same, nothing is copied). Their initial values are kept, and
:meth:`LoraUpdater.reset` writes them back (B to zero) and switches the adapters off, so that between edits the student computes
exactly what the base model computes, at the base model's speed (generation and the student's
own scores do not pay for the adapter matmuls). Nothing is written to disk per edit. With
``adapter_init: per-edit`` (the default) each edit then draws its own lora_A from its inner seed,
as the reference code's fresh peft model per edit does; ``fixed`` keeps peft's seed-0 draw.

Departure from the SEAL reference code: it builds a fresh peft model and a fresh transformers
Trainer per self-edit with batch size 1; here the texts of one edit are batched
(``batch_size``) and one AdamW loop runs on the adapter parameters only
(:class:`seal_core.inner.SequentialUpdater`).
"""

from __future__ import annotations

import structlog
import torch

from seal_core import hookimpl
from seal_core.inner import (ADAPTER, LoraOptions, SequentialUpdater, adapter_state, draw_init_seed, enable_adapters,
                             inject_lora, merge_lora, seeded_lora_a)
from seal_core.api.types import LoadedModel

log = structlog.get_logger(__name__)


class LoraUpdater(SequentialUpdater):
    """θ' = θ + LoRA trained on the texts; :meth:`reset` zeroes the update again."""

    name = "lora"
    Options = LoraOptions

    def trainable(self, student: LoadedModel) -> dict[str, torch.Tensor]:
        """Inject the adapters on first use; return their initial values."""
        opts = self.options

        def inject() -> dict[str, torch.Tensor]:
            initial = inject_lora(student.model, opts)
            if not initial:
                raise ValueError(f"inner.target_modules {opts.target_modules} match no layer of {student.spec}")
            log.info("lora adapters injected", model=student.spec, r=opts.r, tensors=len(initial),
                     parameters=sum(t.numel() for t in initial.values()))
            return initial

        signature = (opts.r, opts.alpha, opts.dropout, tuple(opts.target_modules))
        return adapter_state(student.model, self.name, signature, student.spec, inject)

    def switch(self, student: LoadedModel, on: bool) -> None:
        enable_adapters(student.model, on)

    @torch.no_grad()
    def initialise(self, student: LoadedModel) -> None:
        """With ``adapter_init: per-edit``, this edit's own lora_A (B stays zero)."""
        if self.options.adapter_init != "per-edit":
            return
        suffix = f".lora_A.{ADAPTER}.weight"
        params = [p for n, p in student.model.named_parameters() if n.endswith(suffix)]
        for param, value in zip(params, seeded_lora_a([p.shape for p in params], draw_init_seed(None))):
            param.copy_(value)

    @torch.no_grad()
    def merge(self, student: LoadedModel) -> None:
        """Fold the trained adapters into the base weights (W += scale * B @ A), then reset them."""
        merge_lora(student.model)
        self.reset(student)


@hookimpl
def seal_register_inner_updaters(register):
    register(LoraUpdater())
