"""seal_domains.knowledge: bundled data, prompts, training texts, loading and validating sources."""

from __future__ import annotations

import json

import pytest

from seal_core import TaskInstance
from seal_core.api.errors import DataError
from seal_domains.knowledge import PROMPTS, KnowledgeDomain, KnowledgeOptions, edit_lines
from seal_domains.knowledge.loader import BUNDLED


def domain(**options) -> KnowledgeDomain:
    return KnowledgeDomain().configured(KnowledgeOptions(**options))


def synthetic_records(n: int = 40, split: str | None = None) -> list[dict]:
    records = []
    for i in range(n):
        rec = {
            "title": f"Synthetic Town {i}",
            "context": f"Synthetic Town {i} was founded in {1800 + i} by settler number {i}.",
            "questions": [
                {"question": f"When was Synthetic Town {i} founded?", "answer": str(1800 + i)},
                {"question": f"Who founded Synthetic Town {i}?", "answer": [f"settler number {i}", f"settler {i}"]},
            ],
        }
        if split is not None:
            rec["split"] = split
        records.append(rec)
    return records


def write_json(path, data) -> str:
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


TASK = TaskInstance(
    id="velmora",
    context="The Velmora Lighthouse stands on Skarren Island. It was lit in 1874.",
    evaluation={"title": "Velmora Lighthouse", "questions": [{"question": "Where?", "answers": ["Skarren Island"]}]},
)

# ---------------------------------------------------------------------------------------------
# the bundled set
# ---------------------------------------------------------------------------------------------


def test_bundled_set_size_and_questions():
    d = KnowledgeDomain()
    train, evaluation = d.load_tasks("train"), d.load_tasks("eval")
    assert len(train) + len(evaluation) >= 24
    assert train and evaluation
    for task in train + evaluation:
        assert isinstance(task, TaskInstance)
        assert task.context.strip()
        assert task.evaluation["title"]
        questions = task.evaluation["questions"]
        assert len(questions) >= 4, task.id
        for q in questions:
            assert q["question"].strip()
            assert q["answers"] and all(a.strip() for a in q["answers"])


def test_bundled_splits_are_disjoint_and_ids_unique():
    d = KnowledgeDomain()
    train_ids = [t.id for t in d.load_tasks("train")]
    eval_ids = [t.id for t in d.load_tasks("eval")]
    assert len(set(train_ids)) == len(train_ids)
    assert len(set(eval_ids)) == len(eval_ids)
    assert not set(train_ids) & set(eval_ids)
    assert not {t.context for t in d.load_tasks("train")} & {t.context for t in d.load_tasks("eval")}


def test_bundled_set_honours_its_own_split_field():
    records = json.loads(BUNDLED.read_text(encoding="utf-8"))
    wanted = {r["context"] for r in records if r.get("split") == "eval"}
    assert wanted, "the bundled set is expected to name its eval split"
    assert {t.context for t in KnowledgeDomain().load_tasks("eval")} == wanted


def test_bundled_set_is_the_same_twice():
    assert KnowledgeDomain().load_tasks("train") == KnowledgeDomain().load_tasks("train")
    assert KnowledgeDomain().load_tasks("eval") == KnowledgeDomain().load_tasks("eval")


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError) as info:
        KnowledgeDomain().load_tasks("test")
    assert "'test'" in str(info.value)


# ---------------------------------------------------------------------------------------------
# edit prompts
# ---------------------------------------------------------------------------------------------


def test_default_prompt_is_implications():
    assert KnowledgeDomain().edit_prompt(TASK) == domain(prompt="implications").edit_prompt(TASK)


@pytest.mark.parametrize("prompt", ["implications", "rewrite", "self-qa"])
def test_edit_prompt_contains_the_passage(prompt):
    text = domain(prompt=prompt).edit_prompt(TASK)
    assert TASK.context in text
    assert "Velmora Lighthouse" in text  # the title


def test_edit_prompts_differ():
    texts = {p: domain(prompt=p).edit_prompt(TASK) for p in ("implications", "rewrite", "self-qa")}
    assert len(set(texts.values())) == 3
    assert "implication" in texts["implications"].lower()
    assert "rewrite" in texts["rewrite"].lower()
    assert "question" in texts["self-qa"].lower()
    assert set(PROMPTS) == {"implications", "rewrite", "self-qa"}


def test_configured_does_not_change_the_original():
    original = KnowledgeDomain()
    configured = original.configured(KnowledgeOptions(prompt="rewrite"))
    assert original.options.prompt == "implications"
    assert configured.options.prompt == "rewrite"
    assert original.edit_prompt(TASK) != configured.edit_prompt(TASK)


# ---------------------------------------------------------------------------------------------
# training texts
# ---------------------------------------------------------------------------------------------

EDIT = """\
1. The lighthouse is on Skarren Island.

- It was first lit in 1874.
*   Skarren Island has a lighthouse.
2) The light dates from the nineteenth century.
   \u2022 Velmora is a lighthouse.
Plain line without a marker.
"""

EDIT_LINES = [
    "The lighthouse is on Skarren Island.",
    "It was first lit in 1874.",
    "Skarren Island has a lighthouse.",
    "The light dates from the nineteenth century.",
    "Velmora is a lighthouse.",
    "Plain line without a marker.",
]


def test_training_texts_are_edit_lines_plus_passage():
    texts = KnowledgeDomain().training_texts(TASK, EDIT)
    assert texts == [*EDIT_LINES, "Velmora Lighthouse\n" + TASK.context]


def test_training_texts_without_passage():
    assert domain(include_passage=False).training_texts(TASK, EDIT) == EDIT_LINES


def test_training_texts_passage_without_title():
    task = TaskInstance("x", "Just a context.", {"questions": []})
    assert KnowledgeDomain().training_texts(task, "") == ["Just a context."]


def test_training_texts_empty_edit_without_passage_is_empty():
    assert domain(include_passage=False).training_texts(TASK, "\n  \n- \n") == []


def test_max_edit_lines_caps_the_edit_not_the_passage():
    texts = domain(max_edit_lines=2).training_texts(TASK, EDIT)
    assert texts == [*EDIT_LINES[:2], "Velmora Lighthouse\n" + TASK.context]
    assert domain(max_edit_lines=2, include_passage=False).training_texts(TASK, EDIT) == EDIT_LINES[:2]


def test_edit_lines_keeps_numbers_that_are_not_markers():
    assert edit_lines("1874 was the year.\n-5 degrees at night.\n3.5 million visitors.") == [
        "1874 was the year.",
        "-5 degrees at night.",
        "3.5 million visitors.",
    ]


def test_edit_lines_keeps_a_leading_initial():
    assert edit_lines("J. K. Rowling wrote the first book in 1997.") == [
        "J. K. Rowling wrote the first book in 1997."
    ]


@pytest.mark.parametrize("bad", [{"max_edit_lines": 0}, {"eval_fraction": 0.0}, {"eval_fraction": 1.0}])
def test_options_range_checks(bad):
    with pytest.raises(ValueError):
        KnowledgeOptions(**bad)


# ---------------------------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------------------------


def test_seal_json_without_split_is_divided_deterministically(tmp_path):
    source = write_json(tmp_path / "passages.json", synthetic_records(40))
    d = KnowledgeDomain()
    train, evaluation = d.load_tasks("train", source), d.load_tasks("eval", source)
    assert train and evaluation
    assert len(train) + len(evaluation) == 40
    assert len(train) > len(evaluation)  # eval_fraction 0.25
    assert not {t.id for t in train} & {t.id for t in evaluation}
    assert [t.id for t in d.load_tasks("train", source)] == [t.id for t in train]
    assert [t.id for t in KnowledgeDomain().load_tasks("eval", source)] == [t.id for t in evaluation]


def test_split_does_not_depend_on_file_order(tmp_path):
    records = synthetic_records(40)
    first = write_json(tmp_path / "a.json", records)
    second = write_json(tmp_path / "b.json", list(reversed(records)))
    d = KnowledgeDomain()
    assert {t.id for t in d.load_tasks("eval", first)} == {t.id for t in d.load_tasks("eval", second)}


def test_eval_fraction_changes_the_share(tmp_path):
    source = write_json(tmp_path / "passages.json", synthetic_records(40))
    small = len(domain(eval_fraction=0.1).load_tasks("eval", source))
    large = len(domain(eval_fraction=0.9).load_tasks("eval", source))
    assert small < large
    # a passage in eval at a small fraction stays in eval at a larger one
    assert {t.id for t in domain(eval_fraction=0.1).load_tasks("eval", source)} <= {
        t.id for t in domain(eval_fraction=0.9).load_tasks("eval", source)
    }


def test_seal_json_task_contents(tmp_path):
    source = write_json(tmp_path / "passages.json", synthetic_records(40))
    d = KnowledgeDomain()
    tasks = {t.context: t for t in d.load_tasks("train", source) + d.load_tasks("eval", source)}
    task = tasks["Synthetic Town 3 was founded in 1803 by settler number 3."]
    assert task.evaluation == {
        "title": "Synthetic Town 3",
        "questions": [
            {"question": "When was Synthetic Town 3 founded?", "answers": ["1803"]},
            {"question": "Who founded Synthetic Town 3?", "answers": ["settler number 3", "settler 3"]},
        ],
    }
    assert task.id.startswith("synthetic-town-3-")


def test_seal_json_split_field_is_honoured(tmp_path):
    records = synthetic_records(6, split="eval")
    source = write_json(tmp_path / "passages.json", records)
    assert KnowledgeDomain().load_tasks("train", source) == []
    assert len(KnowledgeDomain().load_tasks("eval", source)) == 6


def test_squad_jsonl_rows_are_grouped_into_passages(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    rows = []
    for i in range(12):
        for j in range(3):
            rows.append(
                {
                    "id": f"{i}-{j}",
                    "title": f"Topic {i}",
                    "context": f"Topic {i} is described by fact {i}.",
                    "question": f"Question {j} about topic {i}?",
                    "answers": {"text": [f"answer {i}-{j}", f"alt {i}-{j}"], "answer_start": [0, 0]},
                }
            )
    path = tmp_path / "squad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    d = KnowledgeDomain()
    tasks = d.load_tasks("train", str(path)) + d.load_tasks("eval", str(path))
    assert len(tasks) == 12
    by_context = {t.context: t for t in tasks}
    task = by_context["Topic 5 is described by fact 5."]
    assert task.evaluation["title"] == "Topic 5"
    assert task.evaluation["questions"] == [
        {"question": f"Question {j} about topic 5?", "answers": [f"answer 5-{j}", f"alt 5-{j}"]} for j in range(3)
    ]
    assert not {t.id for t in d.load_tasks("train", str(path))} & {t.id for t in d.load_tasks("eval", str(path))}


def test_squad_rows_in_a_json_file_are_grouped(tmp_path):
    rows = [
        {"title": "T", "context": "Shared context.", "question": "Q1?", "answers": {"text": ["A1"]}},
        {"title": "T", "context": "Shared context.", "question": "Q2?", "answers": {"text": ["A2"]}},
        {"title": "U", "context": "Other context.", "question": "Q3?", "answers": ["A3"]},
        {"title": "U", "context": "Other context.", "question": "Unanswerable?", "answers": {"text": []}},
    ]
    source = write_json(tmp_path / "rows.json", rows)
    d = KnowledgeDomain()
    tasks = {t.context: t for t in d.load_tasks("train", source) + d.load_tasks("eval", source)}
    assert set(tasks) == {"Shared context.", "Other context."}
    assert [q["question"] for q in tasks["Shared context."].evaluation["questions"]] == ["Q1?", "Q2?"]
    assert tasks["Other context."].evaluation["questions"] == [{"question": "Q3?", "answers": ["A3"]}]


def test_squad_row_missing_column_names_file_and_row(tmp_path):
    rows = [
        {"title": "T", "context": "C.", "question": "Q1?", "answers": {"text": ["A1"]}},
        {"title": "T", "question": "Q2?", "answers": {"text": ["A2"]}},
    ]
    source = write_json(tmp_path / "rows.json", rows)
    with pytest.raises(DataError) as info:
        KnowledgeDomain().load_tasks("train", source)
    assert source in str(info.value)
    assert "row 1" in str(info.value)
    assert "context" in str(info.value)


# ---------------------------------------------------------------------------------------------
# malformed data
# ---------------------------------------------------------------------------------------------

GOOD = {"title": "Good", "context": "A good passage.", "questions": [{"question": "Q?", "answer": "A"}]}


@pytest.mark.parametrize(
    "records, where, problem",
    [
        ([GOOD, {"title": "No context", "questions": [{"question": "Q?", "answer": "A"}]}], "record 1", "'context'"),
        ([GOOD, GOOD, {"title": "Blank", "context": "  ", "questions": [{"question": "Q?", "answer": "A"}]}],
         "record 2", "'context'"),
        ([{"title": "No questions", "context": "C."}], "record 0", "'questions'"),
        ([GOOD, {"title": "Empty questions", "context": "C.", "questions": []}], "record 1", "'questions'"),
        ([GOOD, {"title": "No answer", "context": "C.", "questions": [{"question": "Q?", "answer": "A"},
                                                                       {"question": "Q2?"}]}],
         "record 1", "question 1"),
        ([{"title": "Blank answer", "context": "C.", "questions": [{"question": "Q?", "answer": ""}]}],
         "record 0", "'answer'"),
        ([{"title": "No question", "context": "C.", "questions": [{"answer": "A"}]}], "record 0", "'question'"),
        ([GOOD, "just a string"], "record 1", "str"),
        ([{"title": 5, "context": "C.", "questions": [{"question": "Q?", "answer": "A"}]}], "record 0", "'title'"),
        ([{"context": "C.", "questions": [{"question": "Q?", "answer": "A"}], "split": "test"}], "record 0", "'split'"),
    ],
)
def test_malformed_records_name_file_and_record(tmp_path, records, where, problem):
    source = write_json(tmp_path / "bad.json", records)
    with pytest.raises(DataError) as info:
        KnowledgeDomain().load_tasks("train", source)
    message = str(info.value)
    assert source in message
    assert where in message
    assert problem in message


@pytest.mark.parametrize("data, kind", [({"passages": []}, "dict"), ("a string", "str"), (42, "int")])
def test_top_level_not_a_list(tmp_path, data, kind):
    source = write_json(tmp_path / "notalist.json", data)
    with pytest.raises(DataError) as info:
        KnowledgeDomain().load_tasks("train", source)
    assert source in str(info.value)
    assert "list" in str(info.value)
    assert kind in str(info.value)


def test_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"title": "x",\n  "context": }\n]', encoding="utf-8")
    with pytest.raises(DataError) as info:
        KnowledgeDomain().load_tasks("train", str(path))
    assert str(path) in str(info.value)
    assert "not valid JSON" in str(info.value)
    assert "line 3" in str(info.value)


def test_invalid_utf8(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('[{"title": "Caf\xe9", "context": "x", "questions": []}]'.encode("latin-1"))
    with pytest.raises(DataError) as info:
        KnowledgeDomain().load_tasks("train", str(path))
    assert str(path) in str(info.value)
    assert "UTF-8" in str(info.value)


def test_empty_list(tmp_path):
    source = write_json(tmp_path / "empty.json", [])
    with pytest.raises(DataError) as info:
        KnowledgeDomain().load_tasks("eval", source)
    assert source in str(info.value)
    assert "no passages" in str(info.value)


def test_unknown_file_type(tmp_path):
    path = tmp_path / "passages.txt"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(DataError) as info:
        KnowledgeDomain().load_tasks("train", str(path))
    assert str(path) in str(info.value)
    assert ".jsonl" in str(info.value)
