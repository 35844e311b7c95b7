"""Inner updater ``full``: fine-tune every weight of the student on a self-edit's training set.

The paper's second version runs its continued-pretraining experiments (n = 200 and 2,067
passages) with full fine-tuning instead of LoRA; this is that setting. The first call snapshots
all of the student's parameters (one extra copy of the model in memory); :meth:`FullUpdater.reset`
writes the snapshot back, so the student computes bit for bit what it did before.
:meth:`FullUpdater.merge` keeps the current weights instead: they become the new snapshot (what
``experiment=continual`` does after each step).

The training loop is the one ``lora`` uses too (:class:`seal_core.inner.SequentialUpdater`: batched
texts, one AdamW loop, the self-edit's ``learning_rate``/``epochs``/``max_steps``/``loss_on``
honoured, non-finite losses rejected); only which parameters train and how they are restored differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from seal_core import hookimpl
from seal_core.inner import SequentialUpdater, adapter_state
from seal_core.api.types import LoadedModel


@dataclass
class FullOptions:
    learning_rate: float = 1e-5  # AdamW on every weight, for 7B-scale models; the 135M embedded model needs ~3e-4
    epochs: int = 5  # passes over the edit's texts
    batch_size: int = 8  # texts per optimizer step
    max_length: int = 256  # tokens per training text; longer texts are truncated
    weight_decay: float = 0.0
    autocast_bf16: bool = False  # bf16 autocast for the matmuls (fast on AMX CPUs and GPUs)
    stop_loss: float = 0.0  # stop after the first epoch whose mean training loss is below this; 0: off
    lr_schedule: Literal["constant", "linear"] = "constant"  # linear: decay to 0 over the planned steps
    max_grad_norm: float = 0.0  # clip the gradient norm to this; 0: no clipping
    loss_on_eos: bool = True  # false: the eos after each text is not a training target

    def __post_init__(self) -> None:
        checks = {"learning_rate": self.learning_rate > 0, "epochs": self.epochs >= 1,
                  "batch_size": self.batch_size >= 1, "max_length": self.max_length >= 8,
                  "weight_decay": self.weight_decay >= 0, "stop_loss": self.stop_loss >= 0,
                  "max_grad_norm": self.max_grad_norm >= 0}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"{', '.join(bad)} out of range (learning_rate > 0; epochs, batch_size >= 1; "
                             "max_length >= 8; weight_decay, stop_loss, max_grad_norm >= 0)")


class FullUpdater(SequentialUpdater):
    """θ' = θ fine-tuned on the texts (all parameters); :meth:`reset` restores θ exactly."""

    name = "full"
    Options = FullOptions

    def trainable(self, student: LoadedModel) -> dict[str, torch.Tensor]:
        """The snapshot of every parameter, taken on first use and kept in the model's record."""
        model = student.model

        def snapshot() -> dict[str, torch.Tensor]:
            for param in model.parameters():
                param.requires_grad_(True)
            return {n: p.detach().clone() for n, p in model.named_parameters()}

        return adapter_state(model, self.name, (), student.spec, snapshot)

    @torch.no_grad()
    def merge(self, student: LoadedModel) -> None:
        """Keep the adapted weights: they become what :meth:`reset` restores from now on."""
        snapshot = self.trainable(student)
        for name, param in student.model.named_parameters():
            snapshot[name].copy_(param)


@hookimpl
def seal_register_inner_updaters(register):
    register(FullUpdater())
