"""Smoke test on the embedded SmolLM2-135M-Instruct: one self-edit through the whole inner loop."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.embedded


def test_one_self_edit_end_to_end():
    from seal_core.models.loading import load_model, weights_sha
    from seal_core.runtime.seeding import seed_all
    from seal_domains.knowledge import KnowledgeDomain
    from seal_plugins.hf_generate import HFGenerate, HFGenerateOptions
    from seal_plugins.lora_updater import LoraOptions, LoraUpdater
    from seal_core.evaluation.qa import QAEvaluator, QAOptions

    loaded = load_model("embedded")
    assert loaded.spec == "embedded"
    assert loaded.model.training is False
    assert loaded.model.config.num_hidden_layers == 30  # SmolLM2-135M
    assert not hasattr(loaded.model.config, "quantization_config")  # a plain, trainable model

    domain = KnowledgeDomain()
    task = domain.load_tasks("train")[0]
    prompt = domain.edit_prompt(task)
    assert task.context in prompt

    generator = HFGenerate().configured(HFGenerateOptions(max_new_tokens=48))
    seed_all(0)
    (edits,) = generator.generate(loaded, [prompt], 1, greedy=True)
    assert len(edits) == 1
    edit = edits[0]
    assert isinstance(edit, str) and edit.strip()

    texts = domain.training_texts(task, edit)
    assert texts and texts[-1].endswith(task.context)

    enc = loaded.tokenizer([task.context[:80]], return_tensors="pt").to(loaded.device)

    def logits() -> torch.Tensor:
        with torch.no_grad():
            return loaded.model(**enc).logits.detach().clone()

    before = logits()
    sha = weights_sha(loaded.model)
    updater = LoraUpdater().configured(LoraOptions(epochs=1))
    evaluator = QAEvaluator().configured(QAOptions(max_new_tokens=16))

    adapted = updater.adapt(loaded, texts)
    try:
        assert adapted is loaded
        adapted_logits = logits()
        score = evaluator.evaluate(adapted.model, adapted.tokenizer, task)
    finally:
        updater.reset(loaded)

    assert 0.0 <= score.value <= 1.0
    assert len(score.details["predictions"]) == len(task.evaluation["questions"])
    assert not torch.equal(adapted_logits, before)
    assert torch.equal(logits(), before)
    assert weights_sha(loaded.model) == sha  # only the adapters trained
