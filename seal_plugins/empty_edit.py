"""Edit generator ``empty``: self-edits with no text, for the paper's "train on the passage only"
baseline.

With the knowledge domain's ``include_passage`` (the default) an empty self-edit leaves the
passage as the only training text, so ``--set generator.name=empty`` adapts the student on the
passage alone. Nothing is generated, so it costs no model time.
"""

from __future__ import annotations

from seal_core import EditGenerator, LoadedModel, TaskInstance, hookimpl


class EmptyEdit(EditGenerator):
    name = "empty"

    def generate(self, model: LoadedModel, prompts: list[str], k: int, *, greedy: bool = False,
                 tasks: list[TaskInstance] | None = None) -> list[list[str]]:
        return [[""] * k for _ in prompts]


@hookimpl
def seal_register_edit_generators(register):
    register(EmptyEdit())
