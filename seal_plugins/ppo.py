"""Algorithm ``ppo``: proximal policy optimisation with a value head on the generator.

Our own PPO (TRL removed its ``PPOTrainer``), over the engine's scored rollouts:

1. a value head, ``torch.nn.Linear(hidden_size, 1)`` on the generator's last hidden state, reads
   V(prompt + self-edit so far) before each self-edit token; it lives on this algorithm object,
   one per policy model, and keeps learning across rounds (and across a resume);
2. each self-edit is an episode whose only reward, the rollout's reward, comes after its last
   token (eos); with ``beta > 0`` every token also pays ``beta * (logp_old - logp_ref)``, the
   per-token KL penalty of RLHF-style PPO, against the initial policy;
3. GAE(gamma, lam) over the self-edit's tokens gives advantages and returns; advantages are
   whitened over all tokens of the round;
4. ``epochs`` passes over the rollouts in shuffled batches minimise the clipped policy loss
   plus ``vf_coef`` times the clipped value loss (backbone and value head together, AdamW;
   with ``lora``, a LoRA adapter on the backbone and the value head);
5. the trained weights (with ``lora``: the adapter merged into them) are written back into the
   policy in place.

The shared math (log-probs, GAE, both losses, whitening) is :mod:`seal_core.rl`'s.

The value head is part of the run's resume point (:meth:`PPO.state_dict`, saved beside the
policy's weights after each update), so a resumed run continues with the head it had; the saved
policy directories (``checkpoints/policy``) hold the policy alone.

Departures, said plainly: the value head starts at zero (V = 0 everywhere: the first round's
advantages are discounted rewards); old values come from the value head before the round's first
step, as in PPO, but the rollouts were sampled once per round by the engine rather than by the PPO
loop; the old log-probs are the sampler's own and the new ones the policy's at temperature 1, so
the first ratio is an importance weight, not 1 (see ``grpo``); no entropy bonus.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import structlog
import torch

from seal_core import LoadedModel, RLAlgorithm, Rollout, UpdateContext, hookimpl
from seal_core.models.loading import load_weights
from seal_core.models.logprobs import TokenizedRollouts, forward_completions, old_logprobs, pad_rows
from seal_core.rl import (
    LossAgg,
    PolicyGradientOptions,
    UpdateLoop,
    clipped_policy_loss,
    clipped_value_loss,
    gae,
    item_weight,
    masked_mean,
    masked_whiten,
    reference_logprobs,
    trainable_policy,
    trained_weights,
)

log = structlog.get_logger(__name__)


@dataclass
class PPOOptions(PolicyGradientOptions):
    """The policy-gradient options (same meaning; ``beta`` here is the per-token KL penalty in
    the reward), PPO's defaults, and the value function's knobs."""

    epochs: int = 4  # passes over each round's rollouts
    loss_agg: LossAgg = "token-mean"
    clip_eps_value: float = 0.2  # new values kept within +-clip_eps_value of the old ones
    vf_coef: float = 0.1  # weight of the value loss
    gamma: float = 1.0  # discount over the self-edit's tokens (1: the reward counts in full)
    lam: float = 0.95  # GAE lambda: 1 = Monte Carlo returns, 0 = one-step TD
    whiten_advantages: bool = True  # mean 0, variance 1 over the round's tokens

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.clip_eps_value <= 0:
            raise ValueError(f"clip_eps_value must be > 0, got {self.clip_eps_value}")
        if not 0 <= self.gamma <= 1 or not 0 <= self.lam <= 1:
            raise ValueError(f"gamma and lam must be in [0, 1], got {self.gamma}, {self.lam}")
        if self.vf_coef < 0:
            raise ValueError(f"vf_coef must be >= 0, got {self.vf_coef}")


class PPO(RLAlgorithm):
    name = "ppo"
    Options = PPOOptions
    needs_logprobs = True

    @property
    def supports_deepspeed(self) -> bool:  # type: ignore[override]
        """The DeepSpeed update trains all weights; a LoRA update (``lora``) runs in one process."""
        return not self.options.lora

    def value_head(self, policy: LoadedModel, state: dict[str, torch.Tensor] | None = None) -> torch.nn.Linear:
        """This policy's value head, made (at zero) on first use and kept across rounds; ``state``
        replaces it by a new one with those weights.

        Keyed weakly by the policy's model object, which stays the same across rounds (updates
        are in place); a freed model takes its head with it, so a new one never inherits it.
        """
        heads = self.__dict__.setdefault("_value_heads", weakref.WeakKeyDictionary())
        head = heads.get(policy.model)
        if head is None or state is not None:
            hidden = policy.model.config.get_text_config().hidden_size
            head = torch.nn.Linear(hidden, 1)
            torch.nn.init.zeros_(head.weight)
            torch.nn.init.zeros_(head.bias)
            if state is not None:
                head.load_state_dict(state)
            heads[policy.model] = head
        return head.to(policy.device)

    def state_dict(self, policy: LoadedModel) -> dict[str, torch.Tensor]:
        """``policy``'s value head (``value_head.weight``, ``value_head.bias``), saved with the
        run's resume point; empty before the head's first use."""
        head = self.__dict__.get("_value_heads", {}).get(policy.model)
        if head is None:
            return {}
        return {f"value_head.{k}": v.detach().cpu().clone() for k, v in head.state_dict().items()}

    def load_state_dict(self, policy: LoadedModel, state: dict[str, torch.Tensor]) -> None:
        """Give ``policy`` the value head :meth:`state_dict` saved (a resumed run keeps its head)."""
        head = {k.removeprefix("value_head."): v for k, v in state.items() if k.startswith("value_head.")}
        if head:
            self.value_head(policy, state=head)

    @torch.no_grad()
    def _score(self, model: Any, head: torch.nn.Linear, data: TokenizedRollouts, batch_size: int) -> tuple[list, list]:
        """Per-rollout log-probs and values (1-D tensors) before any update."""
        logps, values = [], []
        for start in range(0, len(data), batch_size):
            idx = list(range(start, min(start + batch_size, len(data))))
            logp, states = forward_completions(model, data.batch(idx), hidden=True)
            v = head(states.float()).squeeze(-1)  # (b, T)
            logps += [logp[b, : data.n_tokens(i)] for b, i in enumerate(idx)]
            values += [v[b, : data.n_tokens(i)] for b, i in enumerate(idx)]
        return logps, values

    def update(self, policy: LoadedModel, rollouts: list[Rollout], context: UpdateContext) -> dict[str, Any]:
        opts = self.options
        stats: dict[str, Any] = {"n_rollouts": len(rollouts), "n_kept": len(rollouts)}
        if not rollouts:
            log.info("ppo: update skipped: no rollouts", round=context.round)
            return {**stats, "skipped": "no rollouts"}
        work = trainable_policy(policy, opts)
        head = self.value_head(policy)
        data = TokenizedRollouts(work, rollouts, opts.max_length, schema=context.edit_schema)
        logps, values = self._score(work.model, head, data, opts.batch_size)
        old = old_logprobs(work.model, data, opts.batch_size, computed=logps)
        T = max(data.n_tokens(i) for i in range(len(data)))
        mask = pad_rows([torch.ones(data.n_tokens(i), device=data.device) for i in range(len(data))], T)  # (N, T)
        rewards = torch.zeros_like(mask)  # (N, T): the rollout's reward after its last token
        for i, r in enumerate(rollouts):
            rewards[i, data.n_tokens(i) - 1] = r.reward
        logp_old = pad_rows(old, T)  # (N, T)
        if opts.beta > 0:
            ref = pad_rows(reference_logprobs(context, data, opts.batch_size, self.name), T)  # (N, T)
            kl = (logp_old - ref) * mask  # (N, T) k1 estimate per token
            rewards = rewards - opts.beta * kl
            stats["kl"] = float(masked_mean(kl, mask))
        values_old = pad_rows(values, T)  # (N, T)
        adv, returns = gae(rewards, values_old, mask, opts.gamma, opts.lam)  # (N, T)
        stats |= {"adv_mean": float(masked_mean(adv, mask)), "value_mean": float(masked_mean(values_old, mask)),
                  "return_mean": float(masked_mean(returns, mask))}
        if not bool((adv.abs() * mask > 1e-12).any()):
            reason = "all advantages are zero (every reward 0 and the value head predicts 0)"
            log.info(f"ppo: update skipped: {reason}", round=context.round, rollouts=len(rollouts))
            return {**stats, "skipped": reason}
        if opts.whiten_advantages:
            adv = masked_whiten(adv, mask)

        # one module, so that DeepSpeed (when used) shards and steps the backbone and the head together
        both = torch.nn.ModuleDict({"policy": work.model, "value_head": head})
        loop = UpdateLoop(both, learning_rate=opts.learning_rate, weight_decay=opts.weight_decay,
                          max_grad_norm=opts.max_grad_norm, deepspeed=context.deepspeed)
        pg_weight, vf_weight = item_weight(data, opts.loss_agg), item_weight(data, "token-mean")

        def step(idx: list[int], mine: list[int]) -> list[tuple[torch.Tensor, float, dict[str, float]]]:
            batch = data.batch(mine)
            t = batch.mask.shape[1]  # this batch's longest self-edit, <= T
            logp, states = forward_completions(loop.module["policy"], batch, hidden=True)  # (b, t), (b, t, H)
            v = loop.module["value_head"](states.float()).squeeze(-1)  # (b, t)
            pg, clip_frac = clipped_policy_loss(logp, logp_old[mine, :t], adv[mine, :t], batch.mask,
                                                opts.clip_eps, opts.loss_agg)
            vf, vf_clip_frac = clipped_value_loss(v, values_old[mine, :t], returns[mine, :t], batch.mask,
                                                  opts.clip_eps_value)
            pg_stats = {"pg_loss": pg.item(), "clip_frac": float(clip_frac),
                        "approx_kl_old": float(masked_mean(logp_old[mine, :t] - logp.detach(), batch.mask))}
            # each loss is scaled by its own share of the minibatch (1.0 in one process)
            return [(pg, loop.share(idx, pg_weight), pg_stats),
                    (opts.vf_coef * vf, loop.share(idx, vf_weight), {"vf_loss": vf.item(), "vf_clip_frac": float(vf_clip_frac)})]

        stats |= loop.run(len(data), epochs=opts.epochs, batch_size=opts.batch_size, seed=context.seed, step=step)
        stats["loss"] = stats["pg_loss"] + opts.vf_coef * stats["vf_loss"]
        load_weights(policy, trained_weights(loop, work, opts))
        if loop.engine is not None:  # DeepSpeed owned (under ZeRO-3: sharded) the head: keep a plain copy
            self.value_head(policy, state=loop.state_dict(head))
        loop.close()
        log.info("ppo: policy updated", round=context.round, rollouts=len(rollouts), steps=stats["steps"],
                 loss=round(stats["loss"], 4), vf_loss=round(stats["vf_loss"], 4), clip_frac=round(stats["clip_frac"], 3))
        return stats


@hookimpl
def seal_register_algorithms(register):
    register(PPO())
