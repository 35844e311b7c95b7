"""Algorithm ``none``: score the rollouts, update nothing.

For baselines: self-edits without RL (round 0 of any run, repeated), and a fixed teacher
(``setup=teacher-student`` or the ``from-file`` generator) whose synthetic data is scored as is.
"""

from __future__ import annotations

from typing import Any

from seal_core import LoadedModel, RLAlgorithm, Rollout, UpdateContext, hookimpl


class NoUpdate(RLAlgorithm):
    name = "none"

    def update(self, policy: LoadedModel, rollouts: list[Rollout], context: UpdateContext) -> dict[str, Any]:
        return {"n_rollouts": len(rollouts), "n_kept": 0}


@hookimpl
def seal_register_algorithms(register):
    register(NoUpdate())
