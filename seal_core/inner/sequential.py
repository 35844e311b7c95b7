"""The one-self-edit-at-a-time training loop that ``lora`` and ``full`` share.

A :class:`SequentialUpdater` trains some of the student's parameters with AdamW on one self-edit's
training set: the steps of :func:`seal_core.inner.batching.step_batches`, each a right-padded
batch of the set's examples, the loss on completions only where the set asks for it, the set's
own learning rate, epochs and step cap honoured, a non-finite loss rejected. A subclass says which
parameters train (:meth:`SequentialUpdater.trainable`, which also keeps their initial values in
the model's :class:`~seal_core.inner.record.AdapterRecord`) and may switch its adapters on and off.
"""

from __future__ import annotations

import contextlib
import math
from abc import abstractmethod

import torch

from seal_core.api.components import InnerUpdater
from seal_core.api.errors import NonFiniteLoss
from seal_core.inner.batching import (epoch_mean_below, learning_rate_at, planned_steps, step_batches,
                                     steps_per_epoch, tokenize_examples, warn_if_truncated)
from seal_core.api.types import LoadedModel, TrainingSet


class SequentialUpdater(InnerUpdater):
    """θ' = θ trained on one self-edit's texts; :meth:`reset` writes the initial values back.

    Its ``Options`` need ``learning_rate``, ``epochs``, ``batch_size``, ``max_length``,
    ``weight_decay``, ``autocast_bf16``, ``stop_loss`` (adaptive training: stop after the first
    epoch whose mean step loss is below it; 0: every epoch), ``lr_schedule``, ``max_grad_norm`` and ``loss_on_eos``.
    """

    @abstractmethod
    def trainable(self, student: LoadedModel) -> dict[str, torch.Tensor]:
        """Prepare ``student`` on first use (inject adapters, unfreeze weights) and return the
        initial values of the parameters that train, by name; later calls return the same."""

    def switch(self, student: LoadedModel, on: bool) -> None:
        """Turn the updater's additions on before training, off after :meth:`reset` (default: none)."""

    def initialise(self, student: LoadedModel) -> None:
        """Draw this self-edit's random initial values (from torch's global RNG, before its data
        order) into the parameters that train (default: none, they start where :meth:`reset` left them)."""

    def adapt(self, student: LoadedModel, data: TrainingSet | list[str]) -> LoadedModel:
        opts = self.options
        data = TrainingSet.coerce(data)
        names = self.trainable(student)
        if not data:
            return student
        examples = data.examples
        warn_if_truncated(student.tokenizer, data.texts, opts.max_length)
        model = student.model
        self.switch(student, True)
        params = [p for n, p in model.named_parameters() if n in names]
        # the fused kernel: one pass over the tensors (~3x faster than the default per-tensor
        # loop on CPU), and the same arithmetic multi-lora runs per adapter
        base_lr = data.learning_rate or opts.learning_rate
        optimizer = torch.optim.AdamW(params, lr=base_lr, weight_decay=opts.weight_decay, fused=True)
        total = planned_steps(data, opts)
        device = student.device
        autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16)
                    if opts.autocast_bf16 else contextlib.nullcontext())
        self.initialise(student)
        per_epoch, epoch_losses = steps_per_epoch(len(examples), opts.batch_size), []
        self.trained = counts = {"steps": 0, "tokens": 0}
        model.train()
        try:
            for step, indices in enumerate(step_batches(data, opts)):
                batch = tokenize_examples(student.tokenizer, [examples[i] for i in indices],
                                          opts.max_length, device, completion_only=data.loss_on == "completion",
                                          loss_on_eos=opts.loss_on_eos)
                with autocast:
                    loss = model(**batch).loss
                if not math.isfinite(loss.item()):
                    raise NonFiniteLoss(f"inner-loop loss became {loss.item()}")
                loss.backward()
                if opts.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(params, opts.max_grad_norm)
                optimizer.param_groups[0]["lr"] = learning_rate_at(base_lr, step, total, opts.lr_schedule)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                counts["steps"] += 1
                counts["tokens"] += int((batch["labels"][:, 1:] != -100).sum())  # the tokens predicted
                epoch_losses.append(loss.item())
                if (step + 1) % per_epoch == 0:
                    if epoch_mean_below(epoch_losses, opts.stop_loss):
                        break  # adaptive training: this edit's texts are learned
                    epoch_losses = []
        finally:
            model.eval()
        return student

    @torch.no_grad()
    def reset(self, student: LoadedModel) -> None:
        initial = self.trainable(student)
        for name, param in student.model.named_parameters():
            if name in initial:
                param.copy_(initial[name])
        self.switch(student, False)
