"""Runs that survive: resume after a kill at any point, determinism, Ctrl-C.

Kills are simulated in-process by raising a BaseException at a chosen point (what is on disk is
then exactly what a SIGKILL there would leave), and once for real with SIGKILL / SIGINT on a
``seal-run`` subprocess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seal_core.commands.main import main
from seal_core.runs.store import RunStore

from tiny import TINY, Killed, comparable_metrics, rollout_table, rows, run_args

CONFIG = [
    *TINY, "rounds=2", "domain.eval_limit=2",
    "algorithm.min_reward=-1",  # the random model's rewards are all 0: update anyway
]


def _args(run_dir: Path) -> list[str]:
    return run_args(run_dir, CONFIG)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run: what every resumed run must end up equal to."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    assert main(_args(run_dir)) == 0
    return run_dir


def test_same_seed_same_rollouts_and_metrics(reference, tmp_path):
    again = tmp_path / "again"
    assert main(_args(again)) == 0
    assert rollout_table(again) == rollout_table(reference)
    assert comparable_metrics(again) == comparable_metrics(reference)
    assert rows(again / "evaluations.jsonl") == rows(reference / "evaluations.jsonl")


def _kill_after(monkeypatch, cls, method: str, calls: int, before: bool = False):
    original = getattr(cls, method)
    count = {"n": 0}

    def wrapper(self, *args, **kwargs):
        count["n"] += 1
        if before and count["n"] == calls:
            raise Killed
        result = original(self, *args, **kwargs)
        if not before and count["n"] == calls:
            raise Killed
        return result

    monkeypatch.setattr(cls, method, wrapper)


def _save_weights_then_die(self, model, round, metrics, algorithm_state=None):
    from seal_core.runs.points import write_weights
    from seal_core.runs.store import checkpoint_tensors

    self.points.folder.mkdir(exist_ok=True)  # the weights land, the record naming them does not
    write_weights(checkpoint_tensors(model, algorithm_state), self.points.folder / f"resume-{round}.safetensors")
    raise Killed


KILL_POINTS = {
    "during round 0 evaluation": lambda mp: _kill_after(mp, RunStore, "append_evaluation", 1),
    "mid-collection, round 0": lambda mp: _kill_after(mp, RunStore, "append_rollout", 3),
    "after the last rollout of round 0": lambda mp: _kill_after(mp, RunStore, "append_rollout", 4),
    "between update weights and record": lambda mp: mp.setattr(RunStore, "save_resume_point", _save_weights_then_die),
    "after the update, before the metrics line": lambda mp: _kill_after(mp, RunStore, "append_metrics", 1, before=True),
    "mid-collection, round 1": lambda mp: _kill_after(mp, RunStore, "append_rollout", 6),
    "before the final metrics line": lambda mp: _kill_after(mp, RunStore, "append_metrics", 3, before=True),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_resume_after_a_kill_equals_an_uninterrupted_run(point, reference, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    with monkeypatch.context() as mp:
        KILL_POINTS[point](mp)
        with pytest.raises(Killed):
            main(_args(run_dir))
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert rollout_table(run_dir) == rollout_table(reference)
    assert comparable_metrics(run_dir) == comparable_metrics(reference)
    assert not (run_dir / "checkpoints" / "resume.json").exists()  # a finished run drops its resume point


def test_a_torn_last_line_is_dropped_on_resume(reference, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    with monkeypatch.context() as mp:
        _kill_after(mp, RunStore, "append_rollout", 2)
        with pytest.raises(Killed):
            main(_args(run_dir))
    with open(run_dir / "rollouts.jsonl", "a") as fh:
        fh.write('{"round": 0, "task_id": "half-writ')  # the crash hit mid-write
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert rollout_table(run_dir) == rollout_table(reference)


def test_resume_of_a_finished_run_redoes_nothing(reference, tmp_path):
    import shutil

    run_dir = tmp_path / "done"
    shutil.copytree(reference, run_dir)
    before = (run_dir / "rollouts.jsonl").read_bytes()
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert (run_dir / "rollouts.jsonl").read_bytes() == before
    assert len(rows(run_dir / "metrics.jsonl")) == 3


def test_resume_refuses_new_settings_and_non_run_dirs(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path), "--set", "rounds=3"]) == 2
    assert "drop --config and --set" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def _subprocess_run(args: list[str], env_extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "seal_core", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.is_file() and len(path.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"{path} never reached {n} lines")


def test_real_sigkill_then_resume(reference, tmp_path):
    run_dir = tmp_path / "run"
    proc = _subprocess_run(_args(run_dir))
    _wait_for_lines(run_dir / "rollouts.jsonl", 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert rollout_table(run_dir) == rollout_table(reference)
    assert comparable_metrics(run_dir) == comparable_metrics(reference)


def test_ctrl_c_stops_after_the_current_update_and_prints_the_resume_command(reference, tmp_path):
    run_dir = tmp_path / "run"
    proc = _subprocess_run(_args(run_dir))
    _wait_for_lines(run_dir / "rollouts.jsonl", 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert f"seal-run run --resume {run_dir}" in err
    written = rows(run_dir / "rollouts.jsonl")
    assert 1 <= len(written) < 8  # stopped early, nothing lost
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert rollout_table(run_dir) == rollout_table(reference)
    assert comparable_metrics(run_dir) == comparable_metrics(reference)
