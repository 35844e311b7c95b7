"""Setup ``single-model`` (the paper's): one policy writes the self-edits and is the student.

The policy is loaded once; the inner updater adapts it (and resets it) and the RL algorithm
updates its weights in place, so after every round the student is the current policy.
"""

from __future__ import annotations

from typing import Callable

from seal_core import LoadedModel, Roles, Setup, hookimpl


class SingleModel(Setup):
    name = "single-model"
    model_keys = ("policy",)

    def build(self, load: Callable[[str], LoadedModel], models: dict[str, str]) -> Roles:
        policy = load(models["policy"])
        return Roles(generator=policy, student=policy)


@hookimpl
def seal_register_setups(register):
    register(SingleModel())
