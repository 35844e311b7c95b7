"""``seal-run compare``: same seed, same tasks, same budget; only the update differs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seal_core.commands.main import main
from seal_core.studies.compare import comparison_table, split_overrides
from seal_core.api.errors import ConfigError
from tiny import TINY, rows

SMALL = (*TINY, "rounds=2", "domain.eval_limit=2")


@pytest.fixture(scope="module")
def comparison(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compare") / "cmp"
    args = ["compare", "--algorithms", "rest-em,none", "--run-dir", str(out)]
    for item in (*SMALL, "algorithms.rest-em.min_reward=-1"):
        args += ["--set", item]
    assert main(args) == 0
    return out


def test_each_algorithm_has_its_own_run_and_the_comparison_is_written(comparison):
    for name in ("rest-em", "none"):
        assert (comparison / name / "metrics.jsonl").is_file()
    text = (comparison / "comparison.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("| rest-em") or line.startswith("| none")]
    assert len(lines) == 2
    assert "eval r0" in text and "eval r2" in text and "inner evaluations" in text
    assert (comparison / "comparison.png").read_bytes().startswith(b"\x89PNG")


def test_same_footing(comparison):
    runs = {name: comparison / name for name in ("rest-em", "none")}
    tasks = {n: [(r["round"], r["task_id"], r["edit_index"]) for r in rows(d / "rollouts.jsonl")] for n, d in runs.items()}
    assert tasks["rest-em"] == tasks["none"]  # same tasks, same number of inner-loop evaluations
    first = {n: rows(d / "rollouts.jsonl")[:4] for n, d in runs.items()}
    assert first["rest-em"] == first["none"]  # round 0 comes from the same policy and seed
    metrics = {n: rows(d / "metrics.jsonl") for n, d in runs.items()}
    assert metrics["rest-em"][0]["generator_sha"] == metrics["none"][0]["generator_sha"]
    assert metrics["rest-em"][1]["generator_sha"] != metrics["none"][1]["generator_sha"]  # only the update differs
    configs = {n: (d / "config.yaml").read_text() for n, d in runs.items()}
    assert "min_reward: -1.0" in configs["rest-em"]  # the per-algorithm override went to rest-em only


def test_per_algorithm_overrides_are_routed():
    shared, per = split_overrides(["rounds=3", "algorithms.grpo.beta=0.1"], ["grpo", "rest-em"])
    assert shared == ["rounds=3"]
    assert per == {"grpo": ["algorithm.beta=0.1"], "rest-em": []}
    with pytest.raises(ConfigError, match="algorithms.NAME.KEY"):
        split_overrides(["algorithms.ppo.beta=0.1"], ["grpo"])
    with pytest.raises(ConfigError, match="--algorithms"):
        split_overrides(["algorithm.name=grpo"], ["grpo"])


def test_bad_algorithm_fails_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--algorithms", "rest-em,nope", "--run-dir", str(out), "--set", "model.policy=tiny-random"]) == 2
    assert "Unknown algorithm 'nope'" in capsys.readouterr().err
    assert not out.exists()


def test_table_marks_the_best_round():
    results = {"a": {"metrics": [{"eval_adapted": 0.1}, {"eval_adapted": 0.3, "train_reward_mean": 0.2},
                                 {"eval_adapted": 0.3}], "seconds": 12.0, "inner_evaluations": 9}}
    row = comparison_table(results).splitlines()[2]
    assert row == "| a | 0.100 | 0.300 | 0.300 | 1 | 0.200 | 12 | 9 |"


def test_seeds_give_intervals_and_a_resumed_command_skips_finished_runs(tmp_path, monkeypatch):
    """--seeds 2: every algorithm at seeds 0 and 1, intervals in comparison.md; --resume after a
    lost run reruns that run only."""
    import seal_core.studies.variants

    out = tmp_path / "cmp"
    args = ["compare", "--algorithms", "rest-em,none", "--seeds", "2", "--against", "none", "--run-dir", str(out)]
    for item in (*SMALL, "rounds=1", "algorithms.rest-em.min_reward=-1"):
        args += ["--set", item]
    assert main(args) == 0
    for name in ("rest-em", "none"):
        for seed in (0, 1):
            assert len(rows(out / name / f"seed{seed}" / "metrics.jsonl")) == 2
    seeds = [yaml_seed(out / "rest-em" / f"seed{s}") for s in (0, 1)]
    assert seeds == [0, 1]
    text = (out / "comparison.md").read_text()
    assert "mean over 2 seeds" in text and "minus none [95% CI]" in text and "2 × 2" in text
    assert "| round 0 (no update) |" in text and "minus round 0 (no update) [95% CI]" in text
    # a lost run: the same command resumed reruns it, and only it
    import shutil

    shutil.rmtree(out / "none" / "seed1")
    # a finished run keeps the time its rounds took when it ran, not the ~0 s of being skipped
    metrics = out / "rest-em" / "seed0" / "metrics.jsonl"
    found = rows(metrics)
    metrics.write_text("".join(json.dumps({**r, "seconds": 1000.0}) + "\n" for r in found))
    started = []
    real = seal_core.studies.variants.run_one

    def counting(config, registry, run_dir, stop, log_path):
        if not seal_core.studies.variants.finished(run_dir, config):
            started.append(run_dir.relative_to(out).as_posix())
        return real(config, registry, run_dir, stop, log_path)

    monkeypatch.setattr(seal_core.studies.variants, "run_one", counting)
    assert main(["compare", "--resume", str(out)]) == 0
    assert started == ["none/seed1"]
    row = next(line for line in (out / "comparison.md").read_text().splitlines() if line.startswith("| rest-em |"))
    assert float(row.split("|")[-3]) >= 1000 * len(found)
    assert len(rows(out / "none" / "seed1" / "metrics.jsonl")) == 2
    assert main(["compare", "--resume", str(out), "--set", "rounds=3"]) == 2  # options come from the directory


def yaml_seed(run_dir: Path) -> int:
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())["seed"]
