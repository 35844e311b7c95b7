"""seal_plugins.rest_em: rollout selection and the in-place ReST^EM update (tiny-random)."""

from __future__ import annotations

import math

import pytest
import torch

from seal_core.api.components import UpdateContext
from seal_core.models.loading import load_model, plain_state_dict, weights_sha
from seal_core.api.types import Rollout
from seal_plugins.lora_updater import LoraOptions, LoraUpdater
from seal_plugins.rest_em import RestEM, RestEMOptions, select_rollouts


def ro(task: str, i: int, reward: float, rnd: int = 0) -> Rollout:
    return Rollout(round=rnd, task_id=task, edit_index=i, prompt=f"Write implications of passage {task}.",
                   edit=f"Passage {task} edit {i}: the bell is named Old Margery.", score_before=0.0,
                   score_after=reward, reward=reward)


def key(rollouts: list[Rollout]) -> list[tuple[str, int]]:
    return [(r.task_id, r.edit_index) for r in rollouts]


# -- selection -------------------------------------------------------------------------------


def test_select_keeps_the_best_per_task():
    rollouts = [ro("a", 0, 0.2), ro("a", 1, 0.6), ro("a", 2, 0.4), ro("b", 0, 0.1), ro("b", 1, 0.0)]
    assert key(select_rollouts(rollouts, keep_top=1, min_reward=0.0)) == [("a", 1), ("b", 0)]
    assert key(select_rollouts(rollouts, keep_top=2, min_reward=0.0)) == [("a", 1), ("a", 2), ("b", 0)]
    assert key(select_rollouts(rollouts, keep_top=5, min_reward=0.0)) == [("a", 1), ("a", 2), ("a", 0), ("b", 0)]


def test_select_is_strictly_above_min_reward():
    rollouts = [ro("a", 0, 0.5), ro("a", 1, 0.3), ro("b", 0, 0.3)]
    assert key(select_rollouts(rollouts, keep_top=3, min_reward=0.3)) == [("a", 0)]
    assert select_rollouts(rollouts, keep_top=3, min_reward=0.5) == []
    negative = [ro("a", 0, -0.5), ro("a", 1, -0.2), ro("a", 2, 0.0)]
    assert select_rollouts(negative, keep_top=1, min_reward=0.0) == []
    assert key(select_rollouts(negative, keep_top=1, min_reward=-1.0)) == [("a", 2)]
    assert key(select_rollouts(negative, keep_top=2, min_reward=-0.3)) == [("a", 2), ("a", 1)]


def test_select_ties_prefer_the_lower_edit_index():
    rollouts = [ro("a", 3, 0.5), ro("a", 1, 0.5), ro("a", 2, 0.5), ro("a", 0, 0.1)]
    assert key(select_rollouts(rollouts, keep_top=1, min_reward=0.0)) == [("a", 1)]
    assert key(select_rollouts(rollouts, keep_top=2, min_reward=0.0)) == [("a", 1), ("a", 2)]
    # input order does not matter
    assert key(select_rollouts(list(reversed(rollouts)), keep_top=2, min_reward=0.0)) == [("a", 1), ("a", 2)]


def test_select_tasks_without_positive_reward_contribute_nothing():
    rollouts = [ro("a", 0, 0.0), ro("a", 1, -0.1), ro("b", 0, 0.25), ro("c", 0, 0.0), ro("c", 1, 0.0)]
    kept = select_rollouts(rollouts, keep_top=2, min_reward=0.0)
    assert key(kept) == [("b", 0)]
    assert kept[0] is rollouts[2]
    assert select_rollouts([], keep_top=1, min_reward=0.0) == []


def test_select_is_deterministic_across_task_order():
    rollouts = [ro("zeta", 0, 0.3), ro("alpha", 0, 0.2), ro("mid", 1, 0.9)]
    assert key(select_rollouts(rollouts, 1, 0.0)) == key(select_rollouts(list(reversed(rollouts)), 1, 0.0))
    assert {t for t, _ in key(select_rollouts(rollouts, 1, 0.0))} == {"zeta", "alpha", "mid"}


@pytest.mark.parametrize("bad", [{"keep_top": 0}, {"epochs": 0}, {"batch_size": 0}, {"lora_r": 0},
                                 {"learning_rate": 0.0}, {"learning_rate": -1e-3}])
def test_options_validation(bad):
    with pytest.raises(ValueError):
        RestEMOptions(**bad)


# -- the update ------------------------------------------------------------------------------


def algorithm(**overrides) -> RestEM:
    return RestEM().configured(RestEMOptions(**{"epochs": 1, "batch_size": 2, "learning_rate": 1e-3, **overrides}))


def context(tmp_path, reference=None, rnd: int = 0) -> UpdateContext:
    return UpdateContext(round=rnd, seed=0, workdir=tmp_path, reference=reference)


MIXED = [ro("a", 0, 0.0), ro("a", 1, 0.5), ro("b", 0, 1.0), ro("b", 1, -0.5), ro("c", 0, 0.0)]


def test_update_changes_weights_in_place(fresh_tiny, tmp_path):
    model_obj = fresh_tiny.model
    sha = weights_sha(fresh_tiny.model)
    stats = algorithm().update(fresh_tiny, MIXED, context(tmp_path))
    assert fresh_tiny.model is model_obj
    assert weights_sha(fresh_tiny.model) != sha
    assert stats["n_kept"] == 2
    assert stats["n_rollouts"] == len(MIXED)
    assert isinstance(stats["sft_loss"], float) and stats["sft_loss"] > 0
    assert list(tmp_path.iterdir()) == []  # the rest-em-* working dir was removed
    assert not any("lora_" in n for n in fresh_tiny.model.state_dict())  # the SFT LoRA was merged away
    assert fresh_tiny.model.training is False


def test_update_without_winners_leaves_weights_unchanged(fresh_tiny, tmp_path):
    before = {k: v.clone() for k, v in plain_state_dict(fresh_tiny.model).items()}
    losers = [ro("a", 0, 0.0), ro("a", 1, -0.5), ro("b", 0, 0.0)]
    stats = algorithm().update(fresh_tiny, losers, context(tmp_path))
    assert stats["n_kept"] == 0
    assert stats["n_rollouts"] == 3
    assert "sft_loss" not in stats
    after = plain_state_dict(fresh_tiny.model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert list(tmp_path.iterdir()) == []
    assert algorithm().update(fresh_tiny, [], context(tmp_path))["n_kept"] == 0


def test_update_with_min_reward_below_zero_keeps_zero_reward_edits(fresh_tiny, tmp_path):
    zeros = [ro("a", 0, 0.0), ro("a", 1, 0.0), ro("b", 0, 0.0)]
    sha = weights_sha(fresh_tiny.model)
    stats = algorithm(min_reward=-1.0).update(fresh_tiny, zeros, context(tmp_path))
    assert stats["n_kept"] == 2
    assert weights_sha(fresh_tiny.model) != sha


def test_update_full_finetune(fresh_tiny, tmp_path):
    model_obj = fresh_tiny.model
    before = {k: v.clone() for k, v in plain_state_dict(fresh_tiny.model).items()}
    stats = algorithm(lora=False).update(fresh_tiny, MIXED, context(tmp_path))
    assert stats["n_kept"] == 2
    assert fresh_tiny.model is model_obj
    after = plain_state_dict(fresh_tiny.model)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed
    assert list(tmp_path.iterdir()) == []


def test_update_keeps_the_inner_lora_wrapper_working(fresh_tiny, tmp_path, tiny_logits):
    """The single-model setup: the policy carries the inner updater's adapters during RL."""
    inner = LoraUpdater().configured(LoraOptions(epochs=1, r=4))
    inner.adapt(fresh_tiny, ["The bell is named Old Margery."])
    inner.reset(fresh_tiny)
    lora_before = [n for n, _ in fresh_tiny.model.named_parameters() if "lora_" in n]
    sha = weights_sha(fresh_tiny.model)
    base_logits = tiny_logits(fresh_tiny)

    algorithm().update(fresh_tiny, MIXED, context(tmp_path))
    assert weights_sha(fresh_tiny.model) != sha
    assert [n for n, _ in fresh_tiny.model.named_parameters() if "lora_" in n] == lora_before
    updated = tiny_logits(fresh_tiny)
    assert not torch.equal(updated, base_logits)
    # the inner loop still adapts and resets to the *updated* policy
    inner.adapt(fresh_tiny, ["The well is 31 metres deep."])
    assert not torch.equal(tiny_logits(fresh_tiny), updated)
    inner.reset(fresh_tiny)
    assert torch.equal(tiny_logits(fresh_tiny), updated)


def test_restart_from_base_uses_the_reference(fresh_tiny, tmp_path):
    calls = []

    def reference():
        calls.append(1)
        return load_model("tiny-random")

    # move the policy away from the base first, so "from base" and "from policy" differ
    with torch.no_grad():
        for p in fresh_tiny.model.parameters():
            p.mul_(1.01)
    model_obj = fresh_tiny.model
    from_base = algorithm(restart_from_base=True).update(fresh_tiny, MIXED, context(tmp_path, reference))
    assert calls == [1]
    assert from_base["n_kept"] == 2
    assert fresh_tiny.model is model_obj
    sha_from_base = weights_sha(fresh_tiny.model)

    # the same update from the reference, applied to a fresh base model, gives the same weights
    other = load_model("tiny-random")
    algorithm().update(other, MIXED, context(tmp_path))
    assert weights_sha(other.model) == sha_from_base
    assert list(tmp_path.iterdir()) == []

    # without restart_from_base the reference is not used
    algorithm().update(fresh_tiny, MIXED, context(tmp_path, reference))
    assert calls == [1]


def test_restart_from_base_without_winners_does_not_load(fresh_tiny, tmp_path):
    calls = []

    def reference():
        calls.append(1)
        return load_model("tiny-random")

    stats = algorithm(restart_from_base=True).update(fresh_tiny, [ro("a", 0, 0.0)], context(tmp_path, reference))
    assert stats["n_kept"] == 0 and calls == []


def test_update_is_deterministic(tmp_path):
    shas = []
    for i in range(2):
        loaded = load_model("tiny-random")
        wd = tmp_path / str(i)
        wd.mkdir()
        algorithm().update(loaded, MIXED, context(wd))
        shas.append(weights_sha(loaded.model))
    assert shas[0] == shas[1]


def test_kl_anchor_holds_the_policy_near_the_initial_one(tmp_path):
    """beta > 0: the SFT loss gains beta x KL(policy || initial policy); a strong anchor ends
    closer to the initial weights than a negligible one, from the same start and data."""
    def moved():
        policy = load_model("tiny-random")
        with torch.no_grad():  # away from the reference, so the KL pulls from the first step
            for p in policy.model.parameters():
                p.mul_(1.05)
        return policy

    initial = plain_state_dict(load_model("tiny-random").model)

    def distance(policy):
        state = plain_state_dict(policy.model)
        return sum(float((state[k] - initial[k]).pow(2).sum()) for k in initial) ** 0.5

    ends = {}
    for beta in (1e-9, 50.0):
        policy = moved()
        stats = algorithm(beta=beta, epochs=3, learning_rate=3e-3).update(
            policy, MIXED, context(tmp_path, lambda: load_model("tiny-random")))
        assert stats["n_kept"] == 2 and math.isfinite(stats["sft_loss"])
        assert stats["kl"] >= 0  # the anchor's KL goes to the round's metrics
        ends[beta] = distance(policy)
    assert ends[50.0] < ends[1e-9]
    with pytest.raises(ValueError, match="beta"):
        RestEMOptions(beta=-1.0)
