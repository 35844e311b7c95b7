"""Question answering without the passage, graded against gold answers: the ``qa`` evaluator.

It lives in the core because other evaluators build on it (``llm-judge`` answers the same way and
grades with a judge model); the ``qa`` plugin registers it.

All questions of a task go through one batched greedy ``generate`` call (with ``multi-lora``,
the questions of all the self-edits trained together: each row on its own adapted model). Two grades are
reported: normalised containment (the gold answer's tokens appear contiguously in the
normalised prediction; SQuAD-style normalisation: lower case, no punctuation, no articles) and
SQuAD token F1. ``metric`` chooses which one is the score (containment by default).
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal

from seal_core.api.components import Evaluator
from seal_core.api.types import Score, TaskInstance
from seal_core.models.generation import generate_texts
from seal_core.models.shared_prefix import SharedRows
from seal_core.models.prompting import format_prompt

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> list[str]:
    """SQuAD normalisation, as tokens."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return text.split()


def contains(prediction: str, gold: str) -> float:
    """1.0 when the normalised gold tokens occur contiguously in the normalised prediction."""
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if not ref:
        return 0.0
    n = len(ref)
    return float(any(pred[i:i + n] == ref for i in range(len(pred) - n + 1)))


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token-level F1 between prediction and gold."""
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    common = collections.Counter(pred) & collections.Counter(ref)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


QUESTION_PROMPT = "Answer the question with a short phrase.\nQuestion: {question}"


@dataclass
class QAOptions:
    metric: Literal["containment", "f1"] = "containment"  # which grade is the score
    max_new_tokens: int = 24  # answer length; the first line of the answer is graded

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


class QAEvaluator(Evaluator):
    name = "qa"
    Options = QAOptions

    def answer(self, model: Any, tokenizer: Any, questions: list[str], shared: SharedRows | None = None) -> list[str]:
        """The model's answers, first line only, in one batched greedy generate call (a row stops
        generating once its first line is complete). The prompts' common prefix (chat template
        and instruction) is computed once per model: ``shared`` says which rows run on which
        adapter (None: all on ``model`` as it is)."""
        inputs = [format_prompt(tokenizer, QUESTION_PROMPT.format(question=q)) for q in questions]
        outputs = generate_texts(model, tokenizer, inputs, max_new_tokens=self.options.max_new_tokens, first_line=True,
                                 shared=shared or SharedRows())
        return [(o.strip().splitlines() or [""])[0].strip() for o in outputs]

    def evaluate(self, model: Any, tokenizer: Any, task: TaskInstance) -> Score:
        questions = task.evaluation["questions"]
        return self.grade(questions, self.answer(model, tokenizer, [q["question"] for q in questions]))

    def evaluate_routed(self, model: Any, tokenizer: Any, tasks: list[TaskInstance],
                        rows: Callable[[list[int]], AbstractContextManager]) -> list[Score]:
        """The questions of all tasks in one generate call, row by row on task j's adapted model."""
        owners = [j for j, task in enumerate(tasks) for _ in task.evaluation["questions"]]
        predictions = self.answer(model, tokenizer, [q["question"] for t in tasks for q in t.evaluation["questions"]],
                                  SharedRows(owners, rows))
        scores, start = [], 0
        for task in tasks:
            questions = task.evaluation["questions"]
            scores.append(self.grade(questions, predictions[start:start + len(questions)]))
            start += len(questions)
        return scores

    def grade(self, questions: list[dict[str, Any]], predictions: list[str]) -> Score:
        """Containment and F1 of ``predictions`` against the questions' gold answers."""
        cont = [max(contains(p, g) for g in q["answers"]) for p, q in zip(predictions, questions)]
        f1 = [max(token_f1(p, g) for g in q["answers"]) for p, q in zip(predictions, questions)]
        containment, f1_mean = sum(cont) / len(cont), sum(f1) / len(f1)
        value = containment if self.options.metric == "containment" else f1_mean
        return Score(value, {"containment": containment, "f1": f1_mean, "predictions": predictions})

    def score(self, model: Any, tokenizer: Any, task: TaskInstance) -> float:
        return self.evaluate(model, tokenizer, task).value
