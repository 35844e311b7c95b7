"""Setups and fixed-teacher baselines: teacher-student, algorithm none, the from-file generator."""

from __future__ import annotations

import json

import pytest

from seal_core.commands.main import main
from seal_core.loop.config import load_raw, resolve
from seal_core.api.errors import ConfigError, DataError
from seal_core.api.types import TaskInstance
from seal_domains.knowledge.loader import BUNDLED
from seal_plugins.from_file import FromFile, FromFileOptions

SMALL = [
    "--set", "edits_per_task=2", "--set", "domain.train_limit=2", "--set", "domain.eval_limit=1",
    "--set", "inner.epochs=1", "--set", "checkpoint=none",
]
SHORT_EDITS = "generator.max_new_tokens=8"


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _run(tmp_path, name, *overrides):
    run_dir = tmp_path / name
    args = ["run", "--run-dir", str(run_dir), *SMALL]
    for o in overrides:
        args += ["--set", o]
    assert main(args) == 0
    return run_dir


def test_single_model_shas_are_equal_and_change_after_each_update(tmp_path):
    run_dir = _run(tmp_path, "single", SHORT_EDITS, "model.policy=tiny-random", "rounds=2", "algorithm.min_reward=-1")
    metrics = _read(run_dir / "metrics.jsonl")
    assert [m["round"] for m in metrics] == [0, 1, 2]
    for m in metrics:
        assert m["generator_sha"] == m["student_sha"]
        assert len(m["generator_sha"]) == 12
    shas = [m["generator_sha"] for m in metrics]
    assert len(set(shas)) == 3  # every update round changed the policy, which is the student


def test_teacher_student_with_two_different_models(tmp_path):
    run_dir = _run(
        tmp_path, "ts", SHORT_EDITS, "setup=teacher-student", "model.teacher=tiny-random:hidden=64",
        "model.student=tiny-random:hidden=32,heads=2,kv_heads=1", "rounds=2", "algorithm.min_reward=-1",
    )
    metrics = _read(run_dir / "metrics.jsonl")
    student = {m["student_sha"] for m in metrics}
    teacher = [m["generator_sha"] for m in metrics]
    assert len(student) == 1  # the student's base weights never change
    assert len(set(teacher)) == 3  # the teacher is updated every round
    assert student.isdisjoint(teacher)
    rollouts = _read(run_dir / "rollouts.jsonl")
    assert len(rollouts) == 2 * 2 * 2
    log = _read(run_dir / "log.jsonl")
    loaded = [e for e in log if e["event"] == "model loaded"]
    assert {e["spec"] for e in loaded} == {"tiny-random:hidden=64", "tiny-random:hidden=32,heads=2,kv_heads=1"}
    assert len({e["parameters"] for e in loaded}) == 2  # two different architectures


def test_teacher_student_needs_both_models(registry):
    with pytest.raises(ConfigError, match="model.teacher"):
        resolve(load_raw(None, ["setup=teacher-student", "model.student=tiny-random"]), registry)
    with pytest.raises(ConfigError, match="model.student"):
        resolve(load_raw(None, ["setup=teacher-student", "model.teacher=tiny-random"]), registry)


def test_algorithm_none_changes_nothing(tmp_path):
    run_dir = _run(tmp_path, "none", SHORT_EDITS, "model.policy=tiny-random", "rounds=1", "algorithm.name=none")
    metrics = _read(run_dir / "metrics.jsonl")
    assert metrics[0]["generator_sha"] == metrics[1]["generator_sha"]
    assert metrics[0]["n_kept"] == 0 and metrics[0]["n_rollouts"] == 4


def _edits_file(tmp_path, n_completions=3):
    passages = json.loads(BUNDLED.read_text())
    records = [
        {**{k: p[k] for k in ("title", "context", "questions", "split")},
         "completions": [f"{p['title']} note {j}: {p['context'].split('.')[0]}." for j in range(n_completions)]}
        for p in passages
    ]
    path = tmp_path / "edits.json"
    path.write_text(json.dumps(records))
    return path, records


def test_from_file_end_to_end(tmp_path):
    path, records = _edits_file(tmp_path)
    run_dir = _run(
        tmp_path, "ff", "model.policy=tiny-random", "rounds=1", "algorithm.name=none",
        f"domain.source={path}", "generator.name=from-file", f"generator.path={path}",
    )
    by_title = {r["title"]: r["completions"] for r in records}
    rollouts = _read(run_dir / "rollouts.jsonl")
    assert len(rollouts) == 4
    for r in rollouts:
        title = r["edit"].split(" note ")[0]
        assert r["edit"] == by_title[title][r["edit_index"]]
    evaluations = _read(run_dir / "evaluations.jsonl")
    for e in evaluations:
        assert e["edit"].endswith(".") and " note 0: " in e["edit"]  # greedy = the first completion
    config = (run_dir / "config.yaml").read_text()
    assert "from-file" in config and str(path) in config


def _task(title, context):
    return TaskInstance(id="t", context=context, evaluation={"title": title, "questions": []})


def test_from_file_cycles_when_k_exceeds_completions(tmp_path):
    path, records = _edits_file(tmp_path, n_completions=2)
    gen = FromFile().configured(FromFileOptions(path=str(path)))
    task = _task(records[0]["title"], records[0]["context"])
    (edits,) = gen.generate(None, ["prompt"], 5, tasks=[task])
    assert edits == [records[0]["completions"][i % 2] for i in range(5)]
    (greedy,) = gen.generate(None, ["prompt"], 3, greedy=True, tasks=[task])
    assert greedy == [records[0]["completions"][0]] * 3


def test_from_file_unknown_passage_names_it(tmp_path):
    path, _ = _edits_file(tmp_path)
    gen = FromFile().configured(FromFileOptions(path=str(path)))
    with pytest.raises(DataError, match="Nowhere Island"):
        gen.generate(None, ["p"], 1, tasks=[_task("Nowhere Island", "Not in the file.")])


def test_from_file_options_and_bad_files(tmp_path, registry):
    with pytest.raises(ConfigError, match="generator.path"):
        resolve(load_raw(None, ["generator.name=from-file"]), registry)
    with pytest.raises(ConfigError, match="not a file"):
        resolve(load_raw(None, ["generator.name=from-file", f"generator.path={tmp_path / 'missing.json'}"]), registry)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"title": "A", "context": "B", "completions": []}]))
    gen = FromFile().configured(FromFileOptions(path=str(bad)))
    with pytest.raises(DataError, match="record 0"):
        gen.generate(None, ["p"], 1, tasks=[_task("A", "B")])


def test_shared_gpt41_file_matches_its_own_passages():
    """The paper's baseline data: every passage of the file finds its own completions."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "gpt4_1_val_self_edits.json"
    if not path.is_file():
        pytest.skip("../shared/data is not beside this checkout")
    from seal_domains.knowledge import KnowledgeDomain

    gen = FromFile().configured(FromFileOptions(path=str(path)))
    tasks = KnowledgeDomain().load_tasks("eval", str(path)) + KnowledgeDomain().load_tasks("train", str(path))
    assert len(tasks) == 200
    edits = gen.generate(None, ["p"] * len(tasks), 5, tasks=tasks)
    assert all(len(e) == 5 and all(x.strip() for x in e) for e in edits)
