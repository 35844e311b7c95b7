"""The arc evaluator: predictions in transformed frames are mapped back, voted, and graded."""

from __future__ import annotations

import pytest

import seal_domains.arc.evaluator as evaluator_module
from seal_core.api.types import TaskInstance
from seal_domains.arc.evaluator import ArcEvalOptions, ArcEvaluator
from seal_domains.arc.grids import GEOMETRIC, to_text

ANSWER = ((1, 2, 3), (4, 5, 6))  # no symmetry: every transform moves it
WRONG = ((7,),)
TASK = TaskInstance("t", "", {
    "train": [{"input": [[1]], "output": [[2]]}],
    "test": [{"input": [[0, 0, 0], [0, 0, 0]], "output": [list(r) for r in ANSWER]},
             {"input": [[0]], "output": [[9]]}],
})


class FakeTokenizer:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(text)}


def fake_generate(answers_per_frame):
    """A "model" whose answer for (test j, transform t) is given, in t's frame."""
    def generate(model, tokenizer, inputs, max_new_tokens):
        assert len(inputs) == len(answers_per_frame)
        return answers_per_frame
    return generate


@pytest.fixture
def evaluator():
    return ArcEvaluator().configured(ArcEvalOptions())


def test_majority_after_mapping_back_solves(monkeypatch, evaluator):
    frames = list(GEOMETRIC.values())
    # test 0: 5 of 8 frames right (each in its own frame), 3 wrong; test 1: right only in the 2nd vote
    first = [to_text(t(ANSWER)) if i < 5 else to_text(WRONG) for i, t in enumerate(frames)]
    second = [to_text(WRONG)] * 4 + ["9"] * 3 + ["garbage"]
    monkeypatch.setattr(evaluator_module, "generate_texts", fake_generate(first + second))
    score = evaluator.evaluate(None, FakeTokenizer(), TASK)
    assert score.value == 1.0 and score.details["tests_correct"] == [True, True]
    assert score.details["attempts"][1] == [to_text(WRONG), "9"]
    assert score.details["valid_predictions"] == 15 / 16


def test_one_wrong_test_output_fails_the_task(monkeypatch, evaluator):
    frames = list(GEOMETRIC.values())
    first = [to_text(t(ANSWER)) for t in frames]
    second = ["8"] * 4 + ["7"] * 4  # two attempts, both wrong
    monkeypatch.setattr(evaluator_module, "generate_texts", fake_generate(first + second))
    score = evaluator.evaluate(None, FakeTokenizer(), TASK)
    assert score.value == 0.0 and score.details["tests_correct"] == [True, False]


def test_predictions_are_mapped_back_with_the_inverse(monkeypatch, evaluator):
    # the same grid text in every frame is 8 different grids once mapped back: one vote each
    first = [to_text(ANSWER)] * 8
    monkeypatch.setattr(evaluator_module, "generate_texts", fake_generate(first + ["9"] * 8))
    score = evaluator.evaluate(None, FakeTokenizer(), TASK)
    assert score.details["tests_correct"] == [True, True]  # identity comes first, so it is attempt 1
    # rot90's frame first, one attempt: the text of ANSWER there is rot270(ANSWER) here: wrong
    one_attempt = ArcEvaluator().configured(ArcEvalOptions(transforms=["rot90", "identity"], attempts=1))
    monkeypatch.setattr(evaluator_module, "generate_texts", fake_generate([to_text(ANSWER)] * 2 + ["9"] * 2))
    assert one_attempt.evaluate(None, FakeTokenizer(), TASK).details["tests_correct"] == [False, True]


def test_options_are_checked():
    with pytest.raises(ValueError, match="transforms"):
        ArcEvalOptions(transforms=["rot45"])
    with pytest.raises(ValueError):
        ArcEvalOptions(attempts=0)
