"""Algorithm ``rloo``: REINFORCE with a leave-one-out baseline over the k self-edits of a task.

Each self-edit's advantage is its reward minus the mean reward of the other self-edits of its
task in the round (Kool et al. 2019; Ahmadian et al. 2024): an unbiased baseline that needs
no value model and, unlike GRPO, no division by the std. The whole self-edit is one action, so
the loss sums over its tokens (``loss_agg=seq-mean-token-sum``). The update loop, the clipped
ratio and the optional KL are :class:`seal_core.rl.OutcomePolicyGradient`'s, shared with ``grpo``.

Departure from RLOO as published: the loss is PPO's clipped surrogate on per-token ratios. The
old log-probs are the sampler's (see ``grpo``), so with ``epochs=1`` and ``batch_size`` at least
the number of rollouts every ratio is the importance weight of the sampling distribution: 1, and
exactly REINFORCE-LOO, when sampling at temperature 1 with top_p 1; with smaller batches the later
steps are slightly off-policy and the clipping keeps them near it (what TRL's RLOO trainer does too).
"""

from __future__ import annotations

from dataclasses import dataclass

from seal_core import UpdateContext, hookimpl
from seal_core.rl import EstimatorFunction, LossAgg, OutcomePolicyGradient, PolicyGradientOptions, Tensor, rloo_advantages


@dataclass
class RLOOOptions(PolicyGradientOptions):
    loss_agg: LossAgg = "seq-mean-token-sum"  # the whole self-edit is one action


class RLOO(OutcomePolicyGradient):
    name = "rloo"
    Options = RLOOOptions

    def advantages(self, rewards: Tensor, groups: Tensor, context: UpdateContext) -> Tensor:
        return rloo_advantages(rewards, groups)  # (N,)


@hookimpl
def seal_register_algorithms(register):
    register(RLOO())


@hookimpl
def seal_register_advantage_estimators(register):
    register(EstimatorFunction("rloo", rloo_advantages))
