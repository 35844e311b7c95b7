"""Evaluator ``arc``: predict every test output under geometric transforms, vote, two attempts.

For each test input and each transform ``t`` of ``transforms`` (default: the 8 symmetries of the
square), the model sees the task with ``t`` applied to every grid and greedily writes the output
grid; ``t``'s inverse maps the prediction back. Identical predictions are counted, and the two
most-voted (ties: the earlier transform first) are the attempts. A test output is correct when
one attempt equals it exactly; the task scores 1 only if every test output is correct, else 0.

All predictions of a task go through one batched ``generate`` call. The answer may be at most
twice as many tokens as the longest demonstration output, plus 16 (``max_new_tokens`` caps it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from seal_core import Evaluator, Score, TaskInstance
from seal_core.models.generation import generate_texts
from seal_domains.arc import demonstrations, tests
from seal_domains.arc.grids import GEOMETRIC, Grid, parse_text, to_text
from seal_domains.arc.prompts import task_text


def vote(predictions: Sequence[Grid | None], attempts: int) -> list[Grid]:
    """The ``attempts`` most frequent grids among ``predictions`` (``None``: no valid grid);
    ties go to the grid predicted first."""
    counts = Counter(p for p in predictions if p is not None)
    first = {}
    for i, p in enumerate(predictions):
        if p is not None:
            first.setdefault(p, i)
    return sorted(counts, key=lambda g: (-counts[g], first[g]))[:attempts]


@dataclass
class ArcEvalOptions:
    transforms: list[str] = field(default_factory=lambda: list(GEOMETRIC))  # predict under each; identity alone: no voting
    attempts: int = 2  # guesses per test output (ARC's rule: 2)
    max_new_tokens: int = 1024  # cap on the answer length (a 30 x 30 grid is 929 tokens)

    def __post_init__(self) -> None:
        unknown = [t for t in self.transforms if t not in GEOMETRIC]
        if unknown or not self.transforms:
            raise ValueError(f"transforms must be a non-empty list of {', '.join(GEOMETRIC)}; got {self.transforms}")
        if self.attempts < 1 or self.max_new_tokens < 1:
            raise ValueError(f"attempts and max_new_tokens must be >= 1, got {self.attempts} and {self.max_new_tokens}")


class ArcEvaluator(Evaluator):
    name = "arc"
    Options = ArcEvalOptions

    def _budget(self, tokenizer: Any, demos: list[tuple[Grid, Grid]]) -> int:
        longest = max(len(tokenizer(to_text(out), add_special_tokens=False)["input_ids"]) for _, out in demos)
        return min(self.options.max_new_tokens, 2 * longest + 16)

    def evaluate(self, model: Any, tokenizer: Any, task: TaskInstance) -> Score:
        opts = self.options
        demos, cases = demonstrations(task), tests(task)
        transforms = [GEOMETRIC[n] for n in opts.transforms]
        inputs = [task_text([(t(a), t(b)) for a, b in demos], t(query)) for query, _ in cases for t in transforms]
        outputs = generate_texts(model, tokenizer, inputs, max_new_tokens=self._budget(tokenizer, demos))
        correct, attempts, valid = [], [], 0
        for j, (_, answer) in enumerate(cases):
            predictions = []
            for t, text in zip(transforms, outputs[j * len(transforms):(j + 1) * len(transforms)]):
                grid = parse_text(text)
                predictions.append(t.inverse(grid) if grid is not None else None)
            valid += sum(p is not None for p in predictions)
            guesses = vote(predictions, opts.attempts)
            correct.append(answer in guesses)
            attempts.append([to_text(g) for g in guesses])
        solved = all(correct)
        return Score(float(solved), {"solved": solved, "tests_correct": correct, "attempts": attempts,
                                     "valid_predictions": valid / len(inputs)})

    def score(self, model: Any, tokenizer: Any, task: TaskInstance) -> float:
        return self.evaluate(model, tokenizer, task).value
