"""Domain ``knowledge``: incorporate the facts of a passage into the weights.

The model reads a passage and writes a self-edit (implications, a rewrite, or question-answer
pairs); the inner loop trains on the self-edit's lines plus the passage, as in the paper; the
``qa`` evaluator then asks the passage's questions without showing the passage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from seal_core import Domain, TaskInstance, hookimpl
from seal_core.api.errors import DataError
from seal_domains.knowledge.loader import SPLITS, read_passages, split_of

PROMPTS = {
    "implications": (
        "Read the passage below, then list the implications that follow from it, directly or "
        "indirectly. Keep every name, number and date exact. Write one implication per line.\n\n"
        "Title: {title}\nPassage: {context}"
    ),
    "rewrite": (
        "Rewrite the passage below in several different ways. Keep every name, number and date "
        "exact. Write one sentence per line.\n\nTitle: {title}\nPassage: {context}"
    ),
    "self-qa": (
        "Write questions and answers that test every fact in the passage below. Put each pair on "
        "one line, in the form: Question? Answer.\n\nTitle: {title}\nPassage: {context}"
    ),
}

_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022]+|\d+[.)]|[a-z]\))\s+")


@dataclass
class KnowledgeOptions:
    prompt: Literal["implications", "rewrite", "self-qa"] = "implications"  # self-edit prompt
    include_passage: bool = True  # train on the passage too (the paper does)
    max_edit_lines: int = 32  # lines of a self-edit used for training; the rest is dropped
    eval_fraction: float = 0.25  # share of eval tasks, for sources without splits of their own

    def __post_init__(self) -> None:
        if self.max_edit_lines < 1:
            raise ValueError(f"max_edit_lines must be >= 1, got {self.max_edit_lines}")
        if not 0 < self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")


def edit_lines(edit: str) -> list[str]:
    """The self-edit's non-empty lines, list markers ("1.", "-", "*") removed."""
    return [_LIST_MARKER.sub("", line).strip() for line in edit.splitlines() if _LIST_MARKER.sub("", line).strip()]


class KnowledgeDomain(Domain):
    name = "knowledge"
    evaluator = "qa"
    Options = KnowledgeOptions

    def load_tasks(self, split: str, source: str | None = None) -> list[TaskInstance]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        passages, where = read_passages(source)
        if not passages:
            raise DataError(f"{where}: holds no passages with answerable questions; point domain.source at a non-empty file.")
        chosen = [p for p in passages if split_of(p, self.options.eval_fraction) == split]
        return [
            TaskInstance(
                id=p.id,
                context=p.context,
                evaluation={
                    "title": p.title,
                    "questions": [{"question": q, "answers": list(a)} for q, a in p.questions],
                },
            )
            for p in chosen
        ]

    def edit_prompt(self, task: TaskInstance) -> str:
        return PROMPTS[self.options.prompt].format(title=task.evaluation.get("title", ""), context=task.context)

    def training_texts(self, task: TaskInstance, edit: str) -> list[str]:
        texts = edit_lines(edit)[: self.options.max_edit_lines]
        if self.options.include_passage:
            title = task.evaluation.get("title", "")
            texts.append(f"{title}\n{task.context}" if title else task.context)
        return texts


@hookimpl
def seal_register_domains(register):
    register(KnowledgeDomain())
