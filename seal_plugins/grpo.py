"""Algorithms ``grpo`` and ``dr-grpo``: group-relative policy optimisation over the k self-edits of a task.

The engine samples ``k`` self-edits per task and scores each; a task's rollouts in a round form
a group. Each self-edit's advantage is its reward relative to its group (``grpo``: standardised
by the group's std; ``dr-grpo``: only centred), the same advantage for every token of it. The
policy (all weights of a float32 copy, or with ``lora: true`` a LoRA adapter merged into the
policy afterwards; AdamW) minimises PPO's clipped surrogate on the per-token
ratio new/old, plus ``beta`` times the k3 estimate of KL(policy || initial policy), for
``epochs`` passes over the rollouts; the result is written back in place. The math is in
:mod:`seal_core.rl`, shared with ``rloo`` and ``ppo``.

Departures from DeepSeekMath's GRPO (Shao et al. 2024), said plainly:

- one "iteration" per round: rollouts come from the engine once per round, scored by the
  inner loop, so there is no reference-model refresh and no fresh sampling between steps;
- ``beta`` defaults to 0 (no KL, as TRL and Dr. GRPO do): then no reference model is loaded;
- a task with one rollout has advantage 0 (verl gives it its raw reward);
- the old log-probs are the sampler's own where the generator reports them (``hf-generate``):
  of the token ids it drew, under the distribution it drew from (temperature, top-p and a
  schema's mask applied). The new ones are the policy's at temperature 1 without top-p, so the
  first step's ratio is pi(token) / mu(token), an importance weight of the sampling distribution
  mu, not 1: near 1 at temperature 1 and top-p 0.95 (one over the nucleus's mass), further from it
  at lower temperatures, where the clipping bites from the first step. Self-edits of generators
  that report no tokens (``vllm``, ``from-file``) are re-tokenised from their text plus eos and
  their old log-probs computed at temperature 1, so their first ratio is 1.

``dr-grpo`` (Liu et al. 2025, "Understanding R1-Zero-like training") is ``grpo`` with
``estimator=dr-grpo`` (no std) and ``loss_agg=seq-mean-token-sum`` (no 1/|o|). Dr. GRPO divides
the summed loss by a constant generation budget; under AdamW a constant factor changes nothing
but the point where ``max_grad_norm`` clips, so we leave it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seal_core import UpdateContext, hookimpl
from seal_core.rl import (EstimatorFunction, LossAgg, OutcomePolicyGradient, PolicyGradientOptions, Tensor,
                          dr_grpo_advantages, grpo_advantages)

ESTIMATOR = {"component": "advantage_estimator"}  # the config checks the name against the registry


@dataclass
class GRPOOptions(PolicyGradientOptions):
    # a registered advantage estimator: grpo, dr-grpo, rloo, or a plugin's
    estimator: str = field(default="grpo", metadata=ESTIMATOR)
    eps: float = 1e-6  # added to the group std (grpo estimator)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.eps <= 0:
            raise ValueError(f"eps must be > 0, got {self.eps}")


@dataclass
class DrGRPOOptions(GRPOOptions):
    estimator: str = field(default="dr-grpo", metadata=ESTIMATOR)  # r - group mean: no division by the std
    loss_agg: LossAgg = "seq-mean-token-sum"  # no 1/|o| length normalisation


class GRPO(OutcomePolicyGradient):
    name = "grpo"
    Options = GRPOOptions

    def advantages(self, rewards: Tensor, groups: Tensor, context: UpdateContext) -> Tensor:
        estimator = context.component("advantage_estimator", self.options.estimator)
        return estimator.advantages(rewards, groups, eps=self.options.eps)  # (N,)


class DrGRPO(GRPO):
    name = "dr-grpo"
    Options = DrGRPOOptions


@hookimpl
def seal_register_algorithms(register):
    register(GRPO())
    register(DrGRPO())


@hookimpl
def seal_register_advantage_estimators(register):
    register(EstimatorFunction("grpo", grpo_advantages))
    register(EstimatorFunction("dr-grpo", dr_grpo_advantages))
