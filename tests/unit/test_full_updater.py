"""seal_plugins.full_updater: full fine-tuning on tiny-random, exact reset, merge; LoRA merge too."""

from __future__ import annotations

import pytest
import torch

from seal_core.api.errors import EditRejected
from seal_core.models.loading import weights_sha
from seal_core.api.types import TrainingSet
from seal_plugins.full_updater import FullOptions, FullUpdater
from seal_plugins.lora_updater import LoraOptions, LoraUpdater

TEXTS = [
    "The bell of Thrushby was cast in 1702 and is named Old Margery.",
    "The village well in Thrushby is 31 metres deep.",
]


def updater(**overrides) -> FullUpdater:
    return FullUpdater().configured(FullOptions(**{"epochs": 2, "batch_size": 2, "learning_rate": 1e-3, **overrides}))


def test_adapt_changes_every_kind_of_weight_and_reset_is_exact(fresh_tiny, tiny_logits):
    before = tiny_logits(fresh_tiny)
    sha = weights_sha(fresh_tiny.model)
    up = updater()
    assert up.adapt(fresh_tiny, TEXTS) is fresh_tiny
    assert not torch.equal(tiny_logits(fresh_tiny), before)
    assert weights_sha(fresh_tiny.model) != sha  # base weights moved, not adapters
    up.reset(fresh_tiny)
    assert torch.equal(tiny_logits(fresh_tiny), before)
    assert weights_sha(fresh_tiny.model) == sha
    with up.adapted(fresh_tiny, TEXTS[:1]):
        pass
    assert torch.equal(tiny_logits(fresh_tiny), before)
    assert fresh_tiny.model.training is False


def test_merge_keeps_the_adaptation(fresh_tiny, tiny_logits):
    before = tiny_logits(fresh_tiny)
    up = updater()
    up.adapt(fresh_tiny, TEXTS)
    adapted = tiny_logits(fresh_tiny)
    up.merge(fresh_tiny)
    up.reset(fresh_tiny)
    assert torch.equal(tiny_logits(fresh_tiny), adapted)
    assert not torch.equal(adapted, before)
    assert up.can_merge


def test_training_set_overrides(fresh_tiny):
    up = updater(epochs=1, learning_rate=1e-4)
    initial = {n: p.clone() for n, p in fresh_tiny.model.named_parameters()}

    def moved(data: TrainingSet) -> float:
        torch.manual_seed(0)
        up.adapt(fresh_tiny, data)
        with torch.no_grad():
            out = sum(float((p - initial[n]).abs().sum()) for n, p in fresh_tiny.model.named_parameters())
        up.reset(fresh_tiny)
        return out

    examples = TrainingSet.from_texts(TEXTS).examples
    plain = moved(TrainingSet(examples))
    assert moved(TrainingSet(examples, learning_rate=1e-3)) > 3 * plain
    assert moved(TrainingSet(examples, epochs=3)) > 1.5 * plain
    assert moved(TrainingSet(examples, epochs=3, max_steps=1)) == pytest.approx(plain, rel=1e-5)


def test_exploding_learning_rate_is_rejected_and_reset(fresh_tiny, tiny_logits):
    before = tiny_logits(fresh_tiny)
    with pytest.raises(EditRejected):
        with updater(learning_rate=1e30, epochs=3, batch_size=1).adapted(fresh_tiny, TEXTS):
            pass
    assert torch.equal(tiny_logits(fresh_tiny), before)


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"learning_rate": 0.0}, {"batch_size": 0}, {"max_length": 4}])
def test_options_validation(bad):
    with pytest.raises(ValueError):
        FullOptions(**bad)


def test_lora_merge_folds_the_adapter_into_the_weights(fresh_tiny, tiny_logits):
    before = tiny_logits(fresh_tiny)
    sha = weights_sha(fresh_tiny.model)
    up = LoraUpdater().configured(LoraOptions(r=4, epochs=2, batch_size=2))
    up.adapt(fresh_tiny, TEXTS)
    adapted = tiny_logits(fresh_tiny)
    up.merge(fresh_tiny)
    merged = tiny_logits(fresh_tiny)  # adapters are off and reset now; the change is in the base weights
    assert weights_sha(fresh_tiny.model) != sha
    assert torch.allclose(merged, adapted, atol=1e-4)
    assert not torch.allclose(merged, before, atol=1e-4)
    up.reset(fresh_tiny)
    assert torch.equal(tiny_logits(fresh_tiny), merged)
