"""A config's components, and what a SEAL run and ``seal-run adapt`` both do with them.

The engine (:mod:`seal_core.loop.engine`), the held-out experiments and ``seal-run adapt``
(:mod:`seal_core.deploy.adapter`) share one path for each step: loading a model, the tasks of the
configured domain, writing self-edits with the configured generator (under the domain's edit
schema), turning a self-edit into the domain's training set, and learning it into a student's
weights. None of them looks a component up or repeats a step on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import structlog

from seal_core.api.components import Evaluator
from seal_core.api.errors import DataError, EditRejected
from seal_core.api.types import LoadedModel, TaskInstance, TrainingSet
from seal_core.inner.batching import steps_per_epoch
from seal_core.loop.config import Config
from seal_core.models.constrained import run_schema
from seal_core.models.loading import load_model, load_options
from seal_core.runtime.seeding import seed_all

log = structlog.get_logger(__name__)


class Workbench:
    """The configured domain, edit generator and inner updater of ``config`` (each looked up once
    in ``registry``), and the steps built on them."""

    def __init__(self, config: Config, registry: Any):
        self.config, self.registry = config, registry
        self.domain = self.component("domain", "domain")
        self.generator = self.component("edit_generator", "generator")
        self.updater = self.component("inner_updater", "inner")
        self.edit_schema = run_schema(self.domain, self.generator)  # what edits are decoded under; None: free text
        self._tasks: tuple[list[TaskInstance], list[TaskInstance]] | None = None
        self._steps: dict[str, int] | None = None  # match_steps' step counts, read on first use

    def component(self, kind: str, section: str) -> Any:
        """The component the config chose for ``section`` (e.g. ``("evaluator", "reward")``), with
        that section's options."""
        return self.registry.get(kind, self.config.components[section]).configured(self.config.options[section])

    def evaluators(self) -> tuple[Evaluator, Evaluator]:
        """(held-out evaluator, the rollouts' reward evaluator): the same object when ``reward``
        is unset, so its scores are computed once."""
        held_out = self.component("evaluator", "evaluator")
        same = self.config.options["reward"] is self.config.options["evaluator"]
        return held_out, held_out if same else self.component("evaluator", "reward")

    # -- models and tasks ------------------------------------------------------------------------

    def load(self, spec: str) -> LoadedModel:
        """``spec`` loaded with the config's ``model.*`` options (device, dtype, chat template)."""
        return load_model(spec, **load_options(self.config.model))

    def load_tasks(self) -> tuple[list[TaskInstance], list[TaskInstance]]:
        """(train, eval) tasks, loaded once; data errors surface here, before any model loads."""
        if self._tasks is None:
            self._tasks = self._load_tasks()
        return self._tasks

    def _load_tasks(self) -> tuple[list[TaskInstance], list[TaskInstance]]:
        source = self.config.domain.source
        train = self.domain.load_tasks("train", source)
        evals = self.domain.load_tasks("eval", source)
        for split, tasks in (("train", train), ("eval", evals)):
            if not tasks:
                raise DataError(
                    f"Domain '{self.domain.name}' has no {split} tasks in source "
                    f"{source or '(bundled data)'}. Use a source with more tasks."
                )
        overlap = {t.id for t in train} & {t.id for t in evals}
        if overlap:
            raise DataError(f"Train and eval share tasks {sorted(overlap)[:5]}: the domain's split is broken.")
        limit = self.config.domain.eval_limit
        return train, evals[:limit] if limit else evals

    # -- self-edits ------------------------------------------------------------------------------

    def edit_batches(self, tasks: list[TaskInstance], wanted: set[str] | None = None) -> list[list[TaskInstance]]:
        """``tasks`` cut, in order, into the batches the generator writes together (its
        ``prompts_per_call``); with ``wanted`` (task ids), only the batches holding one of them.
        A batch is always written whole, so a task's self-edits do not depend on which others
        were wanted (a resumed run writes what the uninterrupted one wrote)."""
        size = max(1, self.generator.prompts_per_call())
        batches = [tasks[i:i + size] for i in range(0, len(tasks), size)]
        return batches if wanted is None else [b for b in batches if any(t.id in wanted for t in b)]

    def write_edits(self, model: LoadedModel, batches: list[list[TaskInstance]], k: int, greedy: bool,
                    seed: Callable[[list[TaskInstance]], int]) -> Iterator[list[tuple[TaskInstance, str, list[str]]]]:
        """For each batch (:meth:`edit_batches`), in order, as soon as it is written: (task, edit
        prompt, ``k`` self-edits) per task, from one ``generate`` call seeded with ``seed(batch)``."""
        schema = {"schema": self.edit_schema} if self.edit_schema is not None else {}  # generators without one get none
        for batch in batches:
            seed_all(seed(batch))
            prompts = [self.domain.edit_prompt(task) for task in batch]
            edits = self.generator.generate(model, prompts, k, greedy=greedy, tasks=batch, **schema)
            yield list(zip(batch, prompts, edits))

    def training_set(self, task: TaskInstance, edit: str) -> TrainingSet:
        """The domain's training set of ``edit``; :class:`EditRejected` (with the reason) when the
        domain refuses it or it yields no training text. With ``match_steps``, set to train for
        exactly the steps recorded there for ``task`` (:meth:`matched`)."""
        data = self.domain.training_set(task, edit)
        if not data:
            raise EditRejected("the self-edit yields no training text")
        return self.matched(task, TrainingSet.coerce(data)) if self.config.run.match_steps else data

    def steps_to_match(self) -> dict[str, int]:
        """task id -> the optimizer steps the ``match_steps`` run's round-0 held-out evaluation
        recorded for it (read once)."""
        if self._steps is None:
            from seal_core.runtime.files import read_jsonl

            where = Path(self.config.run.match_steps.replace("{seed}", str(self.config.run.seed)))
            rows = [r for r in read_jsonl(where / "evaluations.jsonl") if r["round"] == 0] if where.is_dir() else []
            if not rows or any(r.get("inner_steps") is None for r in rows):
                raise DataError(
                    f"match_steps={where}: {'no round-0 held-out evaluations there' if not rows else 'its evaluations lack inner_steps (an older run, or an inner updater that does not count its steps)'}. "
                    "Point match_steps at a finished run of this config whose round 0 recorded inner_steps "
                    "(seal-run baselines runs the self-edits row first and points the control at it).")
            self._steps = {r["task_id"]: round(r["inner_steps"]) for r in rows}
        return self._steps

    def matched(self, task: TaskInstance, data: TrainingSet) -> TrainingSet:
        """``data`` trained for exactly the steps :meth:`steps_to_match` gives ``task``: as many
        epochs over its examples as that takes, the last one cut at the step count."""
        steps = self.steps_to_match().get(task.id)
        if steps is None:
            raise DataError(f"match_steps={self.config.run.match_steps}: task {task.id} has no row in that run's round-0 "
                            "evaluations; the two runs must score the same held-out tasks (same domain.source, eval_limit).")
        per_epoch = steps_per_epoch(len(data.examples), getattr(self.config.options["inner"], "batch_size", 1))
        return dataclasses.replace(data, epochs=max(1, -(-steps // per_epoch)), max_steps=steps)

    def training_sets(self, pairs: list[tuple[TaskInstance, str]]) -> tuple[list[TrainingSet | None], dict[int, str]]:
        """:meth:`training_set` of each (task, self-edit): the sets (None where rejected) and
        {position: why} of the rejected ones."""
        datas: list[TrainingSet | None] = []
        reasons: dict[int, str] = {}
        for pos, (task, edit) in enumerate(pairs):
            try:
                datas.append(self.training_set(task, edit))
            except EditRejected as exc:
                datas.append(None)
                reasons[pos] = str(exc)
        return datas, reasons

    # -- learning into the weights ---------------------------------------------------------------

    def learn(self, student: LoadedModel, data: TrainingSet) -> str | None:
        """Adapt ``student`` on ``data`` and merge the adaptation into its weights (what
        ``experiment=continual`` and ``seal-run adapt --merge`` do for each text in turn). Returns
        None, or why the adaptation failed, with ``student`` left as it was."""
        try:
            self.updater.adapt(student, data)
            self.updater.merge(student)
        except EditRejected as exc:
            self.updater.reset(student)
            return str(exc)
        return None
