"""Tiny runs, shared by the tests that run ``seal-run`` end to end: the settings of a run on
tiny-random that takes seconds, the arguments of such a run, and a stand-in for SIGKILL.

A test writes only what it changes: ``tiny_args("run", run_dir, "rounds=2")`` is
``seal-run run --run-dir RUN_DIR`` with :data:`TINY` and then ``rounds=2`` (a later ``--set`` of
a key wins). The ``tiny_run`` fixture (tests/conftest.py) runs such a command and checks its exit
status.
"""

from __future__ import annotations

import json
from pathlib import Path

#: a SEAL run in seconds: tiny-random, 1 round of 2 training tasks with 2 self-edits each, 1
#: held-out task, 8-token self-edits, 1 inner epoch, no policy saved
TINY = ("model.policy=tiny-random", "rounds=1", "edits_per_task=2", "domain.train_limit=2", "domain.eval_limit=1",
        "generator.max_new_tokens=8", "inner.epochs=1", "checkpoint=none")


class Killed(BaseException):
    """Stands for SIGKILL: nothing after the raise point runs, nothing catches it."""


def sets(overrides: tuple[str, ...] | list[str]) -> list[str]:
    """``--set X`` for each override."""
    return [arg for item in overrides for arg in ("--set", item)]


def tiny_args(command: str, run_dir: Path, *overrides: str) -> list[str]:
    """``seal-run COMMAND --run-dir RUN_DIR`` with :data:`TINY`, then ``overrides``."""
    return [command, "--run-dir", str(run_dir), *sets((*TINY, *overrides))]


def run_args(run_dir: Path, overrides: list[str]) -> list[str]:
    """``seal-run run --run-dir RUN_DIR`` with exactly ``overrides`` (no :data:`TINY`)."""
    return ["run", "--run-dir", str(run_dir), *sets(overrides)]


def rows(path: Path) -> list[dict]:
    """The JSON lines of ``path`` (a run's rollouts, evaluations or metrics)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def comparable_metrics(run_dir: Path) -> list[dict]:
    """metrics.jsonl without its timings: what two runs of one config share."""
    return [{k: v for k, v in m.items() if k not in ("seconds", "phase_seconds")} for m in rows(run_dir / "metrics.jsonl")]


def rollout_table(run_dir: Path) -> dict:
    """The run's rollouts by (round, task, edit index); each key once."""
    found = rows(run_dir / "rollouts.jsonl")
    keys = [(r["round"], r["task_id"], r["edit_index"]) for r in found]
    assert len(keys) == len(set(keys)), "duplicate (round, task_id, edit_index)"
    return dict(zip(keys, found))
