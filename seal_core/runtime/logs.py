"""structlog set-up: readable lines on the console, JSON lines in the run directory.

Console lines go through ``tqdm.write`` so that they do not tear the progress bars.
``SEAL_LOG_LEVEL`` (debug, info, warning) sets the console level; the file gets everything.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import structlog
from tqdm import tqdm

from seal_core.runtime.files import StorageError, storage_errno


class _TqdmLogger:
    def __init__(self, file: TextIO):
        self._file = file

    def msg(self, message: str) -> None:
        tqdm.write(message, file=self._file)

    info = debug = warning = error = critical = exception = log = msg


class _JsonTee:
    """Writes every event as one JSON line to the run's log.jsonl, then lets it go on."""

    def __init__(self) -> None:
        self.file: TextIO | None = None

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        if self.file is not None:
            try:
                self.file.write(json.dumps(event, default=str) + "\n")
                self.file.flush()
            except OSError as exc:  # a full disk ends the run with a user error naming the file
                self.file, path = None, Path(self.file.name)
                number = storage_errno(exc)
                if number is None:
                    raise
                raise StorageError(path, number, type(exc).__name__) from None
        level = logging.getLevelName(event.get("level", "info").upper())
        if isinstance(level, int) and level < _console_level():
            raise structlog.DropEvent
        return event


_tee = _JsonTee()


def _console_level() -> int:
    name = os.environ.get("SEAL_LOG_LEVEL", "info").upper()
    level = logging.getLevelName(name)
    return level if isinstance(level, int) else logging.INFO


def configure(log_file: Path | None = None) -> None:
    """Log to the console; also to ``log_file`` as JSON lines when given."""
    if _tee.file is not None:
        _tee.file.close()
        _tee.file = None
    if log_file is not None:
        _tee.file = open(log_file, "a", encoding="utf-8")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _tee,
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        logger_factory=lambda *args: _TqdmLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
