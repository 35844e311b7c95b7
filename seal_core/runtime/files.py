"""Durable writes: a file or a directory appears whole or not at all, a JSON line is on disk
before the call returns, and a line a crash tore off is dropped, not misread.

Every file the run store, checkpoints and commands write goes through these functions.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from seal_core.api.errors import SealError


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
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
    """Append one JSON line and make it durable before returning."""
    drop_torn_tail(path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


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
    """Rows of a JSONL file; a torn last line (a crash mid-write) is dropped."""
    if not path.is_file():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise SealError(f"{path}: line {i + 1} is not valid JSON; the file was edited or damaged.")
    return rows
