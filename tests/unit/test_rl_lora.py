"""grpo, rloo and ppo with ``lora: true``: a LoRA adapter trains and is merged into the policy."""

from __future__ import annotations

import pytest
import torch

import seal_core.rl.zero as zero
from seal_core.api.components import UpdateContext
from seal_core.loop.config import load_raw, resolve
from seal_core.api.errors import ConfigError
from seal_core.models.logprobs import completion_logprobs
from seal_core.models.loading import load_model, weights_sha
from seal_core.rl import trainable_policy, trained_weights
from seal_core.api.types import Rollout
from seal_core.rl.zero import UpdateLoop, deepspeed_config
from seal_plugins.grpo import GRPO, GRPOOptions
from seal_plugins.ppo import PPO, PPOOptions
from seal_plugins.rloo import RLOO, RLOOOptions

SMALL = "tiny-random:hidden=32,layers=1,heads=2,kv_heads=1"
PROMPT = "Is the sky blue?"
GOOD, BAD = "Yes, it is.", "No, it is not."


def rollouts(loaded) -> list[Rollout]:
    """One task, two self-edits: GOOD rewarded (positive advantage), BAD not (negative)."""
    out = [Rollout(round=0, task_id="t", edit_index=i, prompt=PROMPT, edit=e, score_before=0.0,
                   score_after=float(e == GOOD), reward=float(e == GOOD)) for i, e in enumerate((GOOD, BAD))]
    with torch.no_grad():
        logp, mask = completion_logprobs(loaded.model, loaded.tokenizer, [PROMPT] * 2, [GOOD, BAD])
    for r, row, m in zip(out, logp.tolist(), mask.tolist()):
        r.logprobs = [lp for lp, keep in zip(row, m) if keep]
    return out


def edit_logprobs(loaded) -> tuple[float, float]:
    with torch.no_grad():
        logp, _ = completion_logprobs(loaded.model, loaded.tokenizer, [PROMPT] * 2, [GOOD, BAD])
    good, bad = logp.sum(-1).tolist()
    return good, bad


LORA = {
    "grpo": lambda: GRPO().configured(GRPOOptions(learning_rate=1e-2, batch_size=2, epochs=2, lora=True, lora_r=4)),
    "rloo": lambda: RLOO().configured(RLOOOptions(learning_rate=1e-2, batch_size=2, epochs=2, lora=True, lora_r=4)),
    "ppo": lambda: PPO().configured(PPOOptions(learning_rate=1e-2, batch_size=2, epochs=2, lora=True, lora_r=4)),
}


@pytest.mark.parametrize("name", list(LORA))
def test_lora_update_trains_the_adapter_only_and_moves_the_policy(name, tmp_path, monkeypatch, registry):
    policy = load_model(SMALL)
    model, sha = policy.model, weights_sha(policy.model)
    good_before, bad_before = edit_logprobs(policy)
    trained: list[set[str]] = []
    modules: list[torch.nn.Module] = []
    init, step = UpdateLoop.__init__, zero.optimizer_step

    def record_module(self, module, **kwargs):
        modules.append(module)
        init(self, module, **kwargs)

    def record_grads(params, optimizer, loss, max_grad_norm):
        step(params, optimizer, loss, max_grad_norm)
        trained.append({n for n, p in modules[-1].named_parameters() if p.grad is not None and p.grad.any()})

    monkeypatch.setattr(UpdateLoop, "__init__", record_module)
    monkeypatch.setattr(zero, "optimizer_step", record_grads)
    stats = LORA[name]().update(policy, rollouts(policy), UpdateContext(round=0, seed=0, workdir=tmp_path, components=registry.get))
    assert "skipped" not in stats and trained
    names = set().union(*trained)
    assert any("lora_B" in n for n in names)
    assert all("lora_" in n or n.startswith("value_head.") for n in names), sorted(names)[:5]
    assert policy.model is model and weights_sha(policy.model) != sha  # updated in place
    assert not any("lora_" in n for n, _ in policy.model.named_parameters())  # merged, not attached
    good_after, bad_after = edit_logprobs(policy)
    assert good_after > good_before and bad_after < bad_before


def test_trained_weights_merge_the_adapter_exactly():
    policy = load_model(SMALL)
    opts = GRPOOptions(lora=True, lora_r=4)
    work = trainable_policy(policy, opts)
    with torch.no_grad():
        for n, p in work.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    ids = policy.tokenizer("The sky is blue because", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        adapted = work.model(ids).logits
    from seal_core.models.loading import load_weights

    load_weights(policy, trained_weights(UpdateLoop(work.model, learning_rate=1e-3), work, opts))
    with torch.no_grad():
        merged = policy.model(ids).logits
    assert not torch.allclose(merged, load_model(SMALL).model(ids).logits)
    torch.testing.assert_close(merged, adapted, atol=1e-5, rtol=1e-4)


def test_lora_with_deepspeed_is_refused_with_the_fix(registry):
    with pytest.raises(ConfigError, match="algorithm.lora=false"):
        resolve(load_raw(None, ["algorithm.name=grpo", "algorithm.lora=true", "trainer.deepspeed=zero2"]), registry)
    grpo = registry.get("algorithm", "grpo")
    assert grpo.supports_deepspeed and not grpo.configured(GRPOOptions(lora=True)).supports_deepspeed
    assert deepspeed_config("zero2", grpo.configured(GRPOOptions(lora=True))) is None  # never a DeepSpeed update


@pytest.mark.parametrize("bad", [{"lora_r": 0}, {"lora_alpha": 0.0}])
def test_lora_options_validation(bad):
    with pytest.raises(ValueError, match="lora_r"):
        GRPOOptions(**bad)
    with pytest.raises(ValueError, match="lora_r"):
        PPOOptions(**bad)
