"""Plugin ``trackers``: a run's metrics, rewards and self-edits on TensorBoard, wandb and trackio.

``report_to`` (a top-level config key, as in transformers and TRL) names the trackers:
``tensorboard`` (event files under ``RUN_DIR/tensorboard``, through torch's ``SummaryWriter``),
``wandb`` and ``trackio`` (when installed), or ``all`` (every one installed). The default,
``none``, reports nothing. What each tracker receives, from the engine's event hooks:

- every round's metrics line as scalars ``round/<key>`` at step = round;
- every scored rollout's ``rollout/reward``, ``rollout/score_before`` and ``rollout/score_after``
  at step = the rollout's line in rollouts.jsonl;
- at the end of a round, a table of that round's self-edits (task, edit index, reward, scores,
  the self-edit) as ``self_edits/round_N``.

wandb runs in ``WANDB_MODE`` (offline unless that variable says otherwise: nothing is sent during
the run; ``wandb sync RUN_DIR/wandb/offline-run-*`` uploads it later); its project is
``WANDB_PROJECT`` (default ``seal``). trackio keeps its data locally (its own default). A tracker
that cannot start (not installed) or fails while logging (a full disk, a network error) logs one
warning and is dropped for the rest of the run: it never stops or slows the run.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import structlog

from seal_core import Rollout, hookimpl
from seal_core.runtime.files import read_jsonl

log = structlog.get_logger(__name__)

TABLE_COLUMNS = ["round", "task_id", "edit_index", "reward", "score_before", "score_after", "edit"]
INSTALLED_AS = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}  # tracker -> module


def axis(values: dict[str, float]) -> str:
    """The x-axis key of a group of scalars for trackers with one global step: ``round/step`` or
    ``rollout/step``, from the keys' prefix."""
    return next(iter(values), "step").split("/")[0] + "/step"


class TensorBoard:
    """Event files under ``RUN_DIR/tensorboard`` (``tensorboard --logdir RUN_DIR/tensorboard``)."""

    name = "tensorboard"

    def __init__(self, run_dir: Path, config: dict[str, Any]):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def scalars(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def table(self, key: str, rows: list[list[Any]], step: int) -> None:
        def cell(value: Any) -> str:
            return str(value).replace("|", "\\|").replace("\n", "<br>")

        lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
        self.writer.add_text(key, "\n".join(lines), step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class Wandb:
    """A wandb run in ``WANDB_MODE`` (default here: offline), files under ``RUN_DIR/wandb``."""

    name = "wandb"

    def __init__(self, run_dir: Path, config: dict[str, Any]):
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "seal"), name=run_dir.name,
                              dir=str(run_dir), config=config, mode=os.environ.get("WANDB_MODE", "offline"))
        for prefix in ("round", "rollout"):  # two x-axes: wandb's own step must only grow
            self.run.define_metric(f"{prefix}/*", step_metric=f"{prefix}/step")

    def scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log({**values, axis(values): step})

    def table(self, key: str, rows: list[list[Any]], step: int) -> None:
        self.run.log({key: self.wandb.Table(columns=TABLE_COLUMNS, data=rows)})

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.run.finish()


class Trackio:
    """A trackio run in project ``TRACKIO_PROJECT`` (default ``seal``), stored locally."""

    name = "trackio"

    def __init__(self, run_dir: Path, config: dict[str, Any]):
        import trackio

        self.trackio = trackio
        self.run = trackio.init(project=os.environ.get("TRACKIO_PROJECT", "seal"), name=run_dir.name, config=config)

    def scalars(self, values: dict[str, float], step: int) -> None:
        self.trackio.log({**values, axis(values): step})

    def table(self, key: str, rows: list[list[Any]], step: int) -> None:
        self.trackio.log({key: self.trackio.Table(columns=TABLE_COLUMNS, data=rows)})

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.trackio.finish()


TRACKER_CLASSES = {cls.name: cls for cls in (TensorBoard, Wandb, Trackio)}


def installed(name: str) -> bool:
    """Whether the library tracker ``name`` needs can be imported (without importing it)."""
    return importlib.util.find_spec(INSTALLED_AS[name]) is not None


def numeric(values: dict[str, Any], prefix: str) -> dict[str, float]:
    """The int and float entries of ``values`` (booleans and anything else left out), prefixed."""
    return {f"{prefix}{k}": float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


class RunTrackers:
    """The trackers of one run directory; a tracker that raises is warned about once and dropped."""

    def __init__(self, run_dir: Path, config: dict[str, Any]):
        wanted = list(config.get("report_to") or [])
        if "all" in wanted:
            wanted = [name for name in TRACKER_CLASSES if installed(name)]
        self.run_dir, self.rounds = run_dir, config.get("rounds")
        self.step = len(read_jsonl(run_dir / "rollouts.jsonl"))  # a resumed run continues the count
        self.edits: dict[int, list[list[Any]]] = {}
        self.live: list[Any] = []
        for name in dict.fromkeys(wanted):
            if not installed(name):
                log.warning("tracker not installed; the run goes on without it", tracker=name,
                            fix=f"pip install {INSTALLED_AS[name]}")
                continue
            self._try(name, lambda: self.live.append(TRACKER_CLASSES[name](run_dir, config)))

    def _try(self, name: str, call: Any, tracker: Any = None) -> None:
        try:
            call()
        except Exception as exc:  # never the run's end: warn once, drop the tracker
            log.warning("tracker failed; the run goes on without it", tracker=name, error=repr(exc))
            if tracker is not None and tracker in self.live:
                self.live.remove(tracker)

    def each(self, method: str, *args: Any) -> None:
        for tracker in list(self.live):
            self._try(tracker.name, lambda: getattr(tracker, method)(*args), tracker)

    def rollout(self, rollout: Rollout) -> None:
        values = {"reward": rollout.reward, "score_before": rollout.score_before, "score_after": rollout.score_after}
        self.each("scalars", numeric(values, "rollout/"), self.step)
        self.step += 1
        self.edits.setdefault(rollout.round, []).append(
            [rollout.round, rollout.task_id, rollout.edit_index, rollout.reward, rollout.score_before,
             rollout.score_after, rollout.edit])

    def round(self, rnd: int, metrics: dict[str, Any]) -> None:
        self.each("scalars", numeric({k: v for k, v in metrics.items() if k != "round"}, "round/"), rnd)
        rows = self.edits.pop(rnd, [])
        if rows:
            self.each("table", f"self_edits/round_{rnd}", rows, rnd)
        self.each("flush")

    def close(self) -> None:
        self.each("close")
        self.live = []


_RUNS: dict[str, RunTrackers] = {}  # run directory -> its trackers (one process may run several)


@hookimpl
def seal_run_started(run_dir: Path, config: dict[str, Any]) -> None:
    previous = _RUNS.pop(str(run_dir), None)
    if previous is not None:
        previous.close()
    if config.get("report_to"):
        _RUNS[str(run_dir)] = RunTrackers(Path(run_dir), config)


@hookimpl
def seal_rollout_scored(rollout: Rollout, run_dir: Path) -> None:
    trackers = _RUNS.get(str(run_dir))
    if trackers is not None:
        trackers.rollout(rollout)


@hookimpl
def seal_round_finished(round: int, metrics: dict[str, Any], run_dir: Path) -> None:
    trackers = _RUNS.get(str(run_dir))
    if trackers is None:
        return
    trackers.round(round, metrics)
    if trackers.rounds is not None and round >= trackers.rounds:  # the run's last event
        _RUNS.pop(str(run_dir)).close()
