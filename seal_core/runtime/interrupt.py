"""Ctrl-C (SIGINT) and SIGTERM as a request: finish the current inner update, save, stop."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from collections.abc import Iterator


class Interrupted(Exception):
    """Raised at a safe point after the user asked the run to stop."""


class StopFlag:
    """Set by the SIGINT handler; the engine calls :meth:`check` after each unit of work."""

    def __init__(self) -> None:
        self.requested = False

    def check(self) -> None:
        if self.requested:
            raise Interrupted

    @contextmanager
    def on_sigint(self) -> Iterator["StopFlag"]:
        """While inside, the first Ctrl-C (SIGINT) or SIGTERM (what a scheduler sends before it kills
        a job) sets the flag; a second one interrupts at once."""

        def handler(signum, frame):  # noqa: ARG001
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            import structlog

            structlog.get_logger("seal").warning(
                f"{signal.Signals(signum).name}: stopping after the current inner update "
                "(send it again to abort now)"
            )

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
