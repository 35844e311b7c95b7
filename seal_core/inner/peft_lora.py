"""peft's LoRA layers, injected in place: the adapter initialisation every LoRA updater shares.

``inject_lora`` wraps a model's target layers once (peft's ``inject_adapter_in_model``; the model
object stays the same) and returns the adapters' initial values. ``peft_initial_a`` computes the
same initial ``lora_A`` values without touching the model, for updaters that hold their adapters
in their own layers (``multi-lora``'s stacked adapters start where ``lora``'s do).

With ``adapter_init: per-edit`` (the default) every self-edit starts from its own ``lora_A``
instead, as the SEAL reference code's fresh ``get_peft_model`` per edit does: ``draw_init_seed``
takes one number from the edit's data-order generator before its data order is drawn, and
``seeded_lora_a`` draws the values from it, so ``lora`` and ``multi-lora`` start each edit from the
same adapter and the initialisation follows the run seed.
"""

from __future__ import annotations

from typing import Any

import torch

from seal_core.inner.options import LoraOptions

ADAPTER = "seal_inner"  # peft's adapter name for the inner loop's adapters


def peft_initial_a(model: torch.nn.Module, opts: LoraOptions) -> dict[str, torch.Tensor]:
    """The ``lora_A`` values peft gives each target layer under ``torch.manual_seed(0)``, as in
    ``lora`` (``lora_B`` starts at zero). peft is run on a skeleton with every ``nn.Linear`` of
    ``model`` under its name and a zero-stride weight, so the RNG draws are the same as on the
    model itself but nothing of the size of the model is allocated."""
    from peft import LoraConfig, inject_adapter_in_model

    skeleton = torch.nn.Module()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            parent = skeleton
            *path, leaf = name.split(".")
            for part in path:
                if not hasattr(parent, part):
                    parent.add_module(part, torch.nn.Module())
                parent = getattr(parent, part)
            stub = torch.nn.Linear(module.in_features, module.out_features, bias=False, device="meta")
            stub.weight = torch.nn.Parameter(torch.zeros((), dtype=torch.float32).expand(module.out_features, module.in_features),
                                       requires_grad=False)
            parent.add_module(leaf, stub)
    config = LoraConfig(r=opts.r, lora_alpha=opts.alpha, lora_dropout=opts.dropout,
                        target_modules=list(opts.target_modules), bias="none")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        inject_adapter_in_model(config, skeleton, adapter_name=ADAPTER)
    suffix = f".lora_A.{ADAPTER}.weight"
    return {n.removesuffix(suffix): p.detach().clone() for n, p in skeleton.named_parameters() if n.endswith(suffix)}


def draw_init_seed(generator: torch.Generator | None) -> int:
    """The seed of one self-edit's adapter initialisation, drawn from its data-order generator
    (``None``: torch's global RNG, which the engine seeds per edit) before the data order is."""
    return int(torch.randint(0, 2**62, (1,), generator=generator))


def seeded_lora_a(shapes: list[torch.Size], seed: int) -> list[torch.Tensor]:
    """Fresh ``lora_A`` values of the given shapes (r, in), in order, from one generator seeded with
    ``seed``: peft's distribution (kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in))),
    fp32 on the CPU."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.empty(shape).uniform_(-shape[1] ** -0.5, shape[1] ** -0.5, generator=generator) for shape in shapes]


def inject_lora(model: torch.nn.Module, opts: LoraOptions) -> dict[str, torch.Tensor]:
    """Wrap ``model``'s target layers with peft LoRA adapters (initialised under seed 0, fp32,
    switched off) and make only them trainable; returns their initial values by parameter name."""
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.tuners_utils import cast_adapter_dtype

    config = LoraConfig(r=opts.r, lora_alpha=opts.alpha, lora_dropout=opts.dropout,
                        target_modules=list(opts.target_modules), bias="none")
    low_precision = next(model.parameters()).dtype in (torch.bfloat16, torch.float16)
    # peft draws lora_A in fp32, then casts it to the base layer's dtype: on a bf16 model
    # (the default on GPUs) keep the fp32 draws, and fp32 adapters and AdamW state, as
    # multi-lora does and as peft's own PeftModel does by default (autocast_adapter_dtype)
    fp32_a = peft_initial_a(model, opts) if low_precision else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same adapter initialisation in every run
        inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    if low_precision:
        cast_adapter_dtype(model, ADAPTER)
        with torch.no_grad():
            for name, a in fp32_a.items():
                model.get_submodule(name).lora_A[ADAPTER].weight.copy_(a)
    for pname, param in model.named_parameters():
        param.requires_grad_("lora_" in pname)
    enable_adapters(model, False)
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def enable_adapters(model: Any, enabled: bool) -> None:
    """Switch every peft adapter of ``model`` on or off (off: the base layer's output alone)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.enable_adapters(enabled)


@torch.no_grad()
def merge_lora(model: Any) -> None:
    """Fold every peft adapter named :data:`ADAPTER` into its base layer's weight
    (W += (alpha / r) B @ A, computed by peft in float32 and cast to W's dtype); the adapters stay
    in place, so switch them off or reset them before using the model again."""
    from peft.tuners.lora import LoraLayer

    for module in model.modules():
        if isinstance(module, LoraLayer) and ADAPTER in module.lora_A:
            weight = module.get_base_layer().weight
            weight += module.get_delta_weight(ADAPTER).to(weight.dtype)
