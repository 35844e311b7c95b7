"""The update loop of the critic-free algorithms (GRPO, RLOO) and what every policy-gradient
algorithm shares: its options, the trainable copy of the policy (all weights or a LoRA adapter),
the reference policy's log-probs.

An algorithm plugin (``grpo``, ``rloo``, ``ppo`` or yours) builds on these and on
:mod:`seal_core.rl.maths`, so the algorithms differ only in how they turn scored rollouts into a
gradient, never in how they score tokens (:mod:`seal_core.models.logprobs`: per-token log-probs of
each self-edit given its edit prompt; the engine stores them with the rollouts as the "old"
policy's, algorithms compute the new ones). :class:`OutcomePolicyGradient`'s steps go through
:class:`seal_core.rl.zero.UpdateLoop`, in one process or under DeepSpeed.

Conventions: ``B`` rollouts in a batch, ``T`` completion tokens (right-padded), ``L`` prompt +
completion tokens, ``V`` vocabulary, ``H`` hidden size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
import torch

from seal_core.api.components import RLAlgorithm, UpdateContext
from seal_core.api.types import LoadedModel, Rollout
from seal_core.models.loading import load_weights, plain_copy
from seal_core.models.logprobs import TokenizedRollouts, forward_completions, old_logprobs, pad_rows, rollout_logprobs
from seal_core.rl.maths import (LOSS_AGGS, LossAgg, Tensor, aggregate, clipped_policy_loss, group_ids, item_weight, kl_k3,
                                masked_mean)
from seal_core.rl.zero import UpdateLoop

log = structlog.get_logger(__name__)


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
    loss_agg: LossAgg = "seq-mean-token-mean"  # see seal_core.rl.maths.aggregate
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
    ~1e-4); :func:`seal_core.models.loading.load_weights` casts the result back to the policy's dtype.
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
    :func:`seal_core.models.loading.load_weights`: with ``opts.lora`` the adapter merged into them."""
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
        registered :class:`~seal_core.api.components.AdvantageEstimator` by name."""
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
