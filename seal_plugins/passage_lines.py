"""Edit generator ``passage-lines``: the passage itself, one sentence per line, as the self-edit.

The "passage as lines" control of ``seal-run baselines``: with the knowledge domain (whose
training set is a self-edit's lines plus the passage) the student trains on the passage's
sentences as separate texts plus the passage, shaped like a self-edit's training set but with
no new words. A self-edit that beats it adds more than a split into short lines does. Nothing is
generated, so it costs no model time; every one of the ``k`` self-edits is the same text.
"""

from __future__ import annotations

import re

from seal_core import EditGenerator, LoadedModel, TaskInstance, hookimpl

#: a sentence ends at ., ! or ? (closing quotes or brackets kept) followed by white space
_SENTENCE_END = re.compile(r"(?<=[.!?][\"')\]])\s+|(?<=[.!?])\s+")


def sentence_lines(text: str) -> str:
    """``text`` with each sentence on a line of its own (white space inside a sentence kept)."""
    return "\n".join(s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip())


class PassageLines(EditGenerator):
    name = "passage-lines"

    def generate(self, model: LoadedModel, prompts: list[str], k: int, *, greedy: bool = False,
                 tasks: list[TaskInstance] | None = None) -> list[list[str]]:
        if tasks is None or len(tasks) != len(prompts):
            raise ValueError("generator passage-lines needs the tasks of the prompts (the engine passes them)")
        return [[sentence_lines(task.context)] * k for task in tasks]


@hookimpl
def seal_register_edit_generators(register):
    register(PassageLines())
