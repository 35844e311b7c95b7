"""experiment=single|cpt|continual and `seal-run baselines`, on tiny-random."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seal_core.runtime import logs
from seal_core.commands.main import main
from seal_core.loop.config import load_raw, resolve
from seal_core.api.errors import ConfigError, EditRejected
from seal_core.loop.experiments import ContinualEngine, CptEngine, make_engine, pool, retention_table
from seal_core.loop.workbench import Workbench
from seal_core.inner import record_of
from seal_core.models.loading import weights_sha
from seal_core.runs.store import RunStore
from seal_core.api.types import TrainingExample, TrainingSet
from tiny import TINY, rows

SMALL = [*TINY, "rounds=0", "domain.eval_limit=3"]


def config(registry, *extra):
    return resolve(load_raw(None, [*SMALL, *extra]), registry)


def test_experiment_key_is_validated(registry):
    assert config(registry).run.experiment == "single"
    with pytest.raises(ConfigError, match="experiment"):
        config(registry, "experiment=sequential")
    store = RunStore(Path("unused"))  # never written: the engines are only built
    assert isinstance(make_engine(Workbench(config(registry, "experiment=cpt"), registry), store), CptEngine)
    assert isinstance(make_engine(Workbench(config(registry, "experiment=continual", "inner.name=full"), registry), store),
                      ContinualEngine)


def test_continual_needs_an_updater_that_can_merge(registry, monkeypatch):
    from seal_plugins.lora_updater import LoraUpdater

    monkeypatch.delattr(LoraUpdater, "merge")
    with pytest.raises(ConfigError, match="cannot do"):
        config(registry, "experiment=continual", "inner.name=lora")


def test_pool():
    a = TrainingSet([TrainingExample("x")], epochs=2)
    b = TrainingSet([TrainingExample("y"), TrainingExample("z")], epochs=2, learning_rate=1e-3)
    pooled = pool([a, b])
    assert [e.text for e in pooled.examples] == ["x", "y", "z"]
    assert pooled.epochs == 2 and pooled.learning_rate is None  # kept only where all agree
    with pytest.raises(EditRejected):
        pool([a, TrainingSet([TrainingExample("q", prompt="p")], loss_on="completion")])


def test_cpt_trains_one_adaptation_on_all_passages(tmp_path, registry, monkeypatch):
    from seal_plugins.lora_updater import LoraUpdater

    sizes: list[int] = []
    real = LoraUpdater.adapt
    monkeypatch.setattr(LoraUpdater, "adapt", lambda self, s, data: (sizes.append(len(data)), real(self, s, data))[1])
    sets = [*SMALL, "experiment=cpt", "inner.name=lora"]
    assert main(["run", "--run-dir", str(tmp_path / "r"), *sum((["--set", s] for s in sets), [])]) == 0
    logs.configure()
    evals = rows(tmp_path / "r" / "evaluations.jsonl")
    assert len(evals) == 3 and {r["experiment"] for r in evals} == {"cpt"}
    assert len(sizes) == 1  # one adaptation for the three passages
    assert sizes[0] >= 3  # at least each passage's own text
    assert all(r["pooled_passages"] == 3 for r in evals)
    metrics = rows(tmp_path / "r" / "metrics.jsonl")
    assert metrics[0]["eval_tasks"] == 3


def test_continual_writes_the_retention_matrix_and_leaves_the_policy_alone(tmp_path, registry, fresh_tiny):
    from seal_core.api.components import Roles

    cfg = config(registry, "experiment=continual", "inner.name=full", "inner.learning_rate=1e-3")
    workbench = Workbench(cfg, registry)
    _, evals = workbench.load_tasks()
    engine = make_engine(workbench, RunStore.create(tmp_path / "run"))
    sha = weights_sha(fresh_tiny.model)
    summary = engine.evaluate(0, evals, Roles(fresh_tiny, fresh_tiny), {})
    assert weights_sha(fresh_tiny.model) == sha  # the sequence ran on a copy
    assert record_of(fresh_tiny.model) is None or record_of(fresh_tiny.model).kind != "full"
    data = json.loads((tmp_path / "run" / "retention.json").read_text())["0"]
    assert [len(r) for r in data["matrix"]] == [1, 2, 3]  # lower triangle: earlier passages after each step
    assert data["task_ids"] == [t.id for t in evals]
    assert summary["eval_forgetting"] == pytest.approx(summary["eval_learned"] - summary["eval_adapted"])
    written = rows(tmp_path / "run" / "evaluations.jsonl")
    assert [r["score_after"] for r in written] == data["matrix"][-1]  # adapted = after all steps
    assert [r["score_learned"] for r in written] == [data["matrix"][i][i] for i in range(3)]
    assert (tmp_path / "run" / "retention.png").read_bytes().startswith(b"\x89PNG")
    md = (tmp_path / "run" / "retention.md").read_text()
    assert "| after step | P1 | P2 | P3 |" in md and "| 3 (learn P3) |" in md
    # resuming the round reuses the rows instead of running the sequence again
    again = engine.evaluate(0, evals, Roles(fresh_tiny, fresh_tiny), {r["task_id"]: r for r in written})
    assert again == summary
    assert len(rows(tmp_path / "run" / "evaluations.jsonl")) == 3


def test_retention_table_shape():
    table = retention_table({"task_ids": ["a", "b"], "base": [0.0, 0.5], "matrix": [[1.0], [0.5, 1.0]]})
    assert table.splitlines()[2] == "| base | 0.00 | 0.50 |"
    assert table.splitlines()[3] == "| 1 (learn P1) | 1.00 |  |"


def test_baselines_in_one_command(tmp_path):
    bundled = json.loads((Path(__file__).parents[2] / "seal_domains/knowledge/data/passages.json").read_text())
    source = tmp_path / "passages.json"
    source.write_text(json.dumps([{**p, "completions": [f"{p['title']} is a place.\nIt is old."]} for p in bundled]))
    out = tmp_path / "b"
    args = ["baselines", "--run-dir", str(out), "--edits-file", str(source), "--seal-rounds", "1"]
    for s in [*SMALL, "domain.eval_limit=2", f"domain.source={source}", "domain.train_limit=1", "edits_per_task=1",
              "algorithm.min_reward=-1"]:
        args += ["--set", s]
    assert main(args) == 0
    logs.configure()
    for variant in ("passage-only", "from-file", "seal"):
        assert (out / variant / "metrics.jsonl").is_file()
    assert not (out / "self-edits").exists()  # with --seal-rounds that row is the seal run's round 0, not run twice
    text = (out / "baselines.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 6 and "paper (single passage, LoRA)" in table[0]
    assert table[1].startswith("| no adaptation | 32.7% |") and table[5].startswith("| SEAL after 1 round | 47.0% |")
    assert "not run" not in text
    # the rows are the runs' own numbers, on the same passages
    m = {v: rows(out / v / "metrics.jsonl") for v in ("passage-only", "from-file", "seal")}
    assert f"| {m['passage-only'][0]['eval_base']:.3f} |" in table[1]
    assert f"| {m['seal'][0]['eval_adapted']:.3f} |" in table[3] and f"`{out / 'seal'}` (round 0)" in table[3]
    assert f"| {m['seal'][-1]['eval_adapted']:.3f} |" in table[5]
    assert "seal-run run --config" in text and "from-file/config.yaml" in text
    cfg = (out / "passage-only" / "config.yaml").read_text()
    assert "name: empty" in cfg and "name: none" in cfg
    # the edits-file row points at the passages trained on: from-file's training texts include the file's edit
    evaluated = rows(out / "from-file" / "evaluations.jsonl")
    assert all(r["edit"].endswith("It is old.") for r in evaluated)
    assert all(r["edit"] == "" for r in rows(out / "passage-only" / "evaluations.jsonl"))


def test_baselines_table_from_a_finished_run_and_missing_rows(tmp_path):
    from seal_core.studies.baselines import baselines_table, finished_seal_run

    seal_dir = tmp_path / "seal"
    seal_dir.mkdir()
    (seal_dir / "metrics.jsonl").write_text("\n".join(json.dumps(m) for m in [
        {"round": 0, "eval_base": 0.1, "eval_adapted": 0.2}, {"round": 1, "eval_base": 0.1, "eval_adapted": 0.4}]))
    (seal_dir / "evaluations.jsonl").write_text(json.dumps({"round": 1, "task_id": "other"}))
    out = tmp_path / "out"
    (out / "passage-only").mkdir(parents=True)
    (out / "passage-only" / "evaluations.jsonl").write_text(json.dumps({"round": 0, "task_id": "p1"}))
    results = {"passage-only": {"metrics": [{"round": 0, "eval_base": 0.05, "eval_adapted": 0.3, "eval_adapted_f1": 0.25}],
                                "runs": {0: out / "passage-only"}}}
    table, notes = baselines_table(results, "continual", out, finished_seal_run(seal_dir))
    lines = table.splitlines()
    assert lines[0] == "| baseline | score | F1 | steps | tokens | run |"  # no paper figures for continual
    assert lines[2].startswith("| no adaptation | 0.050 | - |") and lines[3].startswith("| passage only | 0.300 | 0.250 |")
    assert "| passage + own self-edits (no RL) | - | - | - | - | not run |" in table
    assert lines[6].startswith("| SEAL after 1 round | 0.400 |")
    assert any("--edits-file" in n for n in notes) and any("other passages" in n for n in notes)
    with pytest.raises(Exception, match="no metrics.jsonl lines"):
        finished_seal_run(tmp_path)


def test_baselines_over_seeds_report_intervals(tmp_path):
    """--seeds 2: each baseline at seeds 0 and 1; baselines.md gives every row's interval over
    seeds and passages and its paired difference from passage-only."""
    out = tmp_path / "b"
    args = ["baselines", "--run-dir", str(out), "--seeds", "0,1"]
    for s in [*SMALL, "domain.eval_limit=2"]:
        args += ["--set", s]
    assert main(args) == 0
    logs.configure()
    for variant in ("passage-only", "self-edits"):
        assert [len(rows(out / variant / f"seed{s}" / "evaluations.jsonl")) for s in (0, 1)] == [2, 2]
    text = (out / "baselines.md").read_text()
    assert "mean over 2 seeds" in text and "minus passage-only [95% CI]" in text
    intervals = [l for l in text.splitlines() if l.startswith("| no-adaptation") or l.startswith("| self-edits")]
    assert len(intervals) == 2 and all("2 × 2" in l for l in intervals)
    assert json.loads((out / "command.json").read_text())["options"]["seeds"] == "0,1"


def test_baselines_report_seal_round_by_round_against_round_0_and_passage_only(tmp_path):
    """Over seeds, SEAL's held-out score at every round it finished at all seeds, each paired with
    its round 0 and with passage-only; a seed still in progress is left out of that table."""
    from seal_core.studies.baselines import seed_intervals

    def run(name, seed, per_round):
        d = tmp_path / name / f"seed{seed}"
        d.mkdir(parents=True)
        evals = [{"round": r, "task_id": p, "score_before": 0.0, "score_after": v, "details": {}}
                 for r, scores in enumerate(per_round) for p, v in zip(("p1", "p2"), scores)]
        (d / "evaluations.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
        (d / "metrics.jsonl").write_text("".join(json.dumps({"round": r}) + "\n" for r in range(len(per_round))))
        return d

    results = {"passage-only": {"runs": {0: run("passage-only", 0, [[0.5, 0.5]]), 1: run("passage-only", 1, [[0.5, 0.5]])}},
               "seal": {"runs": {0: run("seal", 0, [[0.2, 0.4], [0.6, 0.8]]), 1: run("seal", 1, [[0.2, 0.4], [0.6, 0.8]]),
                                 2: run("seal", 2, [[0.0, 0.0]])}}}  # seed 2: round 1 not reached
    text = seed_intervals(results, "passage-only")
    by_round = text[text.index("SEAL round by round"):].splitlines()
    assert "minus seal round 0 [95% CI]" in by_round[2] and "minus passage-only [95% CI]" in by_round[2]
    row0, row1 = (next(l for l in by_round if l.startswith(f"| seal round {r} ")) for r in (0, 1))
    # every seed agrees, so each interval collapses to its mean: round 1 - round 0 = 0.4, round 1 - passage-only = 0.2
    assert row0.startswith("| seal round 0 | 0.300 [0.200, 0.400] | — | — | -0.200 [-0.300, -0.100] | yes | 2 × 2 |")
    assert row1.startswith("| seal round 1 | 0.700 [0.600, 0.800] | 0.400 [0.400, 0.400] | yes | 0.200 [0.100, 0.300] | yes | 2 × 2 |")
