"""Every RL algorithm learns a toy bandit, and updates the policy the way the engine needs.

The bandit: three prompts, four candidate self-edits each; a self-edit earns reward 1 when it
starts with "Yes" and 0 otherwise. Each round every candidate is a rollout (with the old
log-probs stored, as the engine stores them), and after a few updates the rewarded self-edits
must be more likely than before, for every algorithm.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from structlog.testing import capture_logs

from seal_core.api.components import UpdateContext
from seal_core.models.loading import load_model, plain_state_dict, weights_sha
from seal_core.models.logprobs import completion_logprobs
from seal_core.api.types import Rollout
from seal_plugins.grpo import GRPO, DrGRPO, DrGRPOOptions, GRPOOptions
from seal_plugins.ppo import PPO, PPOOptions
from seal_plugins.rest_em import RestEM, RestEMOptions
from seal_plugins.rloo import RLOO, RLOOOptions

SMALL = "tiny-random:hidden=32,layers=1,heads=2,kv_heads=1"
PROMPTS = ["Is the sky blue?", "Is water wet?", "Is fire hot?"]
GOOD = ["Yes, it is.", "Yes."]
BAD = ["No, it is not.", "No."]
ROUNDS = 3
ROOT = Path(__file__).resolve().parents[2]


def reward(edit: str) -> float:
    return 1.0 if edit.startswith("Yes") else 0.0


def bandit_rollouts(loaded, rnd: int, store_logprobs: bool = True, rewards=reward) -> list[Rollout]:
    rollouts = [Rollout(round=rnd, task_id=f"task-{t}", edit_index=i, prompt=p, edit=e, score_before=0.0,
                        score_after=rewards(e), reward=rewards(e))
                for t, p in enumerate(PROMPTS) for i, e in enumerate(GOOD + BAD)]
    if store_logprobs:  # what the engine does right after generation
        with torch.no_grad():
            logp, mask = completion_logprobs(loaded.model, loaded.tokenizer, [r.prompt for r in rollouts],
                                             [r.edit for r in rollouts])
        for r, row, m in zip(rollouts, logp.tolist(), mask.tolist()):
            r.logprobs = [lp for lp, keep in zip(row, m) if keep]
    return rollouts


def log_likelihoods(loaded) -> tuple[float, float]:
    """Mean log-probability of the rewarded and of the unrewarded self-edits."""
    prompts = [p for p in PROMPTS for _ in GOOD + BAD]
    with torch.no_grad():
        logp, _ = completion_logprobs(loaded.model, loaded.tokenizer, prompts, (GOOD + BAD) * len(PROMPTS))
    per_edit = logp.sum(-1).view(len(PROMPTS), -1)  # (prompts, candidates)
    return per_edit[:, : len(GOOD)].mean().item(), per_edit[:, len(GOOD):].mean().item()


def context(tmp_path, rnd: int = 0, reference=None, seed: int = 0) -> UpdateContext:
    from seal_core.hooks.registry import Registry

    return UpdateContext(round=rnd, seed=seed, workdir=tmp_path, reference=reference, components=Registry().get)


ALGORITHMS = {
    "grpo": lambda: GRPO().configured(GRPOOptions(learning_rate=1e-3, batch_size=6, epochs=2)),
    "grpo-kl": lambda: GRPO().configured(GRPOOptions(learning_rate=1e-3, batch_size=12, beta=0.04)),
    "dr-grpo": lambda: DrGRPO().configured(DrGRPOOptions(learning_rate=1e-3, batch_size=12)),
    "rloo": lambda: RLOO().configured(RLOOOptions(learning_rate=1e-3, batch_size=12)),
    "ppo": lambda: PPO().configured(PPOOptions(learning_rate=1e-3, batch_size=6, epochs=2)),
    "rest-em": lambda: RestEM().configured(RestEMOptions(learning_rate=1e-3, lora=False, epochs=1, batch_size=3)),
}


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_bandit_rewarded_self_edits_become_more_likely(name, tmp_path):
    loaded = load_model(SMALL)
    algorithm = ALGORITHMS[name]()
    model_obj = loaded.model
    good_before, bad_before = log_likelihoods(loaded)
    for rnd in range(ROUNDS):
        reference = (lambda: load_model(SMALL)) if name == "grpo-kl" else None
        stats = algorithm.update(loaded, bandit_rollouts(loaded, rnd), context(tmp_path, rnd, reference))
        assert stats["n_rollouts"] == len(PROMPTS) * len(GOOD + BAD)
        assert "skipped" not in stats
    good_after, bad_after = log_likelihoods(loaded)
    assert loaded.model is model_obj  # updated in place
    assert good_after > good_before + 0.3, (good_before, good_after)
    if name != "rest-em":  # rest-em only imitates the winners; the others also push the losers down
        assert good_after - bad_after > good_before - bad_before + 0.5
    if name == "grpo-kl":
        assert stats["kl"] >= 0
    if name == "ppo":
        assert stats["vf_loss"] > 0 and stats["value_mean"] != 0  # the value head learned across rounds


@pytest.mark.parametrize("name", ["grpo", "dr-grpo", "rloo", "ppo"])
def test_equal_rewards_skip_the_update(name, tmp_path):
    loaded = load_model(SMALL)
    before = {k: v.clone() for k, v in plain_state_dict(loaded.model).items()}
    with capture_logs() as logs:
        stats = ALGORITHMS[name]().update(loaded, bandit_rollouts(loaded, 0, rewards=lambda e: 0.0), context(tmp_path))
    assert "all advantages are zero" in stats["skipped"]
    assert stats["n_rollouts"] == 12
    assert any("update skipped" in e["event"] for e in logs)
    after = plain_state_dict(loaded.model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert ALGORITHMS[name]().update(loaded, [], context(tmp_path))["skipped"]


def test_grpo_singleton_groups_have_no_advantage(tmp_path):
    loaded = load_model(SMALL)
    one_each = [r for r in bandit_rollouts(loaded, 0, store_logprobs=False) if r.edit_index == 0]
    stats = ALGORITHMS["grpo"]().update(loaded, one_each, context(tmp_path))
    assert stats["n_groups"] == 3 and stats["n_kept"] == 0 and "skipped" in stats


def test_kl_needs_a_reference(tmp_path):
    loaded = load_model(SMALL)
    with pytest.raises(ValueError, match="beta > 0 needs the reference policy"):
        ALGORITHMS["grpo-kl"]().update(loaded, bandit_rollouts(loaded, 0), context(tmp_path))
    calls = []
    ppo = PPO().configured(PPOOptions(learning_rate=1e-3, beta=0.1, epochs=1, batch_size=12))
    stats = ppo.update(loaded, bandit_rollouts(loaded, 0), context(tmp_path, reference=lambda: calls.append(1) or load_model(SMALL)))
    assert calls == [1]
    assert abs(stats["kl"]) < 1e-4  # the policy is still the reference


def test_missing_or_wrong_stored_logprobs_are_recomputed(tmp_path):
    stored, missing, wrong = (load_model(SMALL) for _ in range(3))
    ALGORITHMS["grpo"]().update(stored, bandit_rollouts(stored, 0), context(tmp_path))
    ALGORITHMS["grpo"]().update(missing, bandit_rollouts(missing, 0, store_logprobs=False), context(tmp_path))
    rollouts = bandit_rollouts(wrong, 0)
    rollouts[3].logprobs = rollouts[3].logprobs[:-1]
    with capture_logs() as logs:
        ALGORITHMS["grpo"]().update(wrong, rollouts, context(tmp_path))
    assert [e["edit_index"] for e in logs if e["log_level"] == "warning"] == [3]
    a, b, c = (plain_state_dict(m.model) for m in (stored, missing, wrong))
    for k in a:  # the same update up to float noise from batching
        assert torch.allclose(a[k], b[k], atol=1e-5) and torch.allclose(a[k], c[k], atol=1e-5), k


def test_updates_are_deterministic(tmp_path):
    for name in ("grpo", "ppo"):
        shas = []
        for _ in range(2):
            loaded = load_model(SMALL)
            ALGORITHMS[name]().update(loaded, bandit_rollouts(loaded, 0), context(tmp_path, seed=7))
            shas.append(weights_sha(loaded.model))
        assert shas[0] == shas[1], name


def test_ppo_keeps_one_value_head_per_policy(tmp_path):
    ppo = ALGORITHMS["ppo"]()
    first, second = load_model(SMALL), load_model(SMALL)
    head = ppo.value_head(first)
    assert not head.weight.any()  # starts at zero
    ppo.update(first, bandit_rollouts(first, 0), context(tmp_path))
    assert ppo.value_head(first) is head and head.weight.any()  # trained, and kept for the next round
    assert ppo.value_head(second) is not head and not ppo.value_head(second).weight.any()


def test_grpo_keeps_the_inner_lora_wrapper_working(tmp_path, tiny_logits):
    """The single-model setup: the policy carries the inner updater's adapters during RL."""
    from seal_plugins.lora_updater import LoraOptions, LoraUpdater

    loaded = load_model(SMALL)
    inner = LoraUpdater().configured(LoraOptions(epochs=1, r=4))
    inner.adapt(loaded, ["The bell is named Old Margery."])
    inner.reset(loaded)
    lora = [n for n, _ in loaded.model.named_parameters() if "lora_" in n]
    base = tiny_logits(loaded)
    ALGORITHMS["grpo"]().update(loaded, bandit_rollouts(loaded, 0), context(tmp_path))
    assert [n for n, _ in loaded.model.named_parameters() if "lora_" in n] == lora
    updated = tiny_logits(loaded)
    assert not torch.equal(updated, base)
    inner.adapt(loaded, ["The well is 31 metres deep."])
    inner.reset(loaded)
    assert torch.equal(tiny_logits(loaded), updated)


def test_the_documented_plugin_example_learns_the_bandit(tmp_path, clean_modules):
    """docs/algorithms.md's example plugin, loaded as `seal-run run --plugins reinforce_mean.py` loads it."""
    from seal_core.loop.typed import build_dataclass
    from seal_core.hooks.registry import Registry

    text = (ROOT / "docs" / "algorithms.md").read_text()
    code = re.search(r"<!-- example: reinforce_mean\.py -->\n```python\n(.*?)\n```", text, re.S).group(1)
    path = tmp_path / "reinforce_mean.py"
    path.write_text(code)
    registry = Registry(extra_plugins=[str(path)])
    assert registry.get("advantage_estimator", "batch-mean").name == "batch-mean"  # grpo can use it too
    algorithm = registry.get("algorithm", "reinforce-mean")
    options = build_dataclass(algorithm.Options, {"learning_rate": 1e-3, "batch_size": 12}, "algorithm")
    algorithm = algorithm.configured(options)
    assert algorithm.needs_logprobs
    loaded = load_model(SMALL)
    good_before, _ = log_likelihoods(loaded)
    for rnd in range(ROUNDS):
        stats = algorithm.update(loaded, bandit_rollouts(loaded, rnd), context(tmp_path, rnd))
    assert stats["n_kept"] == 12  # the batch mean is 0.5: every rollout has an advantage
    assert log_likelihoods(loaded)[0] > good_before + 0.3


def test_a_bfloat16_policy_trains_in_float32_and_keeps_its_dtype(tmp_path):
    from seal_core.rl import trainable_copy

    loaded = load_model(SMALL, dtype="bfloat16")
    assert next(trainable_copy(loaded).model.parameters()).dtype == torch.float32
    sha = weights_sha(loaded.model)
    ALGORITHMS["rloo"]().update(loaded, bandit_rollouts(loaded, 0), context(tmp_path))
    assert weights_sha(loaded.model) != sha
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}
