"""seal_core.runs.store and seal_core.runs.results: the run directory's files."""

from __future__ import annotations

import json

import pytest

from seal_core.api.errors import SealError
from seal_core.runs.results import results_table, write_results
from seal_core.runs.store import RunStore
from seal_core.runtime.files import append_jsonl, atomic_write_text, read_jsonl
from seal_core.api.types import Rollout


def rollout(i: int, **extra) -> Rollout:
    return Rollout(
        round=i // 4,
        task_id=f"task-{i}",
        edit_index=i % 4,
        prompt=f"prompt {i}",
        edit=f"edit {i}\nsecond line \u00e9\u2014\u4e2d",
        score_before=0.25,
        score_after=0.5 + i / 100,
        reward=0.25 + i / 100,
        details=extra or {"loss": 1.5, "predictions": ["a", "b"]},
    )


# ---------------------------------------------------------------------------------------------
# RunStore
# ---------------------------------------------------------------------------------------------


def test_create_makes_missing_dirs(tmp_path):
    store = RunStore.create(tmp_path / "runs" / "one")
    assert store.dir.is_dir()
    assert store.rollouts() == []
    assert store.metrics() == []


def test_create_accepts_an_empty_existing_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    assert RunStore.create(tmp_path / "empty").dir == tmp_path / "empty"


def test_create_refuses_a_non_empty_dir(tmp_path):
    run_dir = tmp_path / "used"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("rounds: 1\n", encoding="utf-8")
    with pytest.raises(SealError) as info:
        RunStore.create(run_dir)
    assert str(run_dir) in str(info.value)
    assert (run_dir / "config.yaml").read_text(encoding="utf-8") == "rounds: 1\n"  # untouched


def test_rollouts_round_trip(tmp_path):
    store = RunStore.create(tmp_path / "run")
    written = [rollout(i) for i in range(6)]
    for r in written:
        store.append_rollout(r)
    assert store.rollouts() == written
    lines = store.rollouts_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6
    assert json.loads(lines[2])["task_id"] == "task-2"


def test_metrics_and_evaluations_round_trip(tmp_path):
    store = RunStore.create(tmp_path / "run")
    store.append_metrics({"round": 0, "eval_base": 0.1})
    store.append_metrics({"round": 1, "eval_base": 0.2})
    store.append_evaluation({"round": 0, "task_id": "x", "base": 0.0, "adapted": 1.0})
    assert store.metrics() == [{"round": 0, "eval_base": 0.1}, {"round": 1, "eval_base": 0.2}]
    assert read_jsonl(store.evaluations_path) == [{"round": 0, "task_id": "x", "base": 0.0, "adapted": 1.0}]


def test_write_config(tmp_path):
    store = RunStore.create(tmp_path / "run")
    store.write_config("rounds: 3\n")
    store.write_config("rounds: 4\n")
    assert store.config_path.read_text(encoding="utf-8") == "rounds: 4\n"
    assert sorted(p.name for p in store.dir.iterdir()) == ["config.yaml"]


# ---------------------------------------------------------------------------------------------
# read_jsonl
# ---------------------------------------------------------------------------------------------


def test_read_jsonl_missing_file_is_empty(tmp_path):
    assert read_jsonl(tmp_path / "nope.jsonl") == []


def test_read_jsonl_skips_blank_lines(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n   \n{"a": 2}\n', encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


def test_read_jsonl_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "b": "unfini', encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


def test_read_jsonl_raises_for_a_broken_middle_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": 2\n{"a": 3}\n', encoding="utf-8")
    with pytest.raises(SealError) as info:
        read_jsonl(path)
    assert str(path) in str(info.value)
    assert "line 2" in str(info.value)


def test_torn_rollouts_file_keeps_the_complete_ones(tmp_path):
    store = RunStore.create(tmp_path / "run")
    store.append_rollout(rollout(0))
    store.append_rollout(rollout(1))
    with open(store.rollouts_path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rollout(2).to_json())[:30])
    assert store.rollouts() == [rollout(0), rollout(1)]


def test_append_after_a_torn_last_line_keeps_the_new_row(tmp_path):
    store = RunStore.create(tmp_path / "run")
    store.append_rollout(rollout(0))
    with open(store.rollouts_path, "a", encoding="utf-8") as fh:
        fh.write('{"round": 0, "task_id": "tor')
    store.append_rollout(rollout(1))
    assert store.rollouts() == [rollout(0), rollout(1)]


def test_append_jsonl_writes_one_line_per_row(tmp_path):
    path = tmp_path / "rows.jsonl"
    append_jsonl(path, {"text": "line one\nline two", "uni": "\u00e9"})
    append_jsonl(path, {"n": 2})
    raw = path.read_text(encoding="utf-8")
    assert raw.count("\n") == 2
    assert "\u00e9" in raw  # not ASCII-escaped
    assert read_jsonl(path) == [{"text": "line one\nline two", "uni": "\u00e9"}, {"n": 2}]


# ---------------------------------------------------------------------------------------------
# atomic_write_text
# ---------------------------------------------------------------------------------------------


def test_atomic_write_text_leaves_no_temp_file(tmp_path):
    target = tmp_path / "results.md"
    atomic_write_text(target, "first\n")
    atomic_write_text(target, "second \u2713\n")
    assert target.read_text(encoding="utf-8") == "second \u2713\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.md"]


# ---------------------------------------------------------------------------------------------
# results.md and plot.png
# ---------------------------------------------------------------------------------------------

METRICS = [
    {"round": 0, "eval_base": 0.25, "eval_adapted": 0.3125, "eval_adapted_f1": 0.4, "seconds": 12.7},
    {"round": 1, "eval_base": 0.25, "eval_adapted": 0.375, "train_reward_mean": 0.05, "n_kept": 3, "seconds": 30.2},
    {"round": 2, "eval_base": 0.25, "eval_adapted": 0.5, "train_reward_mean": -0.0125, "n_kept": 0, "seconds": 151.0},
]


def test_results_table_rows_and_cells():
    lines = results_table(METRICS).splitlines()
    assert len(lines) == 2 + len(METRICS)
    assert lines[0].startswith("| round | eval base | eval adapted")
    cells = [line.strip("|").split("|") for line in lines[2:]]
    cells = [[c.strip() for c in row] for row in cells]
    assert [row[0] for row in cells] == ["0", "1", "2"]
    assert cells[0][1:4] == ["0.250", "0.312", "0.400"]
    assert cells[0][4] == "-"  # missing metric
    assert cells[1][4] == "0.050"
    assert cells[2][4] == "-0.013"
    assert cells[1][6] == "3"
    assert [row[-1] for row in cells] == ["13", "30", "151"]


def test_write_results_writes_markdown_and_png(tmp_path):
    table = write_results(tmp_path, METRICS, "knowledge / rest-em")
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert text.startswith("# knowledge / rest-em\n")
    assert table in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| round")]
    assert [row.split("|")[1].strip() for row in rows] == ["0", "1", "2"]
    assert "plot.png" in text
    png = (tmp_path / "plot.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png", "results.md"]


def test_write_results_with_one_round_and_missing_values(tmp_path):
    write_results(tmp_path, [{"round": 0, "eval_base": None, "eval_adapted": 0.0}], "zero")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| 0 | - | 0.000 |" in text
