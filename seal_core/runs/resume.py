"""What a run directory already holds, so a resumed run redoes and loses nothing.

A run writes, in this order: each held-out evaluation and each scored rollout as it is done
(appended, fsynced); after a round's RL update, the updated generator weights and the round's
metrics so far (``checkpoints/resume.safetensors`` + ``resume.json``, each through a temporary
file and a rename); then the round's metrics line. Killed anywhere in between, the directory
tells where to pick up: finished rounds are kept, finished rollouts and evaluations are not
redone, and a finished update is not applied twice. What the RL algorithm keeps between rounds
(:meth:`seal_core.RLAlgorithm.state_dict`, such as ``ppo``'s value head) is saved in the same
file as the weights (:func:`save_resume_point`) and restored with them (:func:`load_resume_point`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from seal_core.runtime import distributed
from seal_core.api.errors import SealError
from seal_core.models.loading import broadcast_weights
from seal_core.runs.store import RunStore
from seal_core.runtime.files import read_jsonl
from seal_core.api.types import LoadedModel, Rollout


def save_resume_point(store: RunStore, algorithm: Any, policy: LoadedModel, rnd: int, metrics: dict[str, Any]) -> None:
    """The resume point after round ``rnd``'s update: ``policy``'s weights, ``algorithm``'s state
    for it (an algorithm without :meth:`~seal_core.RLAlgorithm.state_dict` has none) and ``metrics``."""
    state = algorithm.state_dict(policy) if hasattr(algorithm, "state_dict") else {}
    store.save_resume_point(policy.model, rnd, metrics, state)


def load_resume_point(store: RunStore, algorithm: Any, policy: LoadedModel) -> None:
    """Write the saved weights into ``policy`` and give ``algorithm`` its saved state back, on every
    rank (rank 0 reads the files and broadcasts both)."""
    state = store.load_resume_point(policy)
    broadcast_weights(policy.model)
    state = distributed.broadcast(state)
    if state and hasattr(algorithm, "load_state_dict"):
        algorithm.load_state_dict(policy, state)


@dataclass
class ResumeState:
    """The finished work found in a run directory (empty for a new run)."""

    metrics: list[dict[str, Any]] = field(default_factory=list)  # finished rounds
    evaluations: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)  # round -> task_id -> row
    rollouts: dict[int, dict[tuple[str, int], Rollout]] = field(default_factory=dict)  # round -> (task, edit) -> rollout
    updated_round: int | None = None  # the round whose update is in checkpoints/resume.safetensors
    pending_metrics: dict[str, Any] = field(default_factory=dict)  # that round's metrics, saved with it

    @property
    def next_round(self) -> int:
        return len(self.metrics)

    def finished(self, rounds: int) -> bool:
        """Every round has its metrics line and no resume point waits for the final checkpoint."""
        return self.next_round > rounds and self.updated_round is None

    @classmethod
    def read(cls, store: RunStore, rounds: int) -> "ResumeState":
        state = cls(metrics=store.metrics())
        for i, m in enumerate(state.metrics):
            if m.get("round") != i:
                raise SealError(f"{store.metrics_path}: line {i + 1} is round {m.get('round')}, expected {i}; the file was edited.")
        evaluations: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
        for row in read_jsonl(store.evaluations_path):
            evaluations[row["round"]][row["task_id"]] = row
        rollouts: dict[int, dict[tuple[str, int], Rollout]] = defaultdict(dict)
        for r in store.rollouts():
            rollouts[r.round][(r.task_id, r.edit_index)] = r
        state.evaluations, state.rollouts = dict(evaluations), dict(rollouts)
        point = store.read_resume_point()
        if point is not None:
            state.updated_round = point["round"]
            state.pending_metrics = point["metrics"]
        if state.next_round > rounds and point is None:
            return state  # finished, final checkpoint written: nothing left to do
        finished_updates = min(state.next_round, rounds)  # rounds 0..next-1 ran their updates
        needed = finished_updates - 1
        if needed >= 0 and (state.updated_round is None or state.updated_round < needed):
            raise SealError(
                f"{store.dir}: round {needed} finished but the weights after its update are missing "
                f"({store.dir / 'checkpoints' / 'resume.safetensors'}); this run cannot be resumed. "
                "Start a new run."
            )
        if state.updated_round is not None and state.updated_round > state.next_round:
            raise SealError(f"{store.dir}: resume.json names round {state.updated_round}, past the finished rounds; the directory was edited.")
        return state
