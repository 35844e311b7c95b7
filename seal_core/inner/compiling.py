"""``torch.compile`` for the inner loop's training step, one decoder layer at a time.

Regional compilation: each decoder layer of the student is wrapped in ``torch.compile`` while an
adaptation trains, and unwrapped when it ends (generation and scoring run the model as it is).
The layers of one model share their code, so they share one compiled graph: compile time is one
layer's, not the model's. What compiles cleanly in the stacked step: the routed LoRA product
(:class:`seal_core.inner.stacked.RoutedLora`, a custom autograd function whose backward only
returns gradients) and the packed row-by-row attention (its row lengths a keyword argument, not
hidden state), so the compiled step computes what the eager one does
(tests/unit/test_compiling.py compares their gradients).

Inductor on a CPU needs a C++ compiler; without one, training runs eagerly and this is logged once.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
import torch

log = structlog.get_logger(__name__)
_warned: set[str] = set()


def compiler_found() -> bool:
    """Whether a C++ compiler for inductor's CPU kernels is on this machine (``CXX`` or the usual names)."""
    names = [os.environ.get("CXX", ""), "c++", "g++", "clang++"]
    return any(name and shutil.which(name) for name in names)


def decoder_layers(model: Any) -> Any | None:
    """The ``nn.ModuleList`` of ``model``'s decoder layers (transformers decoder-only models), or None."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    return layers if isinstance(layers, torch.nn.ModuleList) and len(layers) else None


def _once(key: str, message: str, **fields: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        log.info(message, **fields)


@contextmanager
def compiled_layers(model: Any, device: torch.device) -> Iterator[bool]:
    """Inside: ``model``'s decoder layers run ``torch.compile``-d; yields whether they do (no C++
    compiler on a CPU, or no decoder layers found: they run eagerly, said once in the log). The
    model's own layers are back in place on exit, whatever happened inside."""
    layers = decoder_layers(model)
    if layers is None:
        _once("layers", "inner.compile: no decoder layers found; training runs eagerly", model=type(model).__name__)
        yield False
        return
    if device.type == "cpu" and not compiler_found():
        _once("compiler", "inner.compile: no C++ compiler found (CXX, c++, g++, clang++); training runs eagerly")
        yield False
        return
    originals = list(layers)
    for i, layer in enumerate(originals):
        layers[i] = torch.compile(layer)  # shares the layer's parameters; one graph for all layers
    try:
        yield True
    finally:
        for i, layer in enumerate(originals):
            layers[i] = layer
