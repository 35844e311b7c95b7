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

#: a possible sentence end: ., ! or ? (closing quotes or brackets kept with it), white space,
#: then what can open a sentence (a capital, a digit, an opening quote or bracket)
_SENTENCE_END = re.compile(r"(?<=[.!?])([\"')\]]?)\s+(?=[A-Z0-9\"'(\[])")
#: a full stop that ends an abbreviation or an initial ("Dr. Ames", "J. Smith"), not a sentence
_ABBREVIATION = re.compile(r"(?:\b(?:Dr|Mr|Mrs|Ms|Prof|St|Mt|Jr|Sr|Gen|Col|Capt|Lt|Sgt|Rev|Hon|No|vs|"
                           r"approx|e\.g|i\.e)|\b[A-Z])\.$")


def sentence_lines(text: str) -> str:
    """``text`` with each sentence on a line of its own (white space inside a sentence kept; a
    full stop after a title or an initial, as in "Dr. Ames", does not end one)."""
    pieces = _SENTENCE_END.split(text.strip())
    sentences: list[str] = []
    for i in range(0, len(pieces), 2):  # the split keeps each end's closing quote or bracket
        piece = pieces[i] + (pieces[i + 1] if i + 1 < len(pieces) else "")
        if sentences and _ABBREVIATION.search(sentences[-1]):
            sentences[-1] += " " + piece
        else:
            sentences.append(piece)
    return "\n".join(s.strip() for s in sentences if s.strip())


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
