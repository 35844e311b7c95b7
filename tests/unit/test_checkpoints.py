"""seal_core/runs/checkpoints.py: the policy as a model directory, its card, and --push-to-hub's checks."""

from __future__ import annotations

import pytest
import torch

from seal_core.runs.checkpoints import EMBEDDED_HUB_ID, base_model_id, check_push, write_model_dir
from seal_core.api.errors import SealError


def test_the_card_names_a_base_model_only_where_the_hub_knows_it(tmp_path):
    assert base_model_id("embedded") == EMBEDDED_HUB_ID
    assert base_model_id("Qwen/Qwen2.5-7B") == "Qwen/Qwen2.5-7B"
    assert base_model_id("tiny-random") is None and base_model_id("random:qwen2.5-0.5b") is None
    assert base_model_id(str(tmp_path)) is None  # a local directory


def test_push_to_hub_is_refused_up_front_where_it_cannot_work(monkeypatch):
    check_push(None, "none")  # not asked: nothing to check
    with pytest.raises(SealError, match="checkpoint=none"):
        check_push("me/policy", "none")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SealError, match="HF_HUB_OFFLINE"):
        check_push("me/policy", "final")


def test_the_saved_directory_is_the_base_model_without_its_adapters(registry, fresh_tiny, tiny_logits, tmp_path):
    """Saved while the student carries the inner loop's LoRA layers: the directory holds the plain
    base weights, and transformers loads a model that computes what the student's base does."""
    from transformers import AutoModelForCausalLM

    from seal_core.api.types import LoadedModel

    base_logits = tiny_logits(fresh_tiny)
    with registry.get("inner_updater", "lora").adapted(fresh_tiny, ["Old Margery was cast in 1602."]):
        pass  # the adapters stay injected (switched off) after the reset
    path = write_model_dir(fresh_tiny, tmp_path / "policy", "# card\n")
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # nothing half-written left
    assert (path / "README.md").read_text() == "# card\n"
    model = AutoModelForCausalLM.from_pretrained(path)
    assert not any("lora_" in k for k in model.state_dict())
    reloaded = LoadedModel(model.eval(), fresh_tiny.tokenizer, str(path))
    assert torch.allclose(tiny_logits(reloaded), base_logits, atol=1e-6)
