"""The exact-match evaluator: the grading alone, then on a tiny random model."""

from seal_core import Evaluator, TaskInstance
from seal_plugin_example import exact_match
from seal_plugin_example.exact_match import normalize

TASK = TaskInstance("t", "In Vellish, a pellow is a song.", {"questions": [
    {"question": "Who sings a pellow?", "answer": "shepherds"},
    {"question": "When is a pellow sung?", "answer": "dusk"},
]})


def test_normalize():
    assert normalize("The Copper!") == "copper"
    assert normalize("  a   turnip. ") == "turnip"


def test_the_first_line_of_each_answer_is_graded(registry, monkeypatch):
    def fixed_answers(model, tokenizer, inputs, max_new_tokens):
        assert len(inputs) == 2  # one batched call for all questions of the task
        return ["Shepherds.\nThey sing it at dusk.", "at noon"]

    monkeypatch.setattr(exact_match, "generate_texts", fixed_answers)
    evaluator = registry.get("evaluator", "exact-match")
    assert isinstance(evaluator, Evaluator)
    score = evaluator.evaluate(None, object(), TASK)
    assert score.value == 0.5
    assert score.details == {"answers": ["Shepherds.", "at noon"]}


def test_on_a_tiny_random_model(registry):
    from seal_core.models.loading import load_model

    loaded = load_model("tiny-random")
    score = registry.get("evaluator", "exact-match").evaluate(loaded.model, loaded.tokenizer, TASK)
    assert 0.0 <= score.value <= 1.0
    assert len(score.details["answers"]) == 2
