"""The ``answer-likelihood`` evaluator: a dense score, how likely the adapted model finds the gold
answers of a task's questions, asked without the passage.

For each question the prompt is the one :class:`seal_core.evaluation.qa.QAEvaluator` asks with, and the
completion is a gold answer; the model reads both in one teacher-forced forward pass (no
generation) and the question's score is the answer tokens' mean log-probability (the best over
the question's gold answers). The task's score is the mean over its questions; ``details`` also
carry its exp (the geometric-mean token probability), each question's score, and the number of
answer tokens.

Unlike containment or F1 it moves with every change of the model, not only when a greedy answer
flips, so a reward built on it (``reward.evaluator=answer-likelihood``) tells two self-edits
apart where an accuracy-based reward gives both 0. Departure from the paper, whose reward is
accuracy-based: see docs/experiments.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import torch

from seal_core.api.components import Evaluator
from seal_core.models.logprobs import collate, forward_completions, tokenize_pairs
from seal_core.evaluation.qa import QUESTION_PROMPT
from seal_core.api.types import Score, TaskInstance


@dataclass
class AnswerLikelihoodOptions:
    metric: Literal["logprob", "probability"] = "logprob"  # the score: mean log-prob, or its exp
    batch_size: int = 64  # (question, answer) pairs per forward pass

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


class AnswerLikelihoodEvaluator(Evaluator):
    """Mean per-token log-probability of the gold answers given the question, without the passage."""

    name = "answer-likelihood"
    Options = AnswerLikelihoodOptions

    def pairs(self, tasks: list[TaskInstance]) -> list[tuple[int, int, str, str]]:
        """(task index, question index, prompt, gold answer) for every gold answer of every question."""
        return [(j, qi, QUESTION_PROMPT.format(question=q["question"]), answer)
                for j, task in enumerate(tasks) for qi, q in enumerate(task.evaluation["questions"])
                for answer in q["answers"]]

    @torch.no_grad()
    def answer_logprobs(self, model: Any, tokenizer: Any, prompts: list[str], answers: list[str],
                        rows: Callable[[list[int]], AbstractContextManager] | None = None,
                        owners: list[int] | None = None) -> list[float]:
        """Mean log-probability of each answer's tokens (the eos after it not counted) given its
        prompt; with ``rows``, pair i is computed by adapted model ``owners[i]``."""
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        device = next(model.parameters()).device
        tokenized = tokenize_pairs(tokenizer, prompts, answers)
        # score the answer's own tokens: drop the eos tokenize_pairs appends
        eos = 1 if tokenizer.eos_token_id is not None else 0
        tokenized = [(p, c[: max(1, len(c) - eos)]) for p, c in tokenized]
        out: list[float] = []
        size = self.options.batch_size
        for start in range(0, len(tokenized), size):
            chunk = tokenized[start:start + size]
            batch = collate(chunk, pad, device)
            with rows(owners[start:start + size]) if rows is not None else nullcontext():
                logp, _ = forward_completions(model, batch)
            sums, counts = logp.sum(-1), batch.mask.sum(-1)
            out += (sums / counts.clamp_min(1)).tolist()
        return out

    def _scores(self, tasks: list[TaskInstance], pairs: list[tuple[int, int, str, str]],
                logps: list[float]) -> list[Score]:
        best: dict[tuple[int, int], float] = {}
        for (j, qi, _, _), lp in zip(pairs, logps):
            best[(j, qi)] = max(best.get((j, qi), -math.inf), lp)
        scores = []
        for j, task in enumerate(tasks):
            per_question = [best[(j, qi)] for qi in range(len(task.evaluation["questions"]))]
            mean_logprob = sum(per_question) / len(per_question)
            value = mean_logprob if self.options.metric == "logprob" else math.exp(mean_logprob)
            scores.append(Score(value, {"logprob": mean_logprob, "probability": math.exp(mean_logprob),
                                        "per_question": per_question}))
        return scores

    def evaluate(self, model: Any, tokenizer: Any, task: TaskInstance) -> Score:
        pairs = self.pairs([task])
        return self._scores([task], pairs, self.answer_logprobs(model, tokenizer, [p[2] for p in pairs],
                                                                [p[3] for p in pairs]))[0]

    def evaluate_routed(self, model: Any, tokenizer: Any, tasks: list[TaskInstance],
                        rows: Callable[[list[int]], AbstractContextManager]) -> list[Score]:
        """The gold answers of all tasks in as few forward passes as ``batch_size`` allows, each row
        on its task's adapted model."""
        pairs = self.pairs(tasks)
        logps = self.answer_logprobs(model, tokenizer, [p[2] for p in pairs], [p[3] for p in pairs],
                                     rows=rows, owners=[p[0] for p in pairs])
        return self._scores(tasks, pairs, logps)

    def score(self, model: Any, tokenizer: Any, task: TaskInstance) -> float:
        return self.evaluate(model, tokenizer, task).value
