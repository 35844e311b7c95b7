"""Inner updater ``lora``: LoRA fine-tuning on a self-edit's training texts, with peft.

The adapter layers are injected into the student once per run (``peft.inject_adapter_in_model``,
in place: the model object stays the same, nothing is copied). Their initial values are kept, and
:meth:`LoraUpdater.reset` writes them back, so every self-edit starts from the same adapter
initialisation, and switches the adapters off, so that between edits the student computes
exactly what the base model computes, at the base model's speed (generation and the student's
own scores do not pay for the adapter matmuls). Nothing is written to disk per edit.

Departure from the SEAL reference code: it builds a fresh peft model and a fresh transformers
Trainer per self-edit with batch size 1; here the texts of one edit are batched
(``batch_size``) and one AdamW loop runs on the adapter parameters only.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from collections.abc import Iterator
from typing import Any

import structlog
import torch

from seal_core import InnerUpdater, hookimpl
from seal_core.errors import EditRejected
from seal_core.types import LoadedModel, TrainingExample, TrainingSet

log = structlog.get_logger(__name__)

ADAPTER = "seal_inner"


class NonFiniteLoss(EditRejected):
    """Training on a self-edit produced a NaN or infinite loss."""


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
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"{', '.join(bad)} out of range (r, epochs, batch_size >= 1; alpha, learning_rate > 0; 0 <= dropout < 1; max_length >= 8)")


def tokenize_texts(tokenizer: Any, texts: list[str], max_length: int, device: Any) -> dict[str, torch.Tensor]:
    """Right-padded causal-LM batch; labels are -100 on padding. EOS ends every text."""
    return tokenize_examples(tokenizer, [TrainingExample(t) for t in texts], max_length, device)


def tokenize_examples(tokenizer: Any, examples: list[TrainingExample], max_length: int, device: Any,
                      completion_only: bool = False) -> dict[str, torch.Tensor]:
    """Right-padded causal-LM batch of prompt + completion + EOS; labels are -100 on padding and,
    with ``completion_only``, on the prompt's tokens too."""
    eos = tokenizer.eos_token or ""
    enc = tokenizer([e.text + eos for e in examples], padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt", add_special_tokens=False)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    if completion_only:
        prompt_lengths = [len(ids) for ids in tokenizer([e.prompt for e in examples], add_special_tokens=False)["input_ids"]]
        for row, n in enumerate(prompt_lengths):
            labels[row, :n] = -100
    return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device),
            "labels": labels.to(device)}


def warn_if_truncated(tokenizer: Any, texts: list[str], max_length: int) -> None:
    """Texts longer than ``max_length`` tokens are cut there; say so, once per self-edit."""
    eos = tokenizer.eos_token or ""
    lengths = [len(ids) for ids in tokenizer([t + eos for t in texts], add_special_tokens=False)["input_ids"]]
    over = [n for n in lengths if n > max_length]
    if over:
        log.warning("training text truncated", texts=len(over), longest_tokens=max(over),
                    max_length=max_length, hint="raise inner.max_length to keep more")


def step_batches(data: TrainingSet, opts: LoraOptions, generator: torch.Generator | None = None) -> Iterator[list[int]]:
    """The example indices of each optimizer step of one self-edit: a fresh shuffle per epoch
    (from ``generator``, or torch's global RNG), ``opts.batch_size`` examples a step, at most
    ``data.max_steps`` steps. Lazy, so the shuffles interleave with training as they always did."""
    steps = 0
    for _ in range(data.epochs or opts.epochs):
        order = torch.randperm(len(data.examples), generator=generator).tolist()
        for start in range(0, len(order), opts.batch_size):
            if data.max_steps is not None and steps >= data.max_steps:
                break
            steps += 1
            yield order[start:start + opts.batch_size]


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


def _enable_adapters(model: Any, enabled: bool) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.enable_adapters(enabled)


class LoraUpdater(InnerUpdater):
    """θ' = θ + LoRA trained on the texts; :meth:`reset` zeroes the update again."""

    name = "lora"
    Options = LoraOptions

    def _initial(self, student: LoadedModel) -> dict[str, torch.Tensor]:
        """Inject the adapters on first use; return their initial values.

        The record lives on the model object, so a second updater instance (or a configured
        copy) finds the adapters already there instead of nesting new ones inside them.
        """
        model = student.model
        opts = self.options
        signature = (opts.r, opts.alpha, opts.dropout, tuple(opts.target_modules))
        record = getattr(model, "_seal_lora", None)
        if record is not None:
            if record[0] != signature:
                raise RuntimeError(f"{student.spec} already carries inner LoRA adapters {record[0]}, not {signature}")
            return record[1]
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
        _enable_adapters(model, False)
        initial = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
        if not initial:
            raise ValueError(f"inner.target_modules {opts.target_modules} match no layer of {student.spec}")
        model._seal_lora = (signature, initial)
        log.info("lora adapters injected", model=student.spec, r=opts.r, tensors=len(initial),
                 parameters=sum(t.numel() for t in initial.values()))
        return initial

    def _adapter_params(self, student: LoadedModel) -> list[torch.nn.Parameter]:
        names = self._initial(student)
        return [p for n, p in student.model.named_parameters() if n in names]

    def adapt(self, student: LoadedModel, data: TrainingSet | list[str]) -> LoadedModel:
        opts = self.options
        data = TrainingSet.coerce(data)
        self._initial(student)
        if not data:
            return student
        examples = data.examples
        warn_if_truncated(student.tokenizer, data.texts, opts.max_length)
        model = student.model
        _enable_adapters(model, True)
        params = self._adapter_params(student)
        # the fused kernel: one pass over the adapter tensors (~3x faster than the default
        # per-tensor loop on CPU), and the same arithmetic multi-lora runs per adapter
        optimizer = torch.optim.AdamW(params, lr=data.learning_rate or opts.learning_rate,
                                      weight_decay=opts.weight_decay, fused=True)
        device = student.device
        autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16)
                    if opts.autocast_bf16 else contextlib.nullcontext())
        model.train()
        try:
            for indices in step_batches(data, opts):
                batch = tokenize_examples(student.tokenizer, [examples[i] for i in indices],
                                          opts.max_length, device, completion_only=data.loss_on == "completion")
                with autocast:
                    loss = model(**batch).loss
                if not math.isfinite(loss.item()):
                    raise NonFiniteLoss(f"inner-loop loss became {loss.item()}")
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        finally:
            model.eval()
        return student

    @torch.no_grad()
    def reset(self, student: LoadedModel) -> None:
        initial = self._initial(student)
        for name, param in student.model.named_parameters():
            if name in initial:
                param.copy_(initial[name])
        _enable_adapters(student.model, False)

    @torch.no_grad()
    def merge(self, student: LoadedModel) -> None:
        """Fold the trained adapters into the base weights (W += scale * B @ A), then reset them."""
        from peft.tuners.lora import LoraLayer

        for module in student.model.modules():
            if isinstance(module, LoraLayer) and ADAPTER in module.lora_A:
                weight = module.get_base_layer().weight
                weight += module.get_delta_weight(ADAPTER).to(weight.dtype)
        self.reset(student)


@hookimpl
def seal_register_inner_updaters(register):
    register(LoraUpdater())
