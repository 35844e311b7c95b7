"""seal_core.evaluation.qa (the qa evaluator): answer normalisation and grading (no model is loaded)."""

from __future__ import annotations

import pytest

from seal_core import Score, TaskInstance
from seal_core.evaluation.qa import QAEvaluator, QAOptions, contains, normalize_answer, token_f1


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("The Quick, brown fox!", ["quick", "brown", "fox"]),
        ("An apple a day", ["apple", "day"]),
        ("  Theater   of THE absurd ", ["theater", "of", "absurd"]),
        ("U.S.A.", ["usa"]),
        ("", []),
        ("the a an", []),
        ("1,874", ["1874"]),
    ],
)
def test_normalize_answer(text, tokens):
    assert normalize_answer(text) == tokens


@pytest.mark.parametrize(
    "prediction, gold, expected",
    [
        ("It was lit in 1874.", "1874", 1.0),
        ("It was lit in 18745.", "1874", 0.0),
        ("It was lit in 11874.", "1874", 0.0),
        ("THE answer is Skarren Island!", "skarren island", 1.0),
        ("On the island of Skarren", "Skarren Island", 0.0),  # not contiguous
        ("Paris is the capital of France", "Paris France", 0.0),
        ("the Velmora lighthouse", "A Velmora Lighthouse", 1.0),  # articles ignored
        ("Skarren", "Skarren Island", 0.0),  # a part of the gold is not enough
        ("anything at all", "the", 0.0),  # a gold of only articles grades nothing
        ("", "1874", 0.0),
        ("1874", "1874", 1.0),
    ],
)
def test_contains(prediction, gold, expected):
    assert contains(prediction, gold) == expected


@pytest.mark.parametrize(
    "prediction, gold, expected",
    [
        ("Skarren Island", "skarren island.", 1.0),
        # pred {cat, sat, on, mat}, gold {cat, on, mat}: P = 3/4, R = 1 -> F1 = 6/7
        ("the cat sat on the mat", "a cat on a mat", 6 / 7),
        # pred {in, 1874}, gold {1874}: P = 1/2, R = 1 -> 2/3
        ("in 1874", "1874", 2 / 3),
        # pred {city, of, light}, gold {city, of, paris}: P = R = 2/3 -> 2/3
        ("the city of light", "City of Paris", 2 / 3),
        # repeated tokens: pred [x, x, y], gold [x, z]
        # overlap = min(2, 1) = 1 -> P = 1/3, R = 1/2 -> F1 = 2 * (1/6) / (5/6) = 0.4
        ("x x y", "x z", 0.4),
        ("nothing shared", "1874", 0.0),
        ("", "1874", 0.0),
    ],
)
def test_token_f1(prediction, gold, expected):
    assert token_f1(prediction, gold) == pytest.approx(expected)


def test_token_f1_is_symmetric():
    assert token_f1("the cat sat on the mat", "a cat on a mat") == pytest.approx(
        token_f1("a cat on a mat", "the cat sat on the mat")
    )


# ---------------------------------------------------------------------------------------------
# QAEvaluator.evaluate with canned answers
# ---------------------------------------------------------------------------------------------

TASK = TaskInstance(
    id="t",
    context="The Velmora Lighthouse stands on Skarren Island and was first lit in 1874.",
    evaluation={
        "title": "Velmora",
        "questions": [
            {"question": "When was it first lit?", "answers": ["1874"]},
            {"question": "Which city?", "answers": ["Paris", "City of Paris"]},
        ],
    },
)


@pytest.fixture
def canned(monkeypatch):
    """Make QAEvaluator.answer return the given strings; records the questions it was asked."""
    asked: list[list[str]] = []

    def install(answers: list[str]) -> list[list[str]]:
        def fake_answer(self, model, tokenizer, questions):
            asked.append(list(questions))
            return list(answers)

        monkeypatch.setattr(QAEvaluator, "answer", fake_answer)
        return asked

    return install


def test_evaluate_containment_and_f1(canned):
    asked = canned(["In 1874.", "the city of light"])
    score = QAEvaluator().evaluate(None, None, TASK)
    assert asked == [["When was it first lit?", "Which city?"]]
    assert isinstance(score, Score)
    # containment: q1 = 1, q2 = 0 ; f1: q1 = 2/3, q2 = max(0, 2/3) = 2/3
    assert score.value == pytest.approx(0.5)
    assert score.details["containment"] == pytest.approx(0.5)
    assert score.details["f1"] == pytest.approx(2 / 3)
    assert score.details["predictions"] == ["In 1874.", "the city of light"]


def test_metric_f1_switches_the_score(canned):
    canned(["In 1874.", "the city of light"])
    evaluator = QAEvaluator().configured(QAOptions(metric="f1"))
    score = evaluator.evaluate(None, None, TASK)
    assert score.value == pytest.approx(2 / 3)
    assert score.details["containment"] == pytest.approx(0.5)
    assert evaluator.score(None, None, TASK) == pytest.approx(2 / 3)
    assert QAEvaluator().score(None, None, TASK) == pytest.approx(0.5)


def test_multiple_acceptable_answers_take_the_max(canned):
    canned(["It is 1874", "City of Paris"])
    score = QAEvaluator().evaluate(None, None, TASK)
    assert score.value == 1.0
    # q1: P = 1/3, R = 1 -> 0.5; q2: F1 against "Paris" is 0.5, against "City of Paris" 1 -> max 1
    assert score.details["f1"] == pytest.approx((0.5 + 1.0) / 2)


def test_a_later_acceptable_answer_counts(canned):
    task = TaskInstance("u", "c", {"questions": [{"question": "Where?", "answers": ["Lyon", "Marseille", "Paris"]}]})
    canned(["In Paris."])
    score = QAEvaluator().evaluate(None, None, task)
    assert score.value == 1.0
    assert score.details["f1"] == pytest.approx(2 / 3)  # {in, paris} vs {paris}


def test_all_wrong_scores_zero(canned):
    canned(["never", "London"])
    score = QAEvaluator().evaluate(None, None, TASK)
    assert score.value == 0.0
    assert score.details["f1"] == 0.0


def test_score_is_in_unit_interval(canned):
    canned(["1874 1874 1874", "City of Paris, Paris"])
    evaluator = QAEvaluator()
    for metric in ("containment", "f1"):
        value = evaluator.configured(QAOptions(metric=metric)).score(None, None, TASK)
        assert 0.0 <= value <= 1.0
    assert evaluator.score(None, None, TASK) == 1.0


def test_qa_options_validate():
    with pytest.raises(ValueError):
        QAOptions(max_new_tokens=0)
    assert QAOptions().metric == "containment"
