"""RL for the outer loop: the maths every algorithm shares, the critic-free update loop, the update under DeepSpeed ZeRO.

The names below are :mod:`seal_core.rl.maths`' and :mod:`seal_core.rl.policy_gradient`'s (and
:class:`seal_core.rl.zero.UpdateLoop`),
importable from here as before the sub-packages existed (``from seal_core.rl import
OutcomePolicyGradient, grpo_advantages``).
"""

from seal_core.rl.maths import (LOSS_AGGS, EstimatorFunction, LossAgg, Tensor, aggregate, clipped_policy_loss, clipped_value_loss,
                                dr_grpo_advantages, gae, group_ids, grpo_advantages, item_weight, kl_k3, masked_mean,
                                masked_sum, masked_whiten, rloo_advantages)
from seal_core.rl.policy_gradient import (OutcomePolicyGradient, PolicyGradientOptions, check_update_options,
                                          reference_logprobs, trainable_copy, trainable_policy, trained_weights)
from seal_core.rl.zero import UpdateLoop

__all__ = [
    "LOSS_AGGS", "EstimatorFunction", "LossAgg", "Tensor", "aggregate", "clipped_policy_loss", "clipped_value_loss",
    "dr_grpo_advantages", "gae", "group_ids", "grpo_advantages", "item_weight", "kl_k3", "masked_mean", "masked_sum",
    "masked_whiten", "rloo_advantages", "OutcomePolicyGradient", "PolicyGradientOptions", "check_update_options",
    "reference_logprobs", "trainable_copy", "trainable_policy", "trained_weights", "UpdateLoop",
]
