"""The run directory: what a run writes, and how (append + fsync, or temp file + rename).

    config.yaml        the resolved config
    rollouts.jsonl     one scored self-edit per line, appended as each is scored
    evaluations.jsonl  one held-out task per line and round: base and adapted scores
    metrics.jsonl      one line per round (round 0: before any RL update)
    log.jsonl          structlog events
    results.md         the metrics table; plot.png: eval scores per round
    checkpoints/       policy/ (and policy-roundN/): save_pretrained model directories with a
                       model card (seal_core/runs/checkpoints.py); while a run is unfinished also
                       resume.safetensors + resume.json (see seal_core/runs/resume.py)
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Callable

from seal_core.api.errors import SealError
from seal_core.runtime import distributed
from seal_core.runs.points import ALGORITHM_PREFIX, ResumePoints, write_weights
from seal_core.runtime.files import StorageError, append_jsonl, atomic_write_text, read_jsonl, writable, writing
from seal_core.api.types import Rollout


RUNS_DIR = Path("runs")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def checkpoint_tensors(model: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``model``'s base weights (adapters excluded, tied weights once) on the CPU, and ``extra``
    (an RL algorithm's tensors) under :data:`ALGORITHM_PREFIX`: what a resume point holds."""
    from seal_core.models.loading import plain_state_dict

    tensors, seen = {}, set()
    for key, value in plain_state_dict(model).items():
        if value.data_ptr() in seen:  # tied weights (embeddings / lm_head): stored once
            continue
        seen.add(value.data_ptr())
        tensors[key] = value.detach().contiguous().cpu()
    for key, value in (extra or {}).items():
        tensors[ALGORITHM_PREFIX + key] = value.detach().contiguous().cpu()
    return tensors


def default_run_dir(domain: str, algorithm: str, parent: Path = RUNS_DIR) -> Path:
    return parent / f"{time.strftime('%Y%m%d-%H%M%S')}-{domain}-{algorithm}"


def named_run_dir(name: str, parent: Path = RUNS_DIR) -> Path:
    """``parent/name``; a name that would leave ``parent`` (``..``, ``/``, ``~``) is refused."""
    target = (parent / name).resolve()
    if not _NAME.match(name) or name in (".", "..") or target.parent != parent.resolve():
        raise SealError(
            f"Run name {name!r} is not allowed: use letters, digits, '.', '_' and '-' (no path "
            "separators, not starting with '.'), or pass a directory with --run-dir."
        )
    return parent / name


class RunStore:
    """Reads and writes one run directory."""

    #: whether this store writes (False for the :class:`FollowerStore` of a rank other than 0):
    #: whoever writes something beside the store's own files (results, checkpoints) checks it
    writes: bool = True

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)

    @classmethod
    def create(cls, run_dir: Path, config_yaml: str | None = None) -> "RunStore":
        """A new run directory (it must not hold files), with ``config_yaml`` as its config.yaml at
        once: from then on ``--resume`` continues it, even when the run fails before its first row
        (a model that does not load, a crash)."""
        run_dir = Path(run_dir)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise SealError(
                f"Run directory '{run_dir}' already holds files. Pass a new --run-dir, or remove "
                "that directory if you no longer need it."
            )
        store = cls(run_dir)
        try:
            with writing(run_dir):
                run_dir.mkdir(parents=True, exist_ok=True)
            writable(run_dir)  # a directory we cannot write is refused before any model loads
            if config_yaml is not None:
                store.write_config(config_yaml)
        except StorageError as exc:
            raise SealError(f"{exc} Nothing has run yet. Free space (or make the directory writable), or choose a "
                            "directory on a disk that can be written, and start again.") from None
        return store

    @classmethod
    def existing(cls, run_dir: Path) -> "RunStore":
        """A run directory to resume: it must hold the config.yaml of a started run."""
        store = cls(run_dir)
        if not store.config_path.is_file():
            raise SealError(
                f"'{run_dir}' is not a run directory to resume (no config.yaml). Pass the directory "
                "a run was started in, as printed when it stopped."
            )
        try:
            writable(store.dir)  # before any model loads: the resume will have to write
        except StorageError as exc:
            raise SealError(f"{exc} Nothing was changed. Free space (or make {run_dir} writable again), then run "
                            "the same command again.") from None
        return store

    # paths
    @property
    def config_path(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def rollouts_path(self) -> Path:
        return self.dir / "rollouts.jsonl"

    @property
    def evaluations_path(self) -> Path:
        return self.dir / "evaluations.jsonl"

    @property
    def metrics_path(self) -> Path:
        return self.dir / "metrics.jsonl"

    @property
    def log_path(self) -> Path:
        return self.dir / "log.jsonl"

    # writing
    def write_config(self, yaml_text: str) -> None:
        atomic_write_text(self.config_path, yaml_text)

    def append_rollout(self, rollout: Rollout) -> None:
        append_jsonl(self.rollouts_path, rollout.to_json())

    def append_evaluation(self, row: dict[str, Any]) -> None:
        append_jsonl(self.evaluations_path, row)

    def append_metrics(self, metrics: dict[str, Any]) -> None:
        append_jsonl(self.metrics_path, metrics)

    def save_checkpoint(self, model: Any, name: str, extra: dict[str, Any] | None = None) -> Path:
        """Base weights of ``model`` (adapters excluded) as ``checkpoints/NAME.safetensors``, a
        bare state dict; ``extra``: more tensors for the same file (an RL algorithm's state)."""
        path = self.dir / "checkpoints" / f"{name}.safetensors"
        with writing(path.parent):
            path.parent.mkdir(exist_ok=True)
        write_weights(checkpoint_tensors(model, extra), path)
        return path

    # the resume point: the generator's weights after the last RL update, and that round's metrics
    @property
    def points(self) -> ResumePoints:
        return ResumePoints(self.dir / "checkpoints")

    @property
    def resume_path(self) -> Path:
        return self.points.record_path

    def save_resume_point(self, model: Any, round: int, metrics: dict[str, Any],
                          algorithm_state: dict[str, Any] | None = None) -> None:
        """Weights (with ``algorithm_state``, the RL algorithm's own tensors, in the same file)
        first, read back and checksummed, then the record naming them (:mod:`seal_core.runs.points`)."""
        self.points.save(checkpoint_tensors(model, algorithm_state), round, metrics)

    def read_resume_point(self) -> dict[str, Any] | None:
        """The record of the latest resume point (None: none), BrokenPoint when it is unreadable."""
        return self.points.record()

    def load_resume_point(self, loaded: Any, entry: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the weights of the point ``entry`` names (default: the latest) into ``loaded``, in
        place, once their checksum holds; returns the algorithm state saved with them (empty if
        none was). BrokenPoint when the weights are missing or damaged."""
        from seal_core.models.loading import load_weights

        state = self.points.load(entry if entry is not None else self.points.record() or {})
        algorithm = {k.removeprefix(ALGORITHM_PREFIX): state.pop(k) for k in list(state) if k.startswith(ALGORITHM_PREFIX)}
        load_weights(loaded, state)
        return algorithm

    def drop_resume_point(self) -> None:
        """A finished run needs no resume point (it is as large as the model)."""
        self.points.drop()

    # reading
    def rollouts(self) -> list[Rollout]:
        return [Rollout.from_json(r) for r in read_jsonl(self.rollouts_path)]

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)


class FollowerStore(RunStore):
    """The run store of a rank other than 0: it knows the run directory and writes nothing.

    Reading the resume state is rank 0's job too (it broadcasts it), so the directory need not
    be visible from other nodes.
    """

    writes = False

    def write_config(self, yaml_text: str) -> None:
        pass

    def append_rollout(self, rollout: Any) -> None:
        pass

    def append_evaluation(self, row: dict[str, Any]) -> None:
        pass

    def append_metrics(self, metrics: dict[str, Any]) -> None:
        pass

    def save_checkpoint(self, model: Any, name: str, extra: dict[str, Any] | None = None):
        return self.dir / "checkpoints" / f"{name}.safetensors"

    def save_resume_point(self, model: Any, round: int, metrics: dict[str, Any],
                          algorithm_state: dict[str, Any] | None = None) -> None:
        pass

    def load_resume_point(self, loaded: Any, entry: dict[str, Any] | None = None) -> dict[str, Any]:
        return {}  # rank 0 loads it and broadcasts the weights and the algorithm's state

    def drop_resume_point(self) -> None:
        pass


def open_store(make: Callable[[], RunStore]) -> RunStore:
    """Rank 0's run store from ``make()``, a :class:`FollowerStore` of the same directory on the
    other ranks (which never call ``make``: it creates the directory, and a default directory's
    name holds the time, which ranks could read a second apart). A user error raised by
    ``make`` on rank 0 is raised on every rank, so that none waits for the others."""
    if not distributed.active():
        return make()
    store, error = None, None
    if distributed.is_main():
        try:
            store = make()
        except SealError as exc:
            error = str(exc)
    path, error = distributed.broadcast((None if store is None else str(store.dir), error))
    if error is not None:
        raise SealError(error)
    return store if store is not None else FollowerStore(Path(path))
