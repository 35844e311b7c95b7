"""seal_core.evaluation.answer_likelihood: the dense evaluator (gold answers' mean token log-prob)."""

from __future__ import annotations

import math

import pytest
import torch

from seal_core.evaluation.answer_likelihood import AnswerLikelihoodEvaluator, AnswerLikelihoodOptions
from seal_core.models.logprobs import completion_logprobs
from seal_core.evaluation.qa import QUESTION_PROMPT
from seal_core.api.types import TaskInstance, TrainingSet
from seal_plugins.multi_lora import MultiLoraOptions, MultiLoraUpdater

QUESTIONS = [
    {"question": "What is the bell of Thrushby called?", "answers": ["Old Margery", "Margery"]},
    {"question": "How deep is the well?", "answers": ["31 metres"]},
    {"question": "What colour are the doors?", "answers": ["plum"]},
]
TASKS = [TaskInstance(f"t{j}", "", {"questions": QUESTIONS[: 1 + j]}) for j in range(3)]
DATAS = [TrainingSet.from_texts([f"The bell of Thrushby is called Old Margery. Fact {j}."] * (j + 1)) for j in range(3)]


def test_score_is_the_best_answers_mean_token_logprob(tiny):
    """By hand: each gold answer's token log-probs from the shared log-prob code, eos left out,
    averaged per answer; the best answer per question; the mean over questions."""
    ev = AnswerLikelihoodEvaluator()
    score = ev.evaluate(tiny.model, tiny.tokenizer, TASKS[2])
    expected = []
    for q in QUESTIONS:
        best = -math.inf
        for answer in q["answers"]:
            with torch.no_grad():
                logp, mask = completion_logprobs(tiny.model, tiny.tokenizer, [QUESTION_PROMPT.format(question=q["question"])],
                                                 [answer])
            n = int(mask.sum()) - 1  # the eos completion_logprobs appends
            best = max(best, float(logp[0, :n].mean()))
        expected.append(best)
    assert score.details["per_question"] == pytest.approx(expected, abs=1e-5)
    assert score.value == pytest.approx(sum(expected) / 3, abs=1e-5)
    assert score.details["probability"] == pytest.approx(math.exp(score.value))
    as_probability = AnswerLikelihoodEvaluator().configured(AnswerLikelihoodOptions(metric="probability"))
    assert as_probability.evaluate(tiny.model, tiny.tokenizer, TASKS[2]).value == pytest.approx(math.exp(score.value), rel=1e-5)


def test_routed_scores_equal_one_adapter_at_a_time(fresh_tiny):
    """multi-lora: the answers of all K adapted models in one pass = each adapted model alone."""
    ev = AnswerLikelihoodEvaluator().configured(AnswerLikelihoodOptions(batch_size=4))  # several passes too
    up = MultiLoraUpdater().configured(MultiLoraOptions(r=8, epochs=2, batch_size=2, max_adapters=4, learning_rate=1e-2))
    with up.adapted_batch(fresh_tiny, DATAS, [1, 2, 3]) as batch:
        routed = ev.evaluate_routed(fresh_tiny.model, fresh_tiny.tokenizer, TASKS, batch.rows)
        alone = []
        for j, task in enumerate(TASKS):
            with batch.use(j):
                alone.append(ev.evaluate(fresh_tiny.model, fresh_tiny.tokenizer, task))
    base = [ev.evaluate(fresh_tiny.model, fresh_tiny.tokenizer, t) for t in TASKS]
    for got, want, before in zip(routed, alone, base):
        assert got.details["per_question"] == pytest.approx(want.details["per_question"], abs=1e-4)
        assert got.value != before.value  # the adapters did change the scores (the check can fail)
