"""The inner loop: adapt the student on a self-edit, score it with one evaluator, reset.

A :class:`Scorer` belongs to one evaluator (the held-out one, or the rollouts' reward evaluator)
and owns the cache of that evaluator's scores of the unadapted student (one per round and task:
they only change when the RL update changes the student). Self-edits go through the inner updater
in batches where it trains several at once (``multi-lora``), one at a time otherwise; under a
launcher in waves split across ranks (:meth:`Scorer.scored_rows`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any

import structlog

from seal_core.api.components import Evaluator
from seal_core.api.errors import EditRejected
from seal_core.api.types import EditItem, LoadedModel, Score, ScoredEdit, TaskInstance, TrainingSet
from seal_core.loop.workbench import Workbench
from seal_core.runtime import distributed
from seal_core.runtime.seeding import derive_seed, seed_all

log = structlog.get_logger(__name__)


class Scorer:
    """Scores self-edits with ``evaluator`` (see the module docstring)."""

    def __init__(self, evaluator: Evaluator, workbench: Workbench, stop: Any):
        self.evaluator, self.workbench, self.stop = evaluator, workbench, stop
        self.updater = workbench.updater
        self._base: dict[tuple[int, str], Score] = {}

    def base(self, rnd: int, task: TaskInstance, student: LoadedModel) -> Score:
        """The unadapted student's score on ``task``, computed once per round."""
        key = (rnd, task.id)
        if key not in self._base:
            self._base[key] = self.evaluator.evaluate(student.model, student.tokenizer, task)
        return self._base[key]

    def prefetch(self, rnd: int, tasks: list[TaskInstance], student: LoadedModel) -> None:
        """The unadapted student's scores of ``tasks`` not yet known this round, in one pass where
        the evaluator scores several tasks at once (``evaluate_routed`` with every row through the
        student as it is), else one task at a time."""
        todo = [task for task in tasks if (rnd, task.id) not in self._base]
        if not todo:
            return
        scores = self.evaluator.evaluate_routed(student.model, student.tokenizer, todo, lambda owners: nullcontext())
        if scores is None:
            scores = [self.evaluator.evaluate(student.model, student.tokenizer, task) for task in todo]
        self._base.update({(rnd, task.id): score for task, score in zip(todo, scores)})

    def inner_seed(self, rnd: int, item: EditItem, run: int = 0) -> int:
        """The seed of an item's inner loop (data order, adapter randomness) in inner run ``run``
        (run 0 is the seed of a one-run score). A held-out self-edit (index -1) trains from round
        0's seed at every round, so an unchanged self-edit scores the same in every round and a
        change between rounds is the policy's (common random numbers)."""
        return derive_seed(self.workbench.config.run.seed, "inner", rnd if item.index >= 0 else 0, item.task.id,
                           item.index, *([run] if run else []))

    def score_edits(self, rnd: int, items: list[EditItem], student: LoadedModel, runs: int = 1) -> Iterator[ScoredEdit]:
        """Score each item; yields a :class:`ScoredEdit` per item as soon as it is scored.

        With ``runs`` > 1 each item is adapted and scored ``runs`` times, with the inner seeds of
        runs 0.. ``runs - 1``, and scores their mean (:func:`mean_of_runs`; the SEAL code's
        ``eval_times``). The student is back to its unadapted state whenever an item is yielded.
        The updaters that adapt one self-edit at a time get the items in order, and the items are
        yielded in order. An updater that trains several at once gets the (item, run) pairs in
        batches of its capacity (a batch may hold runs of several items; more pairs than it holds
        train in several batches), longest training first (:meth:`longest_first`), and the items
        are yielded in that order. A Ctrl-C raises here, between batches.
        """
        size = max(self.updater.batch_capacity(), 1)
        order = list(range(len(items)))
        if size > 1:  # each training set made once: it orders the batches and trains
            datas, reasons = self.workbench.training_sets([(item.task, item.edit) for item in items])
            order = self.longest_first(datas)
        jobs = [(position, run) for position in order for run in range(runs)]
        done: dict[int, list[ScoredEdit]] = {}  # item position -> its runs scored so far
        for start in range(0, len(jobs), size):
            chunk = jobs[start:start + size]
            pairs = [(items[position], run) for position, run in chunk]
            if size > 1:
                scored = self.score_batch(rnd, pairs, student, ([datas[p] for p, _ in chunk],
                                                                {j: reasons[p] for j, (p, _) in enumerate(chunk) if p in reasons}))
            else:
                scored = [self.score_edit(rnd, pairs[0][0], student, pairs[0][1])]
            for (position, _), one in zip(chunk, scored):
                parts = done.setdefault(position, [])
                parts.append(one)
                if len(parts) == runs:
                    yield mean_of_runs(done.pop(position))
            # Ctrl-C: stop only after the caller has stored every item of the finished batch
            # (under a launcher the ranks agree on stopping between waves, in scored_rows)
            if not distributed.active():
                self.stop.check()

    def longest_first(self, datas: list[TrainingSet | None]) -> list[int]:
        """The positions of the training sets ``datas`` (None: a rejected self-edit), the longest
        training first (the updater's ``planned_steps``; ties keep their order, rejected ones
        come last). A batch then holds self-edits of similar length, so it does not run its
        longest self-edit's steps for one or two rows: fewer, fuller steps (on a 2-core CPU with
        make run's recipe no faster, as each step's cost is mostly per token:
        docs/reports/2026-12-07-batch-order.md). The order follows from the self-edits alone (no
        timing), so a rerun batches them the same way."""
        steps = [self.updater.planned_steps(data) if data is not None else 0 for data in datas]
        return sorted(range(len(datas)), key=lambda position: -steps[position])

    def score_batch(self, rnd: int, jobs: list[tuple[EditItem, int]], student: LoadedModel,
                    sets: tuple[list[TrainingSet | None], dict[int, str]] | None = None) -> list[ScoredEdit]:
        """:meth:`score_edit` for several (item, run) pairs with one ``adapt_batch`` (same seeds per
        pair). ``sets``: the pairs' training sets and {position: why} of the rejected ones, when
        already made (``Workbench.training_sets``); made here otherwise."""
        items = [item for item, _ in jobs]
        datas, reasons = sets if sets is not None else self.workbench.training_sets([(item.task, item.edit) for item in items])
        reasons = dict(reasons)  # the updater's rejections are added below
        keep = [pos for pos in range(len(items)) if pos not in reasons]
        seeds = [self.inner_seed(rnd, *jobs[pos]) for pos in keep]
        seed_all(seeds[0] if seeds else 0)  # anything else random in the inner loop (dropout)
        scores: dict[int, Score] = {}
        trained: dict[int, dict[str, int]] = {}
        if keep:
            with self.updater.adapted_batch(student, [datas[pos] for pos in keep], seeds) as batch:
                reasons.update({keep[j]: why for j, why in batch.rejected.items()})
                trained = {keep[j]: counts for j, counts in batch.trained.items()}
                good = [j for j in range(len(keep)) if j not in batch.rejected]
                tasks = [items[keep[j]].task for j in good]
                routed = tasks and self.evaluator.evaluate_routed(
                    student.model, student.tokenizer, tasks,
                    lambda owners: batch.rows([good[o] if o >= 0 else -1 for o in owners]))
                if routed is None:
                    routed = []
                    for j, task in zip(good, tasks):
                        with batch.use(j):
                            routed.append(self.evaluator.evaluate(student.model, student.tokenizer, task))
                scores = {keep[j]: score for j, score in zip(good, routed)}
        return [ScoredEdit(item, scores[pos] if pos not in reasons else self.rejected(rnd, item, reasons[pos], student),
                           reasons.get(pos), trained.get(pos))
                for pos, item in enumerate(items)]

    def score_edit(self, rnd: int, item: EditItem, student: LoadedModel, run: int = 0) -> ScoredEdit:
        """Adapt the student on the edit (inner run ``run``), score it, reset. A rejected edit
        scores as unadapted."""
        seed_all(self.inner_seed(rnd, item, run))
        (data,), reasons = self.workbench.training_sets([(item.task, item.edit)])
        if data is not None:
            try:
                with self.updater.adapted(student, data) as adapted:
                    score = self.evaluator.evaluate(adapted.model, adapted.tokenizer, item.task)
                    return ScoredEdit(item, score, trained=self.updater.trained)
            except EditRejected as exc:
                reasons[0] = str(exc)
        return ScoredEdit(item, self.rejected(rnd, item, reasons[0], student), reasons[0])

    def rejected(self, rnd: int, item: EditItem, reason: str, student: LoadedModel) -> Score:
        """A rejected self-edit scores as no adaptation; the reason is logged."""
        log.warning("self-edit rejected", round=rnd, task_id=item.task.id, edit_index=item.index, reason=reason)
        return self.base(rnd, item.task, student)

    def scored_rows(self, rnd: int, items: list[EditItem], student: LoadedModel,
                    row: Callable[[ScoredEdit], Any], per_rank: int = 1, runs: int = 1) -> Iterator[Any]:
        """``row(scored)`` for each item, in the items' order (``runs``: inner runs per item,
        :meth:`score_edits`).

        In one process: straight from :meth:`score_edits`. Under a launcher the items go in waves
        of ``per_rank`` items per rank; each rank scores its slice of a wave through
        :meth:`score_edits`, and the rows are gathered, so every rank yields every row.
        """
        if not distributed.active():
            for scored in self.score_edits(rnd, items, student, runs):
                yield row(scored)
            return
        for wave in distributed.waves(items, per_rank):
            mine = self.score_edits(rnd, distributed.shard(wave), student, runs)
            yield from distributed.gather_lists([row(scored) for scored in mine])
            self.stop.check()  # the same point on every rank, after the wave's rows are stored


def mean_of_runs(runs: list[ScoredEdit]) -> ScoredEdit:
    """One item's score over its inner runs: the mean value; the details of run 0 with every
    numeric detail all runs report averaged, and ``inner_runs``, each run's value in order; the
    first run's rejection reason, if any run was rejected; the mean of the counts of what trained."""
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    details = dict(first.score.details)
    for key, value in first.score.details.items():
        values = [r.score.details.get(key) for r in runs]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            details[key] = sum(values) / len(values)
    details["inner_runs"] = [r.score.value for r in runs]
    counted = [r.trained for r in runs if r.trained is not None]
    trained = ({key: sum(c[key] for c in counted) / len(counted) for key in counted[0]} if counted else None)
    return ScoredEdit(first.item, Score(sum(r.score.value for r in runs) / len(runs), details),
                      next((r.reason for r in runs if r.reason), None), trained)
