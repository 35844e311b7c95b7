"""domain.source=synthetic:N[:SEED]: fictional passages drawn from a seed."""

from __future__ import annotations

import pytest

from seal_core.api.errors import DataError
from seal_core.evaluation.qa import normalize_answer
from seal_domains.knowledge import KnowledgeDomain
from seal_domains.knowledge.synthetic import synthetic_passages


def tasks(source: str) -> tuple[list, list]:
    domain = KnowledgeDomain()
    return domain.load_tasks("train", source), domain.load_tasks("eval", source)


def test_same_seed_same_passages_other_seed_others():
    assert synthetic_passages(30, 0) == synthetic_passages(30, 0)
    assert synthetic_passages(30, 0)[:5] == synthetic_passages(5, 0)  # passage i does not depend on N
    assert not set(synthetic_passages(30, 0)) & set(synthetic_passages(30, 1))
    train, evals = tasks("synthetic:40")
    assert [t.context for t in tasks("synthetic:40:0")[0]] == [t.context for t in train]


def test_every_answer_is_a_span_of_its_passage():
    for passage in synthetic_passages(200, 3):
        assert 4 <= len(passage.questions) <= 6
        words = normalize_answer(passage.context)
        for question, (answer,) in passage.questions:
            assert answer in passage.context, (answer, passage.context)
            n = len(normalize_answer(answer))  # also as the qa evaluator grades: normalised tokens
            assert any(words[i:i + n] == normalize_answer(answer) for i in range(len(words) - n + 1))
            assert answer not in question  # the question does not give the answer away
        answers = [a for _, (a,) in passage.questions]
        assert len(set(answers)) == len(answers)  # each question has its own answer


def test_variety_and_disjoint_splits():
    passages = synthetic_passages(200)
    assert len({p.context.split()[0] for p in passages}) > 50  # not one template's opening
    lengths = {p.context.count(". ") + 1 for p in passages}
    assert min(lengths) <= 4 and max(lengths) >= 7  # 4 to 7 sentences
    assert len({len(p.questions) for p in passages}) == 3  # 4, 5 and 6 questions
    train, evals = tasks("synthetic:200")
    assert len(train) + len(evals) == 200 and len(evals) > 20
    assert not {t.id for t in train} & {t.id for t in evals}


@pytest.mark.parametrize("source", ["synthetic:", "synthetic:0", "synthetic:ten", "synthetic:5:x", "synthetic:1:2:3"])
def test_malformed_source_is_a_clear_error(source):
    with pytest.raises(DataError, match="synthetic:N"):
        tasks(source)
