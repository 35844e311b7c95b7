"""What a run directory already holds, so a resumed run redoes and loses nothing.

A run writes, in this order: each held-out evaluation and each scored rollout as it is done
(appended, fsynced); after a round's RL update, the updated generator weights and the round's
metrics so far (a checksummed resume point, :mod:`seal_core.runs.points`); then the round's
metrics line. Killed anywhere in between, the directory tells where to pick up: finished rounds
are kept, finished rollouts and evaluations are not redone, and a finished update is not applied
twice. What the RL algorithm keeps between rounds (:meth:`seal_core.RLAlgorithm.state_dict`, such
as ``ppo``'s value head) is saved in the same file as the weights and restored with them.

Damage is survived where the saved rows allow it: a resume point whose weights are missing or
not the bytes its record names falls back to the previous point, or to the run's initial weights,
and the updates in between are redone from their rounds' saved rollouts (:meth:`Engine.restore
<seal_core.loop.engine.Engine.restore>`: no generation, and on a CPU the same weights as the
uninterrupted run). A damaged line of rollouts.jsonl or evaluations.jsonl in the unfinished
round is dropped and recomputed (:func:`repair_rows`); one in a finished round stops the resume
with the line and the choices.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from seal_core.api.errors import SealError
from seal_core.api.types import LoadedModel, Rollout
from seal_core.models.loading import broadcast_weights
from seal_core.runs.points import BrokenPoint
from seal_core.runs.store import RunStore
from seal_core.runtime import distributed
from seal_core.runtime.files import CorruptLine, atomic_write_text, read_jsonl

log = structlog.get_logger(__name__)


def save_resume_point(store: RunStore, algorithm: Any, policy: LoadedModel, rnd: int, metrics: dict[str, Any]) -> None:
    """The resume point after round ``rnd``'s update: ``policy``'s weights, ``algorithm``'s state
    for it (an algorithm without :meth:`~seal_core.RLAlgorithm.state_dict` has none) and ``metrics``."""
    state = algorithm.state_dict(policy) if hasattr(algorithm, "state_dict") else {}
    store.save_resume_point(policy.model, rnd, metrics, state)


def load_resume_point(store: RunStore, algorithm: Any, policy: LoadedModel,
                      candidates: list[dict[str, Any]] | None = None) -> tuple[int, list[str]]:
    """Write the newest good point among ``candidates`` (default: the latest point) into
    ``policy`` and give ``algorithm`` its state back, on every rank (rank 0 reads the files and
    broadcasts). Returns the round whose update the weights now hold (-1: none loaded, the policy
    keeps its initial weights) and why each newer candidate was passed over."""
    found, state, passed = -1, {}, []
    if distributed.is_main():
        for entry in candidates if candidates is not None else [store.read_resume_point() or {}]:
            try:
                state = store.load_resume_point(policy, entry)
            except BrokenPoint as exc:
                passed.append(str(exc))
                continue
            found = entry["round"]
            break
    found, passed, state = distributed.broadcast((found, passed, state))
    broadcast_weights(policy.model)
    if state and hasattr(algorithm, "load_state_dict"):
        algorithm.load_state_dict(policy, state)
    return found, passed


def repair_rows(path: Path, unfinished: int, per_round: int | None = None) -> int:
    """Drop the damaged lines of ``path`` (rollouts or evaluations) that belong to the unfinished
    round: both neighbours are of round ``unfinished`` or later, or the line follows the last row
    of a finished round that holds all its ``per_round`` rows (so the line is the next round's).
    The resumed round recomputes them. Returns how many were dropped. A damaged line among a
    finished round's rows raises a :class:`SealError` naming it and the choices."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    rounds: list[int | None] = []
    for line in lines:
        try:
            rounds.append(json.loads(line)["round"] if line.strip() else None)
        except (json.JSONDecodeError, TypeError, KeyError):
            rounds.append(-1)  # damaged
    keep = []
    for i, (line, rnd) in enumerate(zip(lines, rounds)):
        if rnd != -1:
            keep.append(line)
            continue
        before = next((r for r in reversed(rounds[:i]) if r not in (None, -1)), None)
        after = next((r for r in rounds[i + 1:] if r not in (None, -1)), None)
        before_whole = before is not None and per_round is not None and rounds.count(before) == per_round
        if (before is None or before >= unfinished or before_whole) and (after is None or after >= unfinished):
            log.warning("damaged line dropped; the resumed round recomputes it", file=str(path), line=i + 1)
            continue
        raise SealError(
            f"{path}: line {i + 1} is damaged (not valid JSON) and lies among the rows of finished rounds (between "
            f"rounds {before} and {after}), which the run does not recompute. Choices: restore {path.name} from a "
            f"copy; or delete line {i + 1} and accept that round {before}'s rows miss one (the results of finished "
            "rounds are already in metrics.jsonl); or start a new run.")
    if len(keep) != len(lines):
        atomic_write_text(path, "".join(keep))
    return len(lines) - len(keep)


@dataclass
class ResumeState:
    """The finished work found in a run directory (empty for a new run)."""

    metrics: list[dict[str, Any]] = field(default_factory=list)  # finished rounds
    evaluations: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)  # round -> task_id -> row
    rollouts: dict[int, dict[tuple[str, int], Rollout]] = field(default_factory=dict)  # round -> (task, edit) -> rollout
    updated_round: int | None = None  # the unfinished round whose update the latest point holds
    pending_metrics: dict[str, Any] = field(default_factory=dict)  # that round's metrics, saved with it
    point: dict[str, Any] | None = None  # the latest resume point's record
    weights_round: int = -1  # the last round whose update the weights must hold (-1: none)

    @property
    def next_round(self) -> int:
        return len(self.metrics)

    def finished(self, rounds: int) -> bool:
        """Every round has its metrics line and no resume point waits for the final checkpoint."""
        return self.next_round > rounds and self.point is None

    def candidates(self) -> list[dict[str, Any]]:
        """The resume points to try, newest first: the latest, then the one it replaced."""
        found = [self.point] if self.point else []
        if self.point and self.point.get("previous"):
            found.append(self.point["previous"])
        return [entry for entry in found if entry.get("round") is not None and entry["round"] <= self.weights_round]

    @classmethod
    def read(cls, store: RunStore, rounds: int, rows_per_round: dict[str, int] | None = None) -> "ResumeState":
        """The state of ``store``'s directory for a run of ``rounds`` rounds; ``rows_per_round``:
        how many rows a finished round has in each file, by name (to place a damaged line)."""
        state = cls(metrics=store.metrics())
        for i, m in enumerate(state.metrics):
            if m.get("round") != i:
                raise SealError(f"{store.metrics_path}: line {i + 1} is round {m.get('round')}, expected {i}; the file was edited.")
        dropped = 0
        for path in (store.evaluations_path, store.rollouts_path):
            try:
                read_jsonl(path)
            except CorruptLine:
                dropped += repair_rows(path, state.next_round, (rows_per_round or {}).get(path.name))
        evaluations: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
        for row in read_jsonl(store.evaluations_path):
            evaluations[row["round"]][row["task_id"]] = row
        rollouts: dict[int, dict[tuple[str, int], Rollout]] = defaultdict(dict)
        for r in store.rollouts():
            rollouts[r.round][(r.task_id, r.edit_index)] = r
        state.evaluations, state.rollouts = dict(evaluations), dict(rollouts)
        try:
            state.point = store.read_resume_point()
        except BrokenPoint as exc:  # an unreadable record: the updates it named are redone
            log.warning("resume point record unreadable; its updates are redone from the saved rollouts", error=str(exc))
        finished_updates = min(state.next_round, rounds) - 1  # rounds 0..next-1 ran their updates
        if state.point is not None:
            if state.point["round"] > state.next_round:
                raise SealError(f"{store.dir}: resume.json names round {state.point['round']}, past the finished "
                                "rounds; the directory was edited.")
            if state.point["round"] == state.next_round:  # killed after this round's update: all but the line is saved
                state.updated_round, state.pending_metrics = state.point["round"], state.point.get("metrics", {})
        if dropped and state.updated_round is not None:
            # a dropped row of that round is recomputed with the weights from before its update:
            # the point after it is set aside, and the update redone once the row is back
            log.warning("a damaged row belongs to a round whose update is saved; that update is redone",
                        round=state.updated_round)
            state.updated_round, state.pending_metrics = None, {}
        state.weights_round = max(finished_updates, -1 if state.updated_round is None else state.updated_round)
        return state
