"""Writes that fail for the storage's sake end as a user error naming the path, and leave no
temporary file (seal_core/runtime/files.py); resume points are checksummed
(seal_core/runs/points.py); one writer per run directory (seal_core/runs/lock.py)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seal_core.runs.lock import RunInUse, RunLock
from seal_core.runs.points import BrokenPoint, ResumePoints
from seal_core.runtime import files
from seal_core.runtime.files import StorageError, append_jsonl, atomic_write_text, storage_errno, writable


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_during_a_text_write_is_a_storage_error_and_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "config.yaml"
    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(StorageError) as info:
        atomic_write_text(target, "rounds: 3\n")
    assert str(target) in str(info.value) and "No space left on device (ENOSPC" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # the temporary file went with the error


def test_a_row_the_disk_cut_short_is_cut_off(tmp_path, monkeypatch):
    path = tmp_path / "rollouts.jsonl"
    append_jsonl(path, {"round": 0})

    class FillsUp:
        """A file whose disk fills halfway through the next write."""

        def __init__(self, real):
            self.real = real

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.real.close()

        def write(self, text):
            self.real.write(text[:len(text) // 2])
            self.real.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    appending = lambda path, mode="r", *a, **k: FillsUp(open(path, mode, *a, **k)) if "a" in mode else open(path, mode, *a, **k)  # noqa: E731
    monkeypatch.setattr(files, "open", appending, raising=False)
    with pytest.raises(StorageError):
        append_jsonl(path, {"round": 1, "task_id": "a long enough row"})
    monkeypatch.undo()
    assert path.read_text().endswith("\n") and [json.loads(x) for x in path.read_text().splitlines()] == [{"round": 0}]


def test_other_errors_pass_through(tmp_path, monkeypatch):
    monkeypatch.setattr(files.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError) as info:
        atomic_write_text(tmp_path / "x", "y")
    assert not isinstance(info.value, StorageError)


def test_safetensors_rust_errors_are_read_for_their_errno():
    class SafetensorError(Exception):
        pass

    assert storage_errno(SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")) == 28
    assert storage_errno(SafetensorError("invalid header length")) is None


def test_an_unwritable_directory_is_refused(tmp_path, monkeypatch):
    real_open = open

    def read_only(path, *args, **kwargs):
        if Path(path).name.startswith(".write-probe"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", read_only)
    with pytest.raises(StorageError) as info:
        writable(tmp_path)
    assert "Read-only file system" in str(info.value) and str(tmp_path) in str(info.value)


def test_two_processes_probing_one_directory_at_once_do_not_collide(tmp_path, monkeypatch):
    """Ranks resuming one run probe its directory together (a torchrun test once failed on it)."""
    real_fsync, nested = os.fsync, []

    def fsync_then_another_probe(fd):  # another prober writes and removes its probe in between
        real_fsync(fd)
        if not nested:
            nested.append(True)
            writable(tmp_path)

    monkeypatch.setattr(os, "fsync", fsync_then_another_probe)
    writable(tmp_path)
    assert nested and list(tmp_path.iterdir()) == []


def test_a_resume_point_is_verified_and_a_damaged_one_refused(tmp_path):
    points = ResumePoints(tmp_path / "checkpoints")
    points.save({"w": torch.ones(4)}, 0, {"round": 0})
    points.save({"w": torch.full((4,), 2.0)}, 1, {"round": 1})
    record = points.record()
    assert [p.name for p in points.weight_files()] == ["resume-1.safetensors"]  # the previous one went
    assert record["previous"]["round"] == 0 and len(record["sha256"]) == 64
    assert torch.equal(points.load(record)["w"], torch.full((4,), 2.0))
    path = tmp_path / "checkpoints" / "resume-1.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one byte of a tensor flipped: it loads, but is not what was written
    path.write_bytes(bytes(data))
    with pytest.raises(BrokenPoint, match="sha256"):
        points.load(record)
    with open(path, "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(BrokenPoint, match="do not load|sha256"):
        points.load(record)
    path.unlink()
    with pytest.raises(BrokenPoint, match="missing"):
        points.load(record)


def test_one_writer_per_run_directory(tmp_path):
    with RunLock(tmp_path, "seal-run run --resume x"):
        held = json.loads((tmp_path / ".lock").read_text())
        assert held["pid"] == os.getpid() and held["command"] == "seal-run run --resume x"
        probe = ("import sys; from pathlib import Path; from seal_core.runs.lock import RunLock, RunInUse\n"
                 "try:\n    RunLock(Path(sys.argv[1]), 'second').acquire()\nexcept RunInUse as e:\n"
                 "    print(e); sys.exit(3)\n")
        done = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True)
        assert done.returncode == 3 and f"process {os.getpid()}" in done.stdout
    assert not (tmp_path / ".lock").exists()  # removed on exit


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from seal_core.runs.lock import RunLock; RunLock(Path(sys.argv[1]), 'first').acquire(); "
                               "print('held', flush=True); time.sleep(60)", str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunInUse):
        RunLock(tmp_path, "second").acquire()
    holder.kill()
    holder.wait()
    assert (tmp_path / ".lock").exists()  # the file stays, the lock does not
    with RunLock(tmp_path, "third"):
        pass
