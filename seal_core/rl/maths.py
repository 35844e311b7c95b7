"""The maths every RL algorithm shares: masked reductions, advantages from a group's rewards,
and the clipped policy, clipped value and KL losses.

- :func:`grpo_advantages`, :func:`dr_grpo_advantages`, :func:`rloo_advantages`: one advantage per
  rollout from the rewards of its group (the ``k`` self-edits of one task in one round), registered
  as advantage-estimator components by the ``grpo`` and ``rloo`` plugins
  (:class:`EstimatorFunction`); :func:`gae` for algorithms with a value function;
- :func:`clipped_policy_loss`, :func:`clipped_value_loss`, :func:`kl_k3`, :func:`masked_mean`.

Conventions: ``B`` rollouts in a batch, ``T`` completion tokens (right-padded). Masks are float
tensors of 0 and 1. ``tests/unit/test_rl_math.py`` checks every formula here against
hand-computed values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch

from seal_core.api.components import AdvantageEstimator
from seal_core.api.types import Rollout
from seal_core.models.logprobs import TokenizedRollouts

Tensor = torch.Tensor
LossAgg = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"]
LOSS_AGGS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")


# ---------------------------------------------------------------------------------------------
# masked reductions
# ---------------------------------------------------------------------------------------------


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``x`` where ``mask`` is 1 (over ``dim``, or everything)."""
    return (x * mask).sum() if dim is None else (x * mask).sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` where ``mask`` is 1; 0 where the mask is empty (never NaN)."""
    count = mask.sum() if dim is None else mask.sum(dim)
    return masked_sum(x, mask, dim) / count.clamp_min(1e-8) * (count > 0)


def masked_whiten(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """``x`` shifted and scaled to mean 0, variance 1 over the masked entries (population variance)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def aggregate(loss: Tensor, mask: Tensor, agg: str) -> Tensor:
    """Reduce a per-token loss (B, T) to a scalar.

    - ``token-mean``: every completion token of the batch weighs the same (DAPO, verl's default);
    - ``seq-mean-token-mean``: mean over each completion's tokens, then over completions (the
      GRPO paper's 1/|o|, which favours long wrong answers over short ones);
    - ``seq-mean-token-sum``: sum over each completion's tokens, then mean over completions (the
      whole completion is one action: RLOO, and Dr. GRPO without the 1/|o|).
    """
    if agg == "token-mean":
        return masked_mean(loss, mask)
    if agg == "seq-mean-token-mean":
        return masked_mean(loss, mask, dim=-1).mean()
    if agg == "seq-mean-token-sum":
        return masked_sum(loss, mask, dim=-1).mean()
    raise ValueError(f"loss_agg must be one of {', '.join(LOSS_AGGS)}, got {agg!r}")


def item_weight(data: TokenizedRollouts, agg: str) -> Callable[[int], float]:
    """How much rollout ``i`` weighs in a minibatch's loss reduced with ``agg``: its completion
    tokens for ``token-mean``, 1 for the per-sequence means (for splitting a minibatch across
    ranks, :meth:`seal_core.rl.zero.UpdateLoop.share`)."""
    if agg == "token-mean":
        return lambda i: float(data.n_tokens(i))
    return lambda i: 1.0


# ---------------------------------------------------------------------------------------------
# advantages
# ---------------------------------------------------------------------------------------------

def group_ids(rollouts: Sequence[Rollout]) -> Tensor:
    """(N,) long: rollouts of the same round and task share an id, in order of first appearance."""
    seen: dict[tuple[int, str], int] = {}
    return torch.tensor([seen.setdefault((r.round, r.task_id), len(seen)) for r in rollouts], dtype=torch.long)


def _group_stats(rewards: Tensor, groups: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per rollout: its group's size, reward sum and unbiased reward std (0 for groups of one)."""
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    size = torch.zeros(n_groups).index_add_(0, groups, torch.ones_like(rewards))[groups]  # (N,)
    total = torch.zeros(n_groups).index_add_(0, groups, rewards)[groups]  # (N,)
    sq = torch.zeros(n_groups).index_add_(0, groups, (rewards - total / size) ** 2)[groups]  # (N,)
    std = torch.sqrt(sq / (size - 1).clamp_min(1))
    return size, total, std


def grpo_advantages(rewards: Tensor, groups: Tensor, *, eps: float = 1e-6) -> Tensor:
    """(r - group mean) / (group std + eps); a group of one gets 0 (nothing to compare with)."""
    rewards = rewards.float()
    size, total, std = _group_stats(rewards, groups)
    return (rewards - total / size) / (std + eps) * (size > 1)


def dr_grpo_advantages(rewards: Tensor, groups: Tensor, *, eps: float = 1e-6) -> Tensor:
    """r - group mean (Dr. GRPO: no division by the std); a group of one gets 0."""
    rewards = rewards.float()
    size, total, _ = _group_stats(rewards, groups)
    return (rewards - total / size) * (size > 1)


def rloo_advantages(rewards: Tensor, groups: Tensor, *, eps: float = 1e-6) -> Tensor:
    """r_i - mean of the other rewards of its group; a group of one gets 0."""
    rewards = rewards.float()
    size, total, _ = _group_stats(rewards, groups)
    return (rewards - (total - rewards) / (size - 1).clamp_min(1)) * (size > 1)


class EstimatorFunction(AdvantageEstimator):
    """An :class:`~seal_core.api.components.AdvantageEstimator` from a function
    ``fn(rewards, groups, *, eps) -> advantages``: how ``grpo`` and ``rloo`` register theirs."""

    def __init__(self, name: str, fn: Callable[..., Tensor]):
        self.name, self.fn = name, fn

    def advantages(self, rewards: Tensor, groups: Tensor, *, eps: float = 1e-6) -> Tensor:
        return self.fn(rewards, groups, eps=eps)


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over each completion; returns (advantages, returns), (B, T).

    ``rewards`` and ``values`` are per token (B, T); ``values[:, t]`` is V of the state before
    token t, and the value after the last real token is 0 (the episode ends there).
    """
    rewards, values = rewards * mask, values * mask  # (B, T)
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])  # (B,)
    for t in reversed(range(values.shape[1])):
        next_value = values[:, t + 1] if t + 1 < values.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


# ---------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------


def clipped_policy_loss(logp_new: Tensor, logp_old: Tensor, advantages: Tensor, mask: Tensor,
                        clip_eps: float = 0.2, agg: str = "token-mean") -> tuple[Tensor, Tensor]:
    """PPO's clipped surrogate, -min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) per token,
    reduced with :func:`aggregate`. ``advantages`` is (B,) (one per completion) or (B, T).
    Returns (loss, fraction of tokens where the clipped term was taken)."""
    if advantages.dim() == 1:
        advantages = advantages[:, None].expand_as(logp_new)  # (B, T)
    ratio = torch.exp(logp_new - logp_old)  # (B, T)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages
    loss = -torch.minimum(unclipped, clipped)  # (B, T)
    clip_frac = masked_mean((clipped < unclipped).float(), mask)
    return aggregate(loss, mask, agg), clip_frac.detach()


def clipped_value_loss(values_new: Tensor, values_old: Tensor, returns: Tensor, mask: Tensor,
                       clip_eps: float = 0.2) -> tuple[Tensor, Tensor]:
    """0.5 * token-mean of max((v - R)^2, (v_old + clip(v - v_old, -eps, eps) - R)^2).
    Returns (loss, fraction of tokens where the clipped term was taken)."""
    clipped = values_old + (values_new - values_old).clamp(-clip_eps, clip_eps)  # (B, T)
    a, b = (values_new - returns) ** 2, (clipped - returns) ** 2
    return 0.5 * masked_mean(torch.maximum(a, b), mask), masked_mean((b > a).float(), mask).detach()


def kl_k3(logp: Tensor, logp_ref: Tensor) -> Tensor:
    """Per-token KL(policy || reference) estimate "k3": exp(ref - logp) - (ref - logp) - 1 >= 0."""
    d = logp_ref - logp
    return torch.exp(d) - d - 1
