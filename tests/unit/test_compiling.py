"""``inner.compile``: the stacked multi-lora step under ``torch.compile`` computes the eager step's
adapter gradients (seal_core/inner/compiling.py), and the comparison sees a wrong product."""

from __future__ import annotations

import pytest
import torch

from seal_core.api.types import TrainingSet
from seal_core.inner.compiling import compiled_layers, compiler_found, decoder_layers
from seal_core.inner.optim import StackedAdamW
from seal_core.inner.stacked import RoutedLora
from seal_core.models.loading import load_model
from seal_plugins.multi_lora import MultiLoraOptions, MultiLoraUpdater

DATAS = [TrainingSet.from_texts(["The bell of Thrushby is named Old Margery.", "It was cast in 1602."]),
         TrainingSet.from_texts(["The Orrick mill grinds barley.", "Its wheel has 14 paddles.", "Rye too."])]


def first_step_gradients(compiled: bool, monkeypatch) -> list[torch.Tensor]:
    """Every stacked adapter gradient of the first optimizer step of a K = 2 adaptation."""
    seen: list[list[torch.Tensor]] = []
    original = StackedAdamW.step

    def step(self, n, number, lrs):
        if not seen:
            seen.append([p.grad.detach().clone() for p in self.params])
        original(self, n, number, lrs)

    monkeypatch.setattr(StackedAdamW, "step", step)
    updater = MultiLoraUpdater().configured(MultiLoraOptions(max_adapters=2, r=8, epochs=1, compile=compiled))
    student = load_model("tiny-random")
    with updater.adapted_batch(student, DATAS, [3, 4]):
        pass
    return seen[0]


def largest_gap(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max() / y.abs().max().clamp_min(1e-12)) for x, y in zip(a, b))


@pytest.mark.skipif(not compiler_found(), reason="inductor needs a C++ compiler on the CPU")
def test_the_compiled_step_has_the_eager_gradients(monkeypatch):
    compiled = first_step_gradients(True, monkeypatch)
    eager = first_step_gradients(False, monkeypatch)
    assert largest_gap(compiled, eager) < 1e-4  # measured: ~1e-6 (fused kernels round differently)
    # the negative control: one wrong product (the LoRA scale 1% off) is far outside that tolerance
    forward = RoutedLora.forward
    monkeypatch.setattr(RoutedLora, "forward", staticmethod(
        lambda ctx, y, x, a, b, scale, segments: forward(ctx, y, x, a, b, scale * 1.01, segments)))
    wrong = first_step_gradients(False, monkeypatch)
    assert largest_gap(wrong, eager) > 1e-3


def test_layers_are_put_back_after_training_and_without_a_compiler(monkeypatch):
    student = load_model("tiny-random")
    layers = decoder_layers(student.model)
    originals = list(layers)
    with pytest.raises(RuntimeError):
        with compiled_layers(student.model, torch.device("cpu")) as on:
            assert on == compiler_found() and all(a is not b for a, b in zip(layers, originals)) == on
            raise RuntimeError("training failed")
    assert list(layers) == originals
    monkeypatch.setattr("seal_core.inner.compiling.compiler_found", lambda: False)
    with compiled_layers(student.model, torch.device("cpu")) as on:
        assert not on and list(layers) == originals
