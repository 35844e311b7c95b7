"""Evaluator ``exact-match``: answer each question without the context; count exact answers.

An answer counts when its first line, normalised (lower case, no punctuation, no articles),
equals the normalised gold answer. All questions of a task go through one batched greedy
``generate`` call.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from seal_core import Evaluator, Score, TaskInstance
from seal_core.models.generation import generate_texts
from seal_core.models.prompting import format_prompt

PROMPT = "Answer with one or two words.\nQuestion: {question}"
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """Lower case, punctuation and the articles a, an, the removed, spaces collapsed."""
    return " ".join(w for w in text.lower().translate(_PUNCT).split() if w not in ("a", "an", "the"))


@dataclass
class ExactMatchOptions:
    """The keys this evaluator adds to ``evaluator.*``."""

    max_new_tokens: int = 8  # answer length; only the answer's first line is graded

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


class ExactMatchEvaluator(Evaluator):
    name = "exact-match"
    Options = ExactMatchOptions

    def evaluate(self, model: Any, tokenizer: Any, task: TaskInstance) -> Score:
        questions = task.evaluation["questions"]
        inputs = [format_prompt(tokenizer, PROMPT.format(question=q["question"])) for q in questions]
        outputs = generate_texts(model, tokenizer, inputs, max_new_tokens=self.options.max_new_tokens)
        answers = [(out.strip().splitlines() or [""])[0].strip() for out in outputs]
        hits = [normalize(a) == normalize(q["answer"]) for a, q in zip(answers, questions)]
        return Score(sum(hits) / len(hits), {"answers": answers})

    def score(self, model: Any, tokenizer: Any, task: TaskInstance) -> float:
        return self.evaluate(model, tokenizer, task).value
