"""``SEAL_TRACE_HOOKS=1``: every hook call logged as a ``hook call`` event of logger ``seal.trace``
(the hook, the plugins that implement it in call order, the arguments, the seconds it took), through
structlog, so that during a run the calls land in the run's ``log.jsonl`` too."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pluggy

TRACE_ENV = "SEAL_TRACE_HOOKS"


def trace_requested() -> bool:
    """Whether ``SEAL_TRACE_HOOKS`` asks for hook tracing (1, true, yes, on)."""
    return os.environ.get(TRACE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def shorten(text: str, limit: int = 80) -> str:
    """``text``, cut to ``limit`` characters with "..." when longer."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _trace_value(value: Any) -> Any:
    """A hook argument as the trace shows it: numbers as they are, the rest as a short text."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return shorten(str(value) if isinstance(value, (str, Path)) else repr(value))


class HookTracer:
    """pluggy hook-call monitoring that logs one ``hook call`` event per call, when it returns."""

    def __init__(self) -> None:
        import structlog

        self.log = structlog.get_logger("seal.trace")
        self._started: list[float] = []

    def before(self, hook: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
        self._started.append(time.perf_counter())

    def after(self, outcome: pluggy.Result, hook: str, impls: Sequence[pluggy.HookImpl],
              kwargs: Mapping[str, Any]) -> None:
        seconds = time.perf_counter() - self._started.pop()
        fields: dict[str, Any] = {
            "logger": "seal.trace",
            "hook": hook,
            "plugins": [impl.plugin_name for impl in reversed(impls)],  # in call order
            "args": {k: _trace_value(v) for k, v in kwargs.items()},
            "seconds": round(seconds, 6),
        }
        if outcome.exception is not None:
            fields["error"] = repr(outcome.exception)
        self.log.info("hook call", **fields)
