"""Durable writes: a file or a directory appears whole or not at all, a JSON line is on disk
before the call returns, and a line a crash tore off is dropped, not misread.

Every file the run store, checkpoints and commands write goes through these functions (or
through :func:`writing`, for a library that writes itself: safetensors, ``save_pretrained``,
matplotlib). A write that fails because the disk is full, read-only or not ours (ENOSPC, EDQUOT,
EROFS, EACCES, EPERM) raises :class:`StorageError`, a user error naming the path, once its
temporary file is gone: what was written before stays, and nothing is left that would be
mistaken for a finished file on resume.

``SEAL_FAIL_WRITE=N`` (a fault-injection point, as databases keep them) makes the N-th guarded
write of the process fail with ENOSPC before it starts: benchmarks/faults.py and the tests run a
whole run once per N, so that the disk fills at every write site in turn.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from seal_core.api.errors import SealError

#: errno values that mean the storage, not the program, is at fault
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
_RUST_OS_ERROR = re.compile(r"os error (\d+)")  # how safetensors' Rust I/O errors name the errno


class StorageError(SealError):
    """A write failed for a reason outside the program (a full disk, a read-only or foreign
    directory). ``path`` is what could not be written; the commands add how to continue."""

    def __init__(self, path: Path, error_number: int, detail: str):
        self.path, self.errno = Path(path), error_number
        name = errno.errorcode.get(error_number, str(error_number))
        super().__init__(f"Could not write {path}: {os.strerror(error_number)} ({name}; {detail}).")


def storage_errno(exc: BaseException) -> int | None:
    """The errno of ``exc`` when it says the storage is at fault, else None (safetensors raises
    its own error type, which names the OS error in its text)."""
    number = getattr(exc, "errno", None)
    if number is None:
        found = _RUST_OS_ERROR.search(str(exc))
        number = int(found.group(1)) if found else None
    return number if number in STORAGE_ERRNOS else None


_guarded_writes = itertools.count(1)


def reset_injected_failure() -> None:
    """Count guarded writes from 1 again (a test that runs several runs in one process)."""
    global _guarded_writes
    _guarded_writes = itertools.count(1)


def _fails_now(path: Path) -> bool:
    """Whether this guarded write of ``path`` is the one SEAL_FAIL_WRITE names (tests replace
    this function to see or choose the write sites)."""
    wanted = os.environ.get("SEAL_FAIL_WRITE")
    return bool(wanted) and next(_guarded_writes) == int(wanted)


@contextmanager
def writing(path: Path, *leftovers: Path) -> Iterator[None]:
    """Inside: writes to ``path``; a storage failure becomes :class:`StorageError` once the
    ``leftovers`` (temporary files or folders of the write) are removed. Other errors pass."""
    try:
        if _fails_now(Path(path)):
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        yield
    except Exception as exc:
        number = storage_errno(exc)
        for leftover in leftovers:
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
        if number is None:
            raise
        raise StorageError(path, number, type(exc).__name__) from None


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path, tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def save_figure(fig: Any, path: Path) -> None:
    """A matplotlib figure as ``path`` (PNG) through a temporary file and a rename; the figure is
    closed either way."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        with writing(path, tmp):
            fig.savefig(tmp)
            os.replace(tmp, path)
    finally:
        plt.close(fig)


def fsync_tree(folder: Path) -> None:
    """Make every file below ``folder`` durable (before the folder is renamed into place)."""
    for file in folder.rglob("*"):
        if file.is_file():
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())


def build_atomically(target: Path, build: Callable[[Path], Any]) -> Path:
    """Run ``build(tmpdir)`` and move the result to ``target`` by one rename, so ``target`` is
    either absent or complete; an existing ``target`` is kept as it is (another process may win)."""
    if target.is_dir():
        return target
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with writing(target, tmp):
            build(tmp)
            try:
                os.rename(tmp, target)
            except OSError:
                if not target.is_dir():
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line and make it durable before returning (a line the disk cut short is
    cut off again, so the file ends with whole lines)."""
    drop_torn_tail(path)
    with writing(path):
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            drop_torn_tail(path)


def drop_torn_tail(path: Path) -> None:
    """Cut a last line that a crash left without its newline, so the next row starts clean."""
    if not path.is_file() or not path.stat().st_size:
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return
        fh.truncate(data.rfind(b"\n") + 1)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a torn last line (a crash mid-write) is dropped, and a damaged line
    elsewhere is a :class:`CorruptLine` naming it."""
    if not path.is_file():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise CorruptLine(path, i + 1) from None
    return rows


class CorruptLine(SealError):
    """A line in the middle of a JSONL file that is not JSON: the file was edited or damaged."""

    def __init__(self, path: Path, line: int):
        self.path, self.line = Path(path), line
        super().__init__(f"{path}: line {line} is not valid JSON; the file was edited or damaged.")


def writable(directory: Path) -> None:
    """Refuse a directory this process cannot write (read-only, not ours, a full disk), before any
    work: a probe file is written, made durable and removed. The probe's name is the process's own,
    so that ranks probing one run directory at once do not remove each other's."""
    probe = directory / f".write-probe-{os.getpid()}-{os.urandom(4).hex()}"
    with writing(directory, probe):
        with open(probe, "w", encoding="utf-8") as fh:
            fh.write("seal")
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()


def sha256_of(path: Path) -> str:
    """The file's sha256, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
