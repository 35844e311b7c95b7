"""What the tests that stop and resume a run share: a stand-in for SIGKILL and the CLI arguments
of a run with ``--set`` overrides."""

from __future__ import annotations

from pathlib import Path


class Killed(BaseException):
    """Stands for SIGKILL: nothing after the raise point runs, nothing catches it."""


def run_args(run_dir: Path, overrides: list[str]) -> list[str]:
    """``seal-run`` arguments: ``run --run-dir RUN_DIR`` and one ``--set`` per override."""
    args = ["run", "--run-dir", str(run_dir)]
    for item in overrides:
        args += ["--set", item]
    return args
