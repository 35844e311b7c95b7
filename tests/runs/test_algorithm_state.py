"""An RL algorithm's own state (ppo's value head) is part of the run's resume point."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seal_core.runtime import logs
from seal_core.commands.main import main
from seal_core.runs.store import RunStore
from seal_plugins.ppo import PPO

from tiny import TINY, Killed, run_args

CONFIG = [
    *TINY, "rounds=2", "algorithm.name=ppo", "algorithm.epochs=1",
    "reward.name=answer-likelihood",  # dense rewards: a random model's containment is 0 everywhere
]


def _args(run_dir: Path) -> list[str]:
    return run_args(run_dir, CONFIG)


def _record_heads(monkeypatch) -> dict[int, dict[str, torch.Tensor]]:
    """The value head each PPO update starts from, by round."""
    heads: dict[int, dict[str, torch.Tensor]] = {}
    original = PPO.update

    def update(self, policy, rollouts, context):
        heads[context.round] = {k: v.clone() for k, v in self.state_dict(policy).items()}
        return original(self, policy, rollouts, context)

    monkeypatch.setattr(PPO, "update", update)
    return heads


def test_a_resumed_ppo_run_keeps_its_value_head(tmp_path, monkeypatch):
    heads = _record_heads(monkeypatch)
    assert main(_args(tmp_path / "whole")) == 0
    uninterrupted = heads.pop(1)
    assert set(uninterrupted) == {"value_head.weight", "value_head.bias"}
    assert uninterrupted["value_head.weight"].any()  # round 0's update trained it

    run_dir = tmp_path / "killed"
    original = RunStore.append_metrics

    def die_before_round_0_line(self, metrics):  # after round 0's update and its resume point
        if metrics["round"] == 0:
            raise Killed
        original(self, metrics)

    with monkeypatch.context() as mp:
        mp.setattr(RunStore, "append_metrics", die_before_round_0_line)
        with pytest.raises(Killed):
            main(_args(run_dir))
    heads.clear()
    assert main(["run", "--resume", str(run_dir)]) == 0
    logs.configure()
    assert set(heads) == {1}  # round 0's update was not applied again
    for key, value in uninterrupted.items():
        assert torch.equal(heads[1][key], value), key


def test_an_algorithm_without_state_saves_none(tmp_path):
    from seal_core.models.loading import load_model
    from seal_core.runs.resume import load_resume_point, save_resume_point

    store = RunStore.create(tmp_path / "run")
    policy = load_model("tiny-random")
    stateless = object()  # no state_dict / load_state_dict at all
    save_resume_point(store, stateless, policy, 0, {"round": 0})
    assert store.load_resume_point(policy) == {}
    load_resume_point(store, stateless, policy)  # nothing to restore, no error

    ppo = PPO()
    head = ppo.value_head(policy)
    with torch.no_grad():
        head.weight.fill_(0.5)
    save_resume_point(store, ppo, policy, 0, {"round": 0})
    fresh_ppo, fresh_policy = PPO(), load_model("tiny-random")
    load_resume_point(store, fresh_ppo, fresh_policy)
    assert torch.equal(fresh_ppo.value_head(fresh_policy).weight, head.weight.detach())
