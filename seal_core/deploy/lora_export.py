"""The LoRA adapter a student is adapted with, saved as a peft adapter directory.

The inner updaters keep their adapters inside the student (``lora``: peft layers injected in
place under the adapter name :data:`seal_core.inner.ADAPTER`; ``multi-lora``: stacked adapters in
:class:`seal_core.inner.StackedLoraLinear` layers, the one in use chosen by their routing).
:func:`lora_factors` reads the adapter in use, whichever it is, and :func:`save_peft_adapter`
writes it in peft's own layout (``adapter_config.json`` + ``adapter_model.safetensors``), which
``PeftModel.from_pretrained(base_model, DIR)`` loads: ``W x + (alpha / r) B A x`` per layer, the
same function the adapted student computes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from seal_core.api.errors import SealError
from seal_core.runtime.files import build_atomically
from seal_core.runtime.files import fsync_tree


def lora_factors(model: Any) -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    """``{layer name: (A [r, in], B [out, r], scale)}`` of the adapter ``model`` is adapted with
    now (empty: it carries no LoRA adapter that is switched on)."""
    from peft.tuners.lora import LoraLayer

    from seal_core.inner import ADAPTER, StackedLoraLinear

    out = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and ADAPTER in module.lora_A and not module.disable_adapters:
            out[name] = (module.lora_A[ADAPTER].weight, module.lora_B[ADAPTER].weight, float(module.scaling[ADAPTER]))
        elif isinstance(module, StackedLoraLinear) and module.routing.held is not None:
            slot = module.routing.held
            out[name] = (module.lora_A[slot], module.lora_B[slot], float(module.scale))
    return out


def save_peft_adapter(model: Any, target: Path, base_model: str, updater: str,
                      files: dict[str, str] | None = None) -> Path:
    """The adapter ``model`` is adapted with, as the peft adapter directory ``target`` (written
    beside it and renamed into place), with ``files`` (name -> text) beside the weights.
    ``base_model`` goes to ``base_model_name_or_path``."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    factors = lora_factors(model)
    if not factors:
        raise SealError(
            f"Inner updater '{updater}' leaves no LoRA adapter in the student (it changes the weights "
            "themselves), so there is no adapter per document to save. Pass --merge to save the adapted "
            "model instead, or use a LoRA updater: --set inner.name=lora (or multi-lora)."
        )
    ranks = {a.shape[0] for a, _, _ in factors.values()}
    scales = {round(s, 8) for _, _, s in factors.values()}
    if len(ranks) != 1 or len(scales) != 1:
        raise SealError(f"The student's LoRA adapters differ in rank {sorted(ranks)} or scale {sorted(scales)}; "
                        "a peft adapter needs one of each. Use one inner updater's adapters per model.")
    r, scale = ranks.pop(), scales.pop()
    config = LoraConfig(r=r, lora_alpha=scale * r, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                        target_modules=sorted({name.rsplit(".", 1)[-1] for name in factors}),
                        base_model_name_or_path=base_model)
    tensors = {}
    for name, (a, b, _) in factors.items():
        tensors[f"base_model.model.{name}.lora_A.weight"] = a.detach().float().cpu().contiguous()
        tensors[f"base_model.model.{name}.lora_B.weight"] = b.detach().float().cpu().contiguous()

    def build(tmp: Path) -> None:
        config.save_pretrained(str(tmp))
        save_file(tensors, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
        for name, text in (files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        fsync_tree(tmp)

    return build_atomically(target, build)
