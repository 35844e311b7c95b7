"""Faults a run survives without losing work: a full disk at each write site, damaged resume
points and rows, a second writer, SIGTERM (docs/reliability.md lists each guarantee with its
test; benchmarks/faults.py runs the same faults on ``seal-run`` processes, with a real full disk
and ranks killed under torchrun).

The full disk is injected at the guarded writes of seal_core/runtime/files.py (``_fails_now``,
which ``SEAL_FAIL_WRITE=N`` drives outside the tests): the run fails there with ENOSPC exactly
as it would on a disk that just filled, and is then resumed.
"""

from __future__ import annotations

import re
import signal
import shutil
from pathlib import Path

import pytest

from seal_core.commands.main import main
from seal_core.runs.store import RunStore
from seal_core.runtime import files

from tiny import TINY, Killed, comparable_metrics, rollout_table, rows, run_args

CONFIG = [*TINY, "rounds=2", "domain.eval_limit=2", "algorithm.min_reward=-1", "checkpoint=final"]
POLICY = Path("checkpoints") / "policy" / "model.safetensors"


def outcome(run_dir: Path) -> dict:
    """What a resumed run must share with an uninterrupted one: rows, metrics, final weights."""
    return {"rollouts": rollout_table(run_dir), "metrics": comparable_metrics(run_dir),
            "evaluations": sorted(map(str, rows(run_dir / "evaluations.jsonl"))),
            "policy": files.sha256_of(run_dir / POLICY)}


def write_sites(monkeypatch, fail_at: int | None = None) -> list[Path]:
    """Record each guarded write's path (in order); the ``fail_at``-th (from 1) fails with ENOSPC."""
    seen: list[Path] = []

    def fails_now(path: Path) -> bool:
        seen.append(path)
        return len(seen) == fail_at

    monkeypatch.setattr(files, "_fails_now", fails_now)
    return seen


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, list[Path]]:
    """An uninterrupted run, and the path of each guarded write it made, in order."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    with pytest.MonkeyPatch.context() as mp:
        sites = write_sites(mp)
        assert main(run_args(run_dir, CONFIG)) == 0
    return run_dir, sites


def site_kind(path: Path, run_dir: Path) -> str:
    """A write site's name with its round numbers taken out (resume-1.safetensors: resume-N...)."""
    try:
        name = str(path.relative_to(run_dir))
    except ValueError:
        name = str(path)
    return re.sub(r"\d+", "N", name)


def leftovers(run_dir: Path) -> list[str]:
    """Temporary files or folders a failed write could have left (none may stay)."""
    return [str(p) for p in run_dir.rglob(".*") if p.name not in (".lock",)]


def fail_then_resume(run_dir: Path, at: int, monkeypatch, capsys) -> str:
    """Fail the ``at``-th guarded write with ENOSPC, check the message and the directory, resume
    (or, failed before the run had its config, start again) and return the site's kind."""
    with monkeypatch.context() as mp:
        sites = write_sites(mp, fail_at=at)
        code = main(run_args(run_dir, CONFIG))
    err = capsys.readouterr().err
    site = sites[at - 1]
    assert code == 2, f"a full disk at {site} ended with {code}: {err[-1500:]}"
    assert f"Could not write {site}: No space left on device" in err and "Traceback" not in err, err[-1500:]
    assert leftovers(run_dir) == [], f"the failed write at {site} left files behind"
    before = {k: rows(run_dir / k) for k in ("rollouts.jsonl", "evaluations.jsonl", "metrics.jsonl") if (run_dir / k).exists()}
    if (run_dir / "config.yaml").is_file():
        assert f"seal-run run --resume {run_dir}" in err, err[-1500:]
        assert main(["run", "--resume", str(run_dir)]) == 0
    else:  # refused before the run existed: the same command again
        assert "Nothing has run yet" in err, err[-1500:]
        assert main(run_args(run_dir, CONFIG)) == 0
    for name, kept in before.items():  # nothing written before the failure was lost or redone
        assert all(row in rows(run_dir / name) for row in kept)
    return site_kind(site, run_dir)


def first_of_each_kind(sites: list[Path], run_dir: Path) -> list[int]:
    """The first write of each kind of site, and the run's first three writes (the directory, its
    write probe, which names the directory too, and config.yaml)."""
    found: dict[str, int] = {}
    for i, path in enumerate(sites, start=1):
        found.setdefault(site_kind(path, run_dir), i)
    return sorted({*found.values(), 1, 2, 3})


def test_the_reference_run_writes_through_every_guarded_site(reference):
    run_dir, sites = reference
    kinds = {site_kind(p, run_dir) for p in sites}
    assert [site_kind(p, run_dir) for p in sites[:3]] == [".", ".", "config.yaml"]  # the directory, its probe
    expected = {".", "config.yaml", ".lock", "evaluations.jsonl", "rollouts.jsonl", "metrics.jsonl",
                "checkpoints", "checkpoints/resume-N.safetensors", "checkpoints/resume.json", "results.md", "plot.png",
                "checkpoints/policy"}
    assert expected <= kinds, f"sites never guarded: {expected - kinds}"


def test_a_full_disk_at_the_first_write_of_each_site_loses_nothing(reference, tmp_path, monkeypatch, capsys):
    run_dir, sites = reference
    expected = outcome(run_dir)
    for at in first_of_each_kind(sites, run_dir):
        target = tmp_path / f"site-{at}"
        fail_then_resume(target, at, monkeypatch, capsys)
        assert outcome(target) == expected, f"resumed after a full disk at write {at} ({sites[at - 1]}): not equal"
        assert (target / "results.md").is_file() and (target / "plot.png").is_file()


@pytest.mark.slow
def test_a_full_disk_at_every_write_loses_nothing(reference, tmp_path, monkeypatch, capsys):
    run_dir, sites = reference
    expected = outcome(run_dir)
    for at in range(1, len(sites) + 1):
        target = tmp_path / f"write-{at}"
        fail_then_resume(target, at, monkeypatch, capsys)
        assert outcome(target) == expected, f"resumed after a full disk at write {at} ({sites[at - 1]}): not equal"


def test_a_run_directory_that_cannot_be_written_is_refused_before_any_model_loads(tmp_path, monkeypatch, capsys):
    import errno

    from seal_core.loop.workbench import Workbench

    run_dir, writes = tmp_path / "run", []

    def read_only(path: Path) -> bool:
        writes.append(path)
        if writes.count(run_dir) == 2:  # made (as an existing directory would be), then its write probe
            raise OSError(errno.EROFS, "Read-only file system")
        return False

    monkeypatch.setattr(files, "_fails_now", read_only)
    monkeypatch.setattr(Workbench, "load", lambda *a, **k: pytest.fail("a model loaded"))
    assert main(run_args(run_dir, CONFIG)) == 2
    err = capsys.readouterr().err
    assert f"Could not write {run_dir}: Read-only file system" in err and "Nothing has run yet" in err
    assert not (run_dir / "config.yaml").exists()


# -- resume points and rows ---------------------------------------------------------------------


def killed_after_round_1_update(run_dir: Path, monkeypatch) -> None:
    """A run killed after round 1's update was saved, before its metrics line."""
    original, calls = RunStore.append_metrics, {"n": 0}

    def append_metrics(self, metrics):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Killed
        return original(self, metrics)

    with monkeypatch.context() as mp:
        mp.setattr(RunStore, "append_metrics", append_metrics)
        with pytest.raises(Killed):
            main(run_args(run_dir, CONFIG))


def test_a_damaged_resume_point_falls_back_and_redoes_the_updates(reference, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    killed_after_round_1_update(run_dir, monkeypatch)
    weights = run_dir / "checkpoints" / "resume-1.safetensors"
    assert [p.name for p in (run_dir / "checkpoints").glob("resume*.safetensors")] == [weights.name]
    with open(weights, "r+b") as fh:
        fh.truncate(1000)
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert "resume point missing or damaged" in capsys.readouterr().err
    assert outcome(run_dir) == outcome(reference[0])  # the same final weights, from the saved rollouts


def test_the_previous_point_stays_until_the_new_one_is_verified(reference, tmp_path, monkeypatch):
    from seal_core.runs import points

    run_dir = tmp_path / "run"
    original, calls = points.verified, {"n": 0}

    def verified_then_die(path):
        calls["n"] += 1
        if calls["n"] == 2:  # round 1's weights are on disk, not yet verified
            raise Killed
        return original(path)

    with monkeypatch.context() as mp:
        mp.setattr(points, "verified", verified_then_die)
        with pytest.raises(Killed):
            main(run_args(run_dir, CONFIG))
    found = sorted(p.name for p in (run_dir / "checkpoints").glob("resume*.safetensors"))
    assert found == ["resume-0.safetensors", "resume-1.safetensors"]  # at most two, only now
    assert RunStore(run_dir).read_resume_point()["round"] == 0
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert outcome(run_dir) == outcome(reference[0])


def test_an_unreadable_record_is_redone_from_the_rollouts(reference, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    killed_after_round_1_update(run_dir, monkeypatch)
    (run_dir / "checkpoints" / "resume.json").write_text('{"round": 1, "fi')
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert outcome(run_dir) == outcome(reference[0])


def test_a_damaged_line_of_the_unfinished_round_is_recomputed(reference, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    killed_after_round_1_update(run_dir, monkeypatch)
    path = run_dir / "rollouts.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if '"round": 1' in line)
    lines[first] = '{"round": 1, "task_id": "dam\n'
    path.write_text("".join(lines))
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert outcome(run_dir) == outcome(reference[0])


def test_a_damaged_line_of_a_finished_round_stops_with_the_line_and_the_choices(reference, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(reference[0], run_dir)
    metrics = (run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "metrics.jsonl").write_text("".join(metrics[:2]))  # rounds 0 and 1 finished, the last eval not
    lines = (run_dir / "rollouts.jsonl").read_text().splitlines(keepends=True)
    lines[1] = "garbage\n"
    (run_dir / "rollouts.jsonl").write_text("".join(lines))
    assert main(["run", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "rollouts.jsonl: line 2 is damaged" in err and "Choices:" in err and "Traceback" not in err


# -- one writer, SIGTERM ------------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_first(reference, tmp_path, capsys):
    import os

    from seal_core.runs.lock import RunLock

    run_dir = tmp_path / "run"
    shutil.copytree(reference[0], run_dir)
    with RunLock(run_dir, "seal-run run --resume elsewhere"):
        assert main(["run", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"in use by process {os.getpid()}" in err and "seal-run run --resume elsewhere" in err
    assert not (run_dir / ".lock").exists()


def test_sigterm_stops_like_ctrl_c_with_the_resume_command(reference, tmp_path):
    import os
    import subprocess
    import sys
    import time

    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "seal_core", *run_args(run_dir, CONFIG)], text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not rows_written(run_dir) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert f"seal-run run --resume {run_dir}" in err and not (run_dir / ".lock").exists()
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert outcome(run_dir) == outcome(reference[0])


def rows_written(run_dir: Path) -> bool:
    path = run_dir / "rollouts.jsonl"
    return path.is_file() and bool(path.read_text().strip())
