"""One writer per run directory.

A command that writes a run directory (``seal-run run``, ``--resume`` included, ``adapt``,
``compare``, ``baselines``) holds an exclusive lock on ``DIR/.lock`` while it runs: ``flock`` on
the open file, which names the host, the process, the command and when it started. A second
command on the same directory (a scheduler's requeue while the first job still runs, a second
terminal) stops at once with a message naming the process that holds it. The lock file is removed
on exit; a process killed without removing it leaves a file but no lock (the kernel releases a
``flock`` with its owner), so the next resume goes ahead.

``flock`` holds between processes of one machine, and on network file systems that support it
(NFSv4 maps it to byte-range locks; some older mounts accept it without locking): see
docs/reliability.md.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from seal_core.api.errors import SealError
from seal_core.runtime.files import writing

LOCK_NAME = ".lock"


class RunInUse(SealError):
    """Another process holds the run directory's lock."""


class RunLock:
    """The lock of one run directory; a context manager (``with RunLock(dir, command):``)."""

    def __init__(self, directory: Path, command: str):
        self.path, self.command = Path(directory) / LOCK_NAME, command
        self._fd: int | None = None

    def holder(self) -> dict[str, Any]:
        """What the lock file says of its holder (empty if it says nothing readable)."""
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        with writing(self.path):
            self._acquire()

    def _acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                who = self.holder()
                raise RunInUse(
                    f"{self.path.parent} is in use by process {who.get('pid', '?')} on {who.get('host', '?')} "
                    f"(`{who.get('command', '?')}`, since {who.get('since', '?')}): one command writes a run directory "
                    "at a time. Wait for it to finish, or stop it (Ctrl-C, or kill the process), then run this again; "
                    "a process that died no longer holds the lock.") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a file its last holder removed between our open and our lock
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "command": self.command,
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # removed while still held: no second holder can slip in
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
