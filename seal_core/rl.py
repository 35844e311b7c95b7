"""The pieces every RL algorithm shares: completion log-probs, advantages, losses, one update loop.

An algorithm plugin (``grpo``, ``rloo``, ``ppo`` or yours) builds on these, so the algorithms
differ only in how they turn scored rollouts into a gradient, never in how they score tokens:

- :mod:`seal_core.logprobs`: per-token log-probs of each self-edit given its edit prompt (the
  engine stores them with the rollouts as the "old" policy's; algorithms compute the new ones);
- :func:`grpo_advantages`, :func:`dr_grpo_advantages`, :func:`rloo_advantages`: one advantage per
  rollout from the rewards of its group (the ``k`` self-edits of one task in one round), registered
  as advantage-estimator components by the ``grpo`` and ``rloo`` plugins
  (:class:`EstimatorFunction`); :func:`gae` for algorithms with a value function;
- :func:`clipped_policy_loss`, :func:`clipped_value_loss`, :func:`kl_k3`, :func:`masked_mean`;
- :class:`OutcomePolicyGradient`: the critic-free update loop (GRPO, RLOO) over those pieces;
  its steps go through :class:`seal_core.zero.UpdateLoop`, in one process or under DeepSpeed.

Conventions: ``B`` rollouts in a batch, ``T`` completion tokens (right-padded), ``L`` prompt +
completion tokens, ``V`` vocabulary, ``H`` hidden size. Masks are float tensors of 0 and 1.
The tests in ``tests/test_rl_math.py`` check every formula here against hand-computed values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog
import torch

from seal_core.components import AdvantageEstimator, RLAlgorithm, UpdateContext
from seal_core.logprobs import TokenizedRollouts, forward_completions, old_logprobs, pad_rows, rollout_logprobs
from seal_core.models import load_weights, plain_copy
from seal_core.types import LoadedModel, Rollout
from seal_core.zero import UpdateLoop

log = structlog.get_logger(__name__)

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
    ranks, :meth:`seal_core.zero.UpdateLoop.share`)."""
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
    """An :class:`~seal_core.components.AdvantageEstimator` from a function
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


# ---------------------------------------------------------------------------------------------
# the options and update of critic-free algorithms (GRPO, RLOO)
# ---------------------------------------------------------------------------------------------


@dataclass
class PolicyGradientOptions:
    """Knobs shared by the critic-free algorithms; subclasses add their own and may change defaults."""

    learning_rate: float = 1e-5  # AdamW, all weights of a plain copy of the policy (lora: its adapter's)
    epochs: int = 1  # passes over the round's rollouts (GRPO's mu); > 1 makes the clipping bite
    batch_size: int = 8  # rollouts per optimiser step
    clip_eps: float = 0.2  # ratio clipped to [1 - clip_eps, 1 + clip_eps]
    beta: float = 0.0  # KL(policy || initial policy) coefficient, k3 estimator; 0: no reference
    loss_agg: LossAgg = "seq-mean-token-mean"  # see seal_core.rl.aggregate
    max_grad_norm: float = 1.0  # gradient norm clipping; 0: off
    weight_decay: float = 0.0
    max_length: int = 1024  # prompt + self-edit tokens; longer self-edits lose their end
    # train a LoRA adapter on a copy of the policy (merged into the policy after the update)
    # instead of all weights of a float32 copy; lora_r and lora_alpha as in rest-em
    lora: bool = False
    lora_r: int = 16
    lora_alpha: float = 32.0

    def __post_init__(self) -> None:
        check_update_options(self)


def check_update_options(opts: Any) -> None:
    """Range checks of the knobs every policy-gradient algorithm has (ValueError on a bad one)."""
    if opts.learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {opts.learning_rate}")
    if opts.epochs < 1 or opts.batch_size < 1 or opts.max_length < 2:
        raise ValueError("epochs and batch_size must be >= 1 and max_length >= 2")
    if not 0 < opts.clip_eps < 1:
        raise ValueError(f"clip_eps must be in (0, 1), got {opts.clip_eps}")
    if opts.beta < 0 or opts.max_grad_norm < 0 or opts.weight_decay < 0:
        raise ValueError("beta, max_grad_norm and weight_decay must be >= 0")
    if getattr(opts, "lora_r", 1) < 1 or getattr(opts, "lora_alpha", 1.0) <= 0:
        raise ValueError(f"lora_r must be >= 1 and lora_alpha > 0, got {opts.lora_r}, {opts.lora_alpha}")
    if opts.loss_agg not in LOSS_AGGS:
        raise ValueError(f"loss_agg must be one of {', '.join(LOSS_AGGS)}, got {opts.loss_agg!r}")


def trainable_copy(policy: LoadedModel) -> LoadedModel:
    """A plain copy of ``policy`` to train: adapters stripped, float32, eval mode.

    float32 because AdamW steps of ~1e-5 vanish in bfloat16 weights (their spacing near 0.02 is
    ~1e-4); :func:`seal_core.models.load_weights` casts the result back to the policy's dtype.
    Eval mode because dropout would make old and new log-probs disagree before the first step.
    """
    work = plain_copy(policy)
    if next(work.model.parameters()).dtype in (torch.float16, torch.bfloat16):
        work.model.float()
    work.model.eval()
    return work


def trainable_policy(policy: LoadedModel, opts: Any) -> LoadedModel:
    """What an update trains: :func:`trainable_copy` (all weights, float32), or with ``opts.lora``
    a plain copy in the policy's dtype carrying a LoRA adapter of rank ``opts.lora_r`` and scale
    ``opts.lora_alpha / opts.lora_r`` on every linear layer but the output head (the inner loop's
    peft injection, :func:`seal_core.inner.inject_lora`: float32 adapter, B = 0 so the copy
    computes what the policy does, everything else frozen). Read the result with
    :func:`trained_weights`."""
    if not opts.lora:
        return trainable_copy(policy)
    from seal_core.inner import LoraOptions, enable_adapters, inject_lora

    work = plain_copy(policy)
    work.model.eval()
    if not inject_lora(work.model, LoraOptions(r=opts.lora_r, alpha=opts.lora_alpha)):
        raise ValueError(f"lora: no linear layer of {policy.spec} matches the adapter's target modules")
    enable_adapters(work.model, True)
    return work


def trained_weights(loop: UpdateLoop, work: LoadedModel, opts: Any) -> dict[str, Tensor]:
    """The policy weights :func:`trainable_policy`'s copy ended with, for
    :func:`seal_core.models.load_weights`: with ``opts.lora`` the adapter merged into them."""
    if opts.lora:
        from seal_core.inner import merge_lora

        merge_lora(work.model)
    return loop.state_dict(work.model)


def reference_logprobs(context: UpdateContext, data: TokenizedRollouts, batch_size: int, who: str) -> list[Tensor]:
    """Per-rollout log-probs under the initial policy, loaded with ``context.reference``."""
    if context.reference is None:
        raise ValueError(
            f"{who}: beta > 0 needs the reference policy, but context.reference is None. "
            "Set algorithm.beta=0 or pass UpdateContext(reference=...) (the engine always does)."
        )
    ref = context.reference()
    ref.model.eval()
    lps = rollout_logprobs(ref.model, data, range(len(data)), batch_size)
    del ref
    return lps


class OutcomePolicyGradient(RLAlgorithm):
    """Base of the critic-free algorithms: one advantage per rollout (from :meth:`advantages`),
    the same advantage on every token of its completion, clipped-ratio loss, optional k3 KL.

    Subclasses set ``name``, ``Options`` (a :class:`PolicyGradientOptions`) and
    :meth:`advantages`. Trains a plain copy (or a LoRA adapter on one, ``lora``) with AdamW and
    writes it back in place; with ``context.deepspeed`` the steps run data-parallel under
    DeepSpeed ZeRO (not with ``lora``: then rank 0 updates alone and its weights are broadcast).
    """

    needs_logprobs = True
    Options = PolicyGradientOptions

    @property
    def supports_deepspeed(self) -> bool:  # type: ignore[override]
        """The DeepSpeed update trains all weights; a LoRA update runs in one process."""
        return not self.options.lora

    def advantages(self, rewards: Tensor, groups: Tensor, context: UpdateContext) -> Tensor:
        """(N,) advantages from (N,) rewards and (N,) group ids; ``context.component`` finds a
        registered :class:`~seal_core.components.AdvantageEstimator` by name."""
        raise NotImplementedError

    def update(self, policy: LoadedModel, rollouts: list[Rollout], context: UpdateContext) -> dict[str, Any]:
        opts = self.options
        rewards = torch.tensor([r.reward for r in rollouts], dtype=torch.float32)  # (N,)
        groups = group_ids(rollouts)  # (N,)
        adv = self.advantages(rewards, groups, context) if rollouts else rewards  # (N,)
        stats: dict[str, Any] = {"n_rollouts": len(rollouts), "n_groups": int(groups.max()) + 1 if rollouts else 0,
                                 "n_kept": int((adv != 0).sum())}
        if not rollouts or not bool((adv != 0).any()):
            reason = "all advantages are zero (each task's rewards are equal, or one rollout per task)"
            log.info(f"{self.name}: update skipped: {reason}", round=context.round, rollouts=len(rollouts))
            return {**stats, "skipped": reason}
        stats |= {"adv_mean": float(adv.mean()), "adv_abs_mean": float(adv.abs().mean())}

        work = trainable_policy(policy, opts)
        data = TokenizedRollouts(work, rollouts, opts.max_length, schema=context.edit_schema)
        old = old_logprobs(work.model, data, opts.batch_size)
        ref = reference_logprobs(context, data, opts.batch_size, self.name) if opts.beta > 0 else None
        adv = adv.to(work.device)
        loop = UpdateLoop(work.model, learning_rate=opts.learning_rate, weight_decay=opts.weight_decay,
                          max_grad_norm=opts.max_grad_norm, deepspeed=context.deepspeed)
        weight = item_weight(data, opts.loss_agg)

        def step(idx: list[int], mine: list[int]) -> list[tuple[Tensor, float, dict[str, float]]]:
            batch = data.batch(mine)
            T = batch.mask.shape[1]
            logp, _ = forward_completions(loop.model, batch)  # (b, T)
            logp_old = pad_rows([old[i] for i in mine], T)  # (b, T)
            pg, clip_frac = clipped_policy_loss(logp, logp_old, adv[mine], batch.mask, opts.clip_eps, opts.loss_agg)
            loss = pg
            values = {"pg_loss": pg.item(), "clip_frac": float(clip_frac),
                      "approx_kl_old": float(masked_mean(logp_old - logp.detach(), batch.mask))}
            if ref is not None:
                kl = kl_k3(logp, pad_rows([ref[i] for i in mine], T))  # (b, T)
                loss = loss + opts.beta * aggregate(kl, batch.mask, opts.loss_agg)
                values["kl"] = float(masked_mean(kl.detach(), batch.mask))
            values["loss"] = loss.item()
            return [(loss, loop.share(idx, weight), values)]  # share: 1.0 in one process

        stats |= loop.run(len(data), epochs=opts.epochs, batch_size=opts.batch_size, seed=context.seed, step=step)
        load_weights(policy, trained_weights(loop, work, opts))
        loop.close()
        steps = stats["steps"]
        log.info(f"{self.name}: policy updated", round=context.round, rollouts=len(rollouts), steps=steps,
                 loss=round(stats["loss"], 4), clip_frac=round(stats["clip_frac"], 3))
        return stats
