"""seal_core.rl: estimators, losses and log-probs against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
from structlog.testing import capture_logs

from seal_core.loop.typed import build_dataclass
from seal_core.api.errors import ConfigError
from seal_core.models.prompting import format_prompt
from seal_core.models.logprobs import TokenizedRollouts, completion_logprobs, old_logprobs
from seal_core.api.components import UpdateContext
from seal_core.hooks.registry import Registry
from seal_core.rl import (
    aggregate,
    clipped_policy_loss,
    clipped_value_loss,
    dr_grpo_advantages,
    gae,
    grpo_advantages,
    group_ids,
    kl_k3,
    masked_mean,
    masked_sum,
    masked_whiten,
    rloo_advantages,
)
from seal_core.api.types import Rollout
from seal_plugins.grpo import DrGRPOOptions, GRPOOptions
from seal_plugins.ppo import PPOOptions
from seal_plugins.rloo import RLOOOptions

X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
M = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def close(a, b, tol=1e-5):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32), atol=tol)


# -- masked reductions -----------------------------------------------------------------------


def test_masked_sum_and_mean():
    assert close(masked_sum(X, M), 7.0)
    assert close(masked_mean(X, M), 7.0 / 3)
    assert close(masked_sum(X, M, dim=-1), [3.0, 4.0])
    assert close(masked_mean(X, M, dim=-1), [1.5, 4.0])
    assert close(masked_mean(X, M, dim=0), [2.5, 2.0, 0.0])  # an empty column is 0, not NaN
    assert masked_mean(X, torch.zeros_like(X)).item() == 0.0


def test_masked_whiten():
    out = masked_whiten(torch.tensor([1.0, 2.0, 3.0, 100.0]), torch.tensor([1.0, 1.0, 1.0, 0.0]))
    s = math.sqrt(1.5)  # (x - 2) / sqrt(2/3)
    assert close(out, [-s, 0.0, s, 0.0], tol=1e-4)


def test_aggregate():
    assert close(aggregate(X, M, "token-mean"), 7.0 / 3)
    assert close(aggregate(X, M, "seq-mean-token-mean"), (1.5 + 4.0) / 2)
    assert close(aggregate(X, M, "seq-mean-token-sum"), (3.0 + 4.0) / 2)
    with pytest.raises(ValueError, match="loss_agg"):
        aggregate(X, M, "mean")


# -- advantages ------------------------------------------------------------------------------

REWARDS = torch.tensor([1.0, 0.0, 0.5, 2.0, 2.0, 3.0])
GROUPS = torch.tensor([0, 0, 0, 1, 1, 2])  # a: mixed rewards, b: all equal, c: alone
ESTIMATORS = {"grpo": grpo_advantages, "dr-grpo": dr_grpo_advantages, "rloo": rloo_advantages}


def test_grpo_estimator():
    # group a: mean 0.5, unbiased std 0.5; b: std 0; c: one rollout
    expected = [0.5 / (0.5 + 1e-6), -0.5 / (0.5 + 1e-6), 0, 0, 0, 0]
    assert close(ESTIMATORS["grpo"](REWARDS, GROUPS), expected)
    assert close(ESTIMATORS["grpo"](REWARDS, GROUPS, eps=0.5), [0.5, -0.5, 0, 0, 0, 0])


def test_dr_grpo_estimator():
    assert close(ESTIMATORS["dr-grpo"](REWARDS, GROUPS), [0.5, -0.5, 0, 0, 0, 0])
    # no std: scaling the rewards scales the advantages
    assert close(ESTIMATORS["dr-grpo"](REWARDS * 4, GROUPS), [2.0, -2.0, 0, 0, 0, 0])


def test_rloo_estimator():
    # 1 - mean(0, .5) = .75; 0 - mean(1, .5) = -.75; .5 - mean(1, 0) = 0
    assert close(ESTIMATORS["rloo"](REWARDS, GROUPS), [0.75, -0.75, 0, 0, 0, 0])
    r = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert close(ESTIMATORS["rloo"](r, torch.zeros(4, dtype=torch.long)), [1.0, -1 / 3, -1 / 3, -1 / 3])


def test_group_ids_are_round_and_task():
    def ro(rnd, task):
        return Rollout(round=rnd, task_id=task, edit_index=0, prompt="p", edit="e", score_before=0.0,
                       score_after=0.0, reward=0.0)

    ids = group_ids([ro(0, "b"), ro(0, "a"), ro(0, "b"), ro(1, "a"), ro(0, "a")])
    assert ids.tolist() == [0, 1, 0, 2, 1]


def test_estimators_are_registered_components(tmp_path, clean_modules):
    """The built-ins come from the grpo and rloo plugins; a plugin's own estimator is found by the
    config check (algorithm.estimator) and by the update (context.component), and a name that is
    not registered fails the config check with the known names."""
    from seal_core.loop.config import load_raw, resolve
    from seal_core.api.errors import SealError

    registry = Registry()
    assert {"grpo", "dr-grpo", "rloo"} <= set(registry.components["advantage_estimator"])
    path = tmp_path / "raw_estimator.py"
    path.write_text(
        "from seal_core import AdvantageEstimator, hookimpl\n\n"
        "class Raw(AdvantageEstimator):\n"
        "    name = 'test-raw'\n"
        "    def advantages(self, rewards, groups, *, eps=1e-6):\n"
        "        return rewards\n\n"
        "@hookimpl\n"
        "def seal_register_advantage_estimators(register):\n"
        "    register(Raw())\n")
    with_raw = Registry(extra_plugins=[str(path)])
    config = resolve(load_raw(None, ["algorithm.name=grpo", "algorithm.estimator=test-raw"]), with_raw)
    assert config.options["algorithm"].estimator == "test-raw"
    context = UpdateContext(round=0, seed=0, workdir=tmp_path, components=with_raw.get)
    grpo = with_raw.get("algorithm", "grpo").configured(config.options["algorithm"])
    assert torch.equal(grpo.advantages(REWARDS, GROUPS, context), REWARDS)
    with pytest.raises(SealError, match="advantage_estimator 'test-raw' \\(config key 'algorithm.estimator'\\).*dr-grpo"):
        resolve(load_raw(None, ["algorithm.name=grpo", "algorithm.estimator=test-raw"]), registry)


def test_gae():
    # gamma 1, lam .5: deltas .3, .1, .1 from the end; A2 = .3, A1 = .1 + .5*.3, A0 = .1 + .5*.25
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 2.0, 0.0, 0.0]])
    values = torch.tensor([[0.5, 0.6, 0.7, 9.0], [1.0, 1.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # row 2: delta1 = 2 - 1 = 1, delta0 = 0 + 1 - 1 = 0 -> A0 = 0 + .5 * 1
    assert close(adv, [[0.225, 0.25, 0.3, 0.0], [0.5, 1.0, 0.0, 0.0]])
    assert close(ret, [[0.725, 0.85, 1.0, 0.0], [1.5, 2.0, 0.0, 0.0]])
    # lam 1: Monte Carlo; returns are the discounted rewards, whatever the values
    adv, ret = gae(torch.tensor([[0.0, 0.0, 2.0]]), torch.ones(1, 3), torch.ones(1, 3), gamma=0.5, lam=1.0)
    assert close(ret, [[0.5, 1.0, 2.0]])
    assert close(adv, [[-0.5, 0.0, 1.0]])


# -- losses ----------------------------------------------------------------------------------


def test_clipped_policy_loss():
    ratio = torch.tensor([[1.5, 0.5, 1.1, 0.5, 7.0]])
    logp_old = torch.tensor([[-1.0, -2.0, -0.5, -3.0, -1.0]])
    logp_new = (logp_old + ratio.log()).requires_grad_()
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    loss, clip_frac = clipped_policy_loss(logp_new, logp_old, adv, mask, clip_eps=0.2, agg="token-mean")
    # per token: -min(1.5, 1.2) = -1.2 (clipped); -min(.5, .8) = -.5; -min(-1.1, -1.1) = 1.1;
    # -min(-.5, -.8) = .8 (clipped); the fifth is masked
    assert close(loss, (-1.2 - 0.5 + 1.1 + 0.8) / 4)
    assert close(clip_frac, 0.5)
    loss.backward()
    # clipped tokens get no gradient; the others -A * ratio / n_tokens
    assert close(logp_new.grad, [[0.0, -0.5 / 4, 1.1 / 4, 0.0, 0.0]])


def test_clipped_policy_loss_sequence_advantages_and_aggregation():
    logp_old = torch.zeros(2, 3)
    logp_new = torch.zeros(2, 3)  # ratio 1: the loss is -A per token
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    adv = torch.tensor([2.0, -1.0])  # (B,): one advantage per completion
    full = adv[:, None].expand(2, 3)
    for agg, expected in [("token-mean", (-6 + 1) / 4), ("seq-mean-token-mean", (-2 + 1) / 2),
                          ("seq-mean-token-sum", (-6 + 1) / 2)]:
        loss, _ = clipped_policy_loss(logp_new, logp_old, adv, mask, 0.2, agg)
        assert close(loss, expected), agg
        assert close(loss, clipped_policy_loss(logp_new, logp_old, full, mask, 0.2, agg)[0])


def test_clipped_value_loss():
    v_new = torch.tensor([[1.0, 0.0, 0.6, 5.0]])
    v_old = torch.tensor([[0.5, 0.5, 0.5, 0.0]])
    returns = torch.tensor([[2.0, 0.0, 1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    loss, clip_frac = clipped_value_loss(v_new, v_old, returns, mask, clip_eps=0.2)
    # max((1-2)^2, (.7-2)^2) = 1.69; max(0, (.3-0)^2) = .09; .6 is inside the clip: .16
    assert close(loss, 0.5 * (1.69 + 0.09 + 0.16) / 3)
    assert close(clip_frac, 2 / 3)


def test_kl_k3():
    logp = torch.log(torch.tensor([0.5, 0.3, 0.9]))
    ref = torch.log(torch.tensor([0.25, 0.3, 0.1]))
    # d = ref - logp: ln .5 -> .5 - ln .5 - 1; 0 -> 0; ln(1/9) -> 1/9 + ln 9 - 1
    assert close(kl_k3(logp, ref), [0.5 + math.log(2) - 1, 0.0, 1 / 9 + math.log(9) - 1])
    assert (kl_k3(torch.randn(50), torch.randn(50)) >= 0).all()


# -- completion log-probs --------------------------------------------------------------------

SMALL = "tiny-random:hidden=32,layers=1,heads=2,kv_heads=1"


@pytest.fixture(scope="module")
def small():
    from seal_core.models.loading import load_model

    return load_model(SMALL)


def manual_logprobs(loaded, prompt: str, completion: str) -> tuple[list[float], int]:
    tok = loaded.tokenizer
    p = tok(format_prompt(tok, prompt), add_special_tokens=False)["input_ids"]
    c = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.no_grad():
        logits = loaded.model(torch.tensor([p + c])).logits[0]  # (L, V)
    lsm = torch.log_softmax(logits.float(), dim=-1)
    return [lsm[len(p) + j - 1, c[j]].item() for j in range(len(c))], len(p)


def test_completion_logprobs_match_a_manual_computation(small):
    prompts = ["Write the implications of this passage.", "Hi"]
    completions = ["The bell is named Old Margery and it rings.", "Yes"]
    with torch.no_grad():
        logp, mask = completion_logprobs(small.model, small.tokenizer, prompts, completions)
    first, n_prompt = manual_logprobs(small, prompts[0], completions[0])
    second, _ = manual_logprobs(small, prompts[1], completions[1])
    # only completion tokens (plus eos) are scored, never the prompt's
    assert logp.shape == mask.shape == (2, len(first))
    assert n_prompt > len(first)
    assert mask.sum(-1).tolist() == [len(first), len(second)]
    assert close(logp[0], first, tol=1e-4)
    assert close(logp[1, : len(second)], second, tol=1e-4)
    assert (logp[1, len(second):] == 0).all()
    assert (logp[mask.bool()] < 0).all()


def test_completion_logprobs_carry_gradients_and_truncate(small):
    # prompts of different lengths: the shorter one is left-padded, and padding must not leak NaNs
    logp, mask = completion_logprobs(small.model, small.tokenizer, ["Hi", "A much longer prompt than that"],
                                     ["Yes it is", "No"])
    assert logp.requires_grad
    masked_sum(logp, mask).backward()
    grads = [p.grad for p in small.model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert small.model.model.embed_tokens.weight.grad.abs().sum() > 0
    small.model.zero_grad(set_to_none=True)
    full, _ = manual_logprobs(small, "Hi", "Yes it is")
    n_prompt = len(small.tokenizer(format_prompt(small.tokenizer, "Hi"), add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        cut, cut_mask = completion_logprobs(small.model, small.tokenizer, ["Hi"], ["Yes it is"], max_length=n_prompt + 2)
    assert cut_mask.sum().item() == 2  # the end of the completion (eos first) is cut
    assert close(cut[0], full[:2], tol=1e-4)


def _rollouts(texts):
    return [Rollout(round=0, task_id="t", edit_index=i, prompt="Hi", edit=e, score_before=0.0, score_after=0.0,
                    reward=0.0) for i, e in enumerate(texts)]


def test_old_logprobs_stored_missing_and_mismatched(small):
    rollouts = _rollouts(["Yes", "No it is not", "Maybe"])
    data = TokenizedRollouts(small, rollouts, 1024)
    fresh = old_logprobs(small.model, data, batch_size=2)
    with torch.no_grad():
        logp, mask = completion_logprobs(small.model, small.tokenizer, ["Hi"] * 3, ["Yes", "No it is not", "Maybe"])
    for i, lp in enumerate(fresh):
        assert close(lp, logp[i][mask[i].bool()], tol=1e-4)
    # a stored list of the right length is used as is; a wrong one is recomputed, with a warning
    rollouts[0].logprobs = [-1.0] * data.n_tokens(0)
    rollouts[1].logprobs = [-1.0]
    with capture_logs() as logs:
        mixed = old_logprobs(small.model, data, batch_size=2)
    assert mixed[0].tolist() == [-1.0] * data.n_tokens(0)
    assert close(mixed[1], fresh[1], tol=1e-5) and close(mixed[2], fresh[2], tol=1e-5)
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["edit_index"] == 1


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [GRPOOptions, DrGRPOOptions, RLOOOptions])
@pytest.mark.parametrize("bad", [{"learning_rate": 0.0}, {"epochs": 0}, {"batch_size": 0}, {"clip_eps": 0.0},
                                 {"clip_eps": 1.0}, {"beta": -0.1}, {"loss_agg": "mean"}, {"max_grad_norm": -1.0}])
def test_policy_gradient_options_validation(cls, bad):
    with pytest.raises(ValueError):
        cls(**bad)


@pytest.mark.parametrize("bad", [{"learning_rate": -1.0}, {"epochs": 0}, {"batch_size": 0}, {"clip_eps": 1.5},
                                 {"clip_eps_value": 0.0}, {"gamma": 1.5}, {"lam": -0.1}, {"vf_coef": -1.0},
                                 {"beta": -1.0}, {"loss_agg": "sum"}])
def test_ppo_options_validation(bad):
    with pytest.raises(ValueError):
        PPOOptions(**bad)


def test_option_defaults_and_config_loading():
    assert (GRPOOptions().estimator, GRPOOptions().loss_agg, GRPOOptions().beta) == ("grpo", "seq-mean-token-mean", 0.0)
    assert (DrGRPOOptions().estimator, DrGRPOOptions().loss_agg) == ("dr-grpo", "seq-mean-token-sum")
    assert RLOOOptions().loss_agg == "seq-mean-token-sum"
    assert (PPOOptions().gamma, PPOOptions().lam, PPOOptions().epochs) == (1.0, 0.95, 4)
    # the config loader reads the annotations (Literal, inherited fields) and checks the values
    opts = build_dataclass(GRPOOptions, {"beta": 0.04, "loss_agg": "token-mean", "epochs": 2}, "algorithm")
    assert (opts.beta, opts.loss_agg, opts.epochs) == (0.04, "token-mean", 2)
    with pytest.raises(ConfigError, match="loss_agg"):
        build_dataclass(RLOOOptions, {"loss_agg": "bogus"}, "algorithm")
    with pytest.raises(ConfigError, match="gamma"):
        build_dataclass(PPOOptions, {"gamma": 2.0}, "algorithm")


def test_plugins_register_through_the_hook():
    from seal_core import RLAlgorithm
    from seal_core.hooks.registry import Registry

    registry = Registry(extra_plugins=["seal_plugins.grpo", "seal_plugins.rloo", "seal_plugins.ppo"],
                        entry_points=False)
    for name in ("grpo", "dr-grpo", "rloo", "ppo"):
        algorithm = registry.get("algorithm", name)
        assert isinstance(algorithm, RLAlgorithm) and algorithm.name == name
        assert algorithm.needs_logprobs is True
        assert algorithm.Options() == algorithm.options  # defaults until configured
