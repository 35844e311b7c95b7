"""The options every LoRA inner updater shares (``lora``, ``multi-lora`` and third-party ones)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class LoraOptions:
    r: int = 32  # LoRA rank (the paper: 32)
    alpha: float = 64.0  # scaling numerator: the update is (alpha / r) * B @ A (the paper: 64)
    dropout: float = 0.0  # dropout on the adapter input; 0 keeps training deterministic
    learning_rate: float = 1e-3  # AdamW (the paper: 1e-3)
    epochs: int = 10  # passes over the edit's texts (the paper: 10)
    batch_size: int = 8  # texts per optimizer step (the reference code uses 1)
    max_length: int = 256  # tokens per training text; longer texts are truncated
    weight_decay: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    autocast_bf16: bool = False  # bf16 autocast for the base matmuls (fast on AMX CPUs and GPUs)
    # per-edit: each self-edit's lora_A drawn from its inner seed (as the reference's fresh peft
    # model per edit; follows the run seed); fixed: peft's seed-0 draw for every edit
    adapter_init: Literal["per-edit", "fixed"] = "per-edit"
    # adaptive training: an adapter stops after the first epoch whose mean training loss (per
    # token, the mean over the epoch's steps) is below this; 0 trains every epoch. In multi-lora
    # a stopped adapter leaves the pack, so the remaining steps get cheaper
    stop_loss: float = 0.0
    # the learning rate over an edit's planned steps: linear decay to 0 (the reference code's
    # Trainer default; at the paper's 10 epochs a constant rate scored 0.08 below the reference
    # over 16 seeds and the decay closes it: docs/reports/2026-11-27-lora-vs-reference.md), or constant.
    # max_grad_norm clips each adapter's gradient norm (the Trainer's 1.0), 0 does not clip
    lr_schedule: Literal["constant", "linear"] = "linear"
    max_grad_norm: float = 0.0
    # the eos closing each training text is a training target (false: masked, as the reference
    # code's collator masks every pad-id token, and SmolLM2's pad token is its eos)
    loss_on_eos: bool = True

    def __post_init__(self) -> None:
        checks = {
            "r": self.r >= 1,
            "alpha": self.alpha > 0,
            "dropout": 0 <= self.dropout < 1,
            "learning_rate": self.learning_rate > 0,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "max_length": self.max_length >= 8,
            "target_modules": bool(self.target_modules),
            "stop_loss": self.stop_loss >= 0,
            "max_grad_norm": self.max_grad_norm >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"{', '.join(bad)} out of range (r, epochs, batch_size >= 1; alpha, learning_rate > 0; 0 <= dropout < 1; max_length >= 8; stop_loss, max_grad_norm >= 0)")
