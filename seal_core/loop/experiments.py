"""The paper's knowledge-incorporation experiments: how held-out passages are adapted each round.

``experiment`` (a top-level config key) chooses the engine that evaluates the held-out passages
(the ``domain.eval_limit`` first eval tasks) at every round; the RL rounds themselves are the
same in all three:

- ``single`` (default, the paper's single-passage setting): one adapter per passage, scored on
  that passage's questions, reset (:class:`seal_core.loop.engine.Engine` as it is).
- ``cpt`` (continued pretraining): the greedy self-edits of all n passages are pooled into one
  training set, one adaptation is trained on it, and every passage's questions are asked of that
  one model. The paper trains on n = 200 (and 2,067) passages at once.
- ``continual``: the passages are learned one after another on a copy of the student; after
  each step the adaptation is merged into the copy's weights (``InnerUpdater.merge``) and every
  passage learned so far is scored again. The scores form the retention matrix (row = after
  step i, column = passage j <= i), written to ``retention.json``, ``retention.md`` and the
  heat-map ``retention.png``; the paper reports catastrophic forgetting under such sequential
  self-edits. The generator's weights are never touched.

Metrics: ``eval_adapted`` is the score of the adapted model on all n passages (``cpt``: the
pooled adapter; ``continual``: the model after all n steps, what is retained), ``eval_base`` the
student without adaptation. ``continual`` adds ``eval_learned`` (each passage scored right after
its own step, the diagonal) and ``eval_forgetting`` (``eval_learned - eval_adapted``).

A round's evaluation is not resumable mid-way: a run killed during it redoes the round's
adaptation (the rows already on disk are kept, not written twice).
"""

from __future__ import annotations

import json
import math
from typing import Any

import structlog
from tqdm import tqdm

from seal_core.api.components import Roles
from seal_core.loop.engine import Engine
from seal_core.loop.workbench import Workbench
from seal_core.runs.store import RunStore
from seal_core.runs.results import eval_summary
from seal_core.api.errors import EditRejected
from seal_core.models.loading import plain_copy
from seal_core.runtime.files import atomic_write_text, save_figure
from seal_core.runtime.seeding import derive_seed, seed_all
from seal_core.api.types import LoadedModel, Score, TaskInstance, TrainingSet

log = structlog.get_logger(__name__)


def pool(sets: list[TrainingSet]) -> TrainingSet:
    """One training set from several: all examples; a per-edit setting only where all agree."""
    def agreed(attr: str) -> Any:
        values = {getattr(s, attr) for s in sets}
        return values.pop() if len(values) == 1 else None

    loss_on = agreed("loss_on")
    if loss_on is None:
        raise EditRejected("the pooled self-edits mix loss_on=all and loss_on=completion")
    return TrainingSet([e for s in sets for e in s.examples], learning_rate=agreed("learning_rate"),
                       epochs=agreed("epochs"), max_steps=None, loss_on=loss_on)


class _HeldOutEngine(Engine):
    """Shared by cpt and continual: base scores, greedy self-edits and their training sets."""

    def _prepare(self, rnd: int, tasks: list[TaskInstance], roles: Roles
                 ) -> tuple[list[str], list[TrainingSet | None], dict[str, str]]:
        for task in tasks:
            self.held_out.base(rnd, task, roles.student)
        written = self.write_edits(rnd, tasks, roles, 1, True, f"round {rnd} · eval self-edits")
        edits = [written[task.id][1][0] for task in tasks]
        sets, rejected = self.workbench.training_sets(list(zip(tasks, edits)))
        reasons = {tasks[pos].id: why for pos, why in rejected.items()}
        for task_id, why in reasons.items():
            log.warning("self-edit rejected", round=rnd, task_id=task_id, reason=why)
        return edits, sets, reasons

    def _write_rows(self, rows: list[dict[str, Any]], done: dict[str, dict]) -> None:
        for row in rows:
            if row["task_id"] not in done:
                self.store.append_evaluation(row)

    def _row(self, rnd: int, task: TaskInstance, edit: str, after: Score, reason: str | None,
             student: LoadedModel, **extra: Any) -> dict[str, Any]:
        return self.eval_row(rnd, task, edit, after, reason, student, experiment=self.config.run.experiment, **extra)


class CptEngine(_HeldOutEngine):
    """``experiment=cpt``: one adaptation on the pooled self-edits of all held-out passages."""

    def evaluate(self, rnd: int, tasks: list[TaskInstance], roles: Roles, done: dict[str, dict]) -> dict[str, Any]:
        if all(t.id in done for t in tasks):
            return eval_summary([done[t.id] for t in tasks])
        student = roles.student
        edits, sets, reasons = self._prepare(rnd, tasks, roles)
        usable = [s for s in sets if s is not None]
        seed_all(derive_seed(self.config.run.seed, "inner", rnd, "cpt"))
        scores: list[Any] = []
        pooled_reason = None
        try:
            if not usable:
                raise EditRejected("no self-edit yields training text")
            data = pool(usable)
            log.info("cpt: training one adaptation on pooled self-edits", round=rnd, passages=len(usable),
                     examples=len(data))
            with self.updater.adapted(student, data) as adapted:
                for task in tqdm(tasks, desc=f"round {rnd} · cpt score", unit="task", dynamic_ncols=True):
                    scores.append(self.evaluator.evaluate(adapted.model, adapted.tokenizer, task))
        except EditRejected as exc:
            pooled_reason = str(exc)
            log.warning("cpt adaptation rejected; scoring as unadapted", round=rnd, reason=pooled_reason)
            scores = [self.held_out.base(rnd, t, student) for t in tasks]
        rows = [self._row(rnd, t, e, s, pooled_reason or reasons.get(t.id), student, pooled_passages=len(usable))
                for t, e, s in zip(tasks, edits, scores)]
        self._write_rows(rows, done)
        self.stop.check()
        return eval_summary(rows)


class ContinualEngine(_HeldOutEngine):
    """``experiment=continual``: learn the passages one after another, merging after each."""

    def evaluate(self, rnd: int, tasks: list[TaskInstance], roles: Roles, done: dict[str, dict]) -> dict[str, Any]:
        if all(t.id in done for t in tasks):
            rows = [done[t.id] for t in tasks]
        else:
            rows = self._sequence(rnd, tasks, roles)
            self._write_rows(rows, done)
        learned = [r["score_learned"] for r in rows]
        summary = eval_summary(rows)
        summary["eval_learned"] = sum(learned) / len(learned)
        summary["eval_forgetting"] = summary["eval_learned"] - summary["eval_adapted"]
        return summary

    def _sequence(self, rnd: int, tasks: list[TaskInstance], roles: Roles) -> list[dict[str, Any]]:
        edits, sets, reasons = self._prepare(rnd, tasks, roles)
        work = plain_copy(roles.student)  # the sequence is merged into this copy, never into the policy
        matrix: list[list[float]] = []
        learned: list[Score] = []  # each passage right after its own step
        current: list[Score] = []  # each passage after the latest step
        bar = tqdm(total=len(tasks) * (len(tasks) + 1) // 2, desc=f"round {rnd} · continual", unit="score",
                   dynamic_ncols=True)
        for step, (task, data) in enumerate(zip(tasks, sets)):
            seed_all(derive_seed(self.config.run.seed, "inner", rnd, task.id, -1))
            failed = self.workbench.learn(work, data) if data is not None else None
            if failed is not None:
                reasons[task.id] = failed
                log.warning("continual step rejected; the model stays as it was", round=rnd, step=step, reason=failed)
            current = [self.evaluator.evaluate(work.model, work.tokenizer, t) for t in tasks[:step + 1]]
            learned.append(current[-1])
            matrix.append([s.value for s in current])
            bar.update(step + 1)
            self.stop.check()
        bar.close()
        del work
        if self.store.writes:  # rank 0 alone writes the run directory
            self._save_retention(rnd, tasks, roles.student, matrix)
        return [self._row(rnd, t, e, current[j], reasons.get(t.id), roles.student, score_learned=learned[j].value,
                          retention=[matrix[i][j] for i in range(j, len(tasks))])
                for j, (t, e) in enumerate(zip(tasks, edits))]

    def _save_retention(self, rnd: int, tasks: list[TaskInstance], student: LoadedModel,
                        matrix: list[list[float]]) -> None:
        path = self.store.dir / "retention.json"
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        data[str(rnd)] = {"task_ids": [t.id for t in tasks],
                          "base": [self.held_out.base(rnd, t, student).value for t in tasks], "matrix": matrix}
        atomic_write_text(path, json.dumps(data, indent=1))
        write_retention(self.store.dir, data, f"{self.domain.name} · {self.config.components['inner']} · "
                                              f"{self.config.model.policy or self.config.model.teacher}")


def retention_table(entry: dict[str, Any]) -> str:
    """Markdown: one row per step (the passage just learned), one column per passage."""
    n = len(entry["task_ids"])
    head = "| after step | " + " | ".join(f"P{j + 1}" for j in range(n)) + " |"
    rule = "|---|" + "---:|" * n
    lines = [head, rule, "| base | " + " | ".join(f"{v:.2f}" for v in entry["base"]) + " |"]
    for i, row in enumerate(entry["matrix"]):
        cells = [f"{v:.2f}" for v in row] + [""] * (n - len(row))
        lines.append(f"| {i + 1} (learn P{i + 1}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_retention(run_dir: Any, data: dict[str, Any], title: str) -> None:
    """retention.md (every round) and retention.png (the latest round's heat-map)."""
    parts = [f"# Retention · {title}\n",
             "Score on passage Pj (column) after the model learned P1..Pi one after another, each "
             "adaptation merged into the weights (row i). The diagonal is each passage right after "
             "it was learned; below it, how much of an earlier passage survives later edits. "
             "`base`: no adaptation.\n"]
    for rnd, entry in sorted(data.items(), key=lambda kv: int(kv[0])):
        ids = ", ".join(f"P{j + 1} = {t}" for j, t in enumerate(entry["task_ids"]))
        parts.append(f"## Round {rnd}\n\n{retention_table(entry)}\n\n{ids}\n")
    parts.append("![retention heat-map, latest round](retention.png)\n")
    atomic_write_text(run_dir / "retention.md", "\n".join(parts))
    latest = data[max(data, key=int)]
    plot_retention(run_dir / "retention.png", latest, f"{title} · round {max(data, key=int)}")


def plot_retention(path: Any, entry: dict[str, Any], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(entry["task_ids"])
    grid = [entry["base"]] + [row + [math.nan] * (n - len(row)) for row in entry["matrix"]]
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * n, 1.0 + 0.5 * (n + 1)), dpi=100)
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(n), [f"P{j + 1}" for j in range(n)])
    ax.set_yticks(range(n + 1), ["base"] + [f"after {i + 1}" for i in range(n)])
    ax.set_xlabel("passage scored")
    ax.set_ylabel("passages learned so far")
    if n <= 12:
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                if not math.isnan(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if v < 0.5 else "black")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.05)
    fig.tight_layout()
    save_figure(fig, path)


ENGINES: dict[str, type[Engine]] = {"single": Engine, "cpt": CptEngine, "continual": ContinualEngine}


def make_engine(workbench: Workbench, store: RunStore, stop: Any = None, command: str | None = None) -> Engine:
    """The engine for the ``experiment`` of ``workbench``'s config, writing into ``store``."""
    return ENGINES[workbench.config.run.experiment](workbench, store, stop, command)
