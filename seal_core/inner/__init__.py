"""The inner loop's machinery: batching, peft and stacked LoRA, packed attention, loss, optimizer, shared by the updater plugins.

The updater plugins (``lora``, ``full``, ``multi-lora``) share it and third-party ones may use
it. Each module has one job:

- :mod:`~seal_core.inner.options`: :class:`LoraOptions`, the options every LoRA updater shares;
- :mod:`~seal_core.inner.batching`: tokenization and the per-step plan of a training set;
- :mod:`~seal_core.inner.record`: the one record of an updater's state on the model;
- :mod:`~seal_core.inner.peft_lora`: peft LoRA injection and its initial values;
- :mod:`~seal_core.inner.sequential`: the one-self-edit-at-a-time AdamW loop;
- :mod:`~seal_core.inner.stacked`: K stacked LoRA adapters per layer and their routing;
- :mod:`~seal_core.inner.packing`: packed batches and row-by-row attention;
- :mod:`~seal_core.inner.loss`: chunked output layer and cross-entropy;
- :mod:`~seal_core.inner.optim`: AdamW and gradient clipping over stacked adapters.
"""

from seal_core.api.errors import NonFiniteLoss
from seal_core.inner.batching import (epoch_mean_below, learning_rate_at, planned_steps, step_batches, steps_per_epoch,
                                     tokenize_examples, tokenize_texts, warn_if_truncated)
from seal_core.inner.loss import LinearCrossEntropy
from seal_core.inner.optim import StackedAdamW, clip_slots
from seal_core.inner.options import LoraOptions
from seal_core.inner.packing import LENGTHS_KWARG, PACKED_ATTENTION, pack_rows, packed_attention
from seal_core.inner.peft_lora import (ADAPTER, draw_init_seed, enable_adapters, inject_lora, merge_lora, peft_initial_a,
                                      seeded_lora_a)
from seal_core.inner.record import AdapterRecord, adapter_state, record_of
from seal_core.inner.sequential import SequentialUpdater
from seal_core.inner.stacked import Routing, RoutedLora, StackedLoraLinear, runs

__all__ = [
    "ADAPTER", "AdapterRecord", "LinearCrossEntropy", "LoraOptions", "NonFiniteLoss", "LENGTHS_KWARG", "PACKED_ATTENTION", "RoutedLora",
    "Routing", "SequentialUpdater", "StackedAdamW", "StackedLoraLinear", "adapter_state", "clip_slots", "draw_init_seed",
    "enable_adapters", "inject_lora", "merge_lora", "pack_rows", "packed_attention", "peft_initial_a", "record_of", "runs", "seeded_lora_a",
    "epoch_mean_below", "learning_rate_at", "planned_steps", "step_batches", "steps_per_epoch", "tokenize_examples", "tokenize_texts", "warn_if_truncated",
]
