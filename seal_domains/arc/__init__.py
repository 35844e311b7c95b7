"""Domain ``arc``: few-shot abstract reasoning, where the self-edit configures test-time training.

The model reads a task's demonstrations and writes a self-edit: a JSON object choosing data
augmentations and training hyperparameters (:mod:`seal_domains.arc.selfedit`). The inner loop
is test-time training: one leave-one-out task per demonstration (the others are its examples,
it is the query), expanded by the chosen augmentations, trained with the inner updater (LoRA)
at the self-edit's learning rate and epochs, at most ``domain.max_steps`` optimizer steps. The
``arc`` evaluator then predicts the held-out test outputs (:mod:`seal_domains.arc.evaluator`).

This plugin also registers the edit generator ``arc-config``, which writes configurations from a
fixed grid instead of a model: the fixed-configuration and oracle baselines
(:mod:`seal_domains.arc.baselines`). Run it with::

    seal-run run --config configs/arc.yaml
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seal_core import Domain, TaskInstance, TrainingExample, TrainingSet, hookimpl
from seal_core.api.errors import DataError, EditRejected
from seal_domains.arc.grids import AUGMENTATIONS, IDENTITY, Grid, Transform, as_grid, to_text
from seal_domains.arc.loader import SPLITS, ArcTask, read_tasks, split_of
from seal_domains.arc.prompts import demonstrations_text, edit_prompt, task_text
from seal_domains.arc.selfedit import EditConfig, Limits, edit_schema, parse_edit


@dataclass
class ArcOptions:
    min_learning_rate: float = 1e-5  # a self-edit's learning rate must lie in [min, max]
    max_learning_rate: float = 1e-2
    max_epochs: int = 10  # a self-edit's num_train_epochs must lie in [1, max_epochs]
    max_steps: int = 12  # cap on the optimizer steps of one test-time training (a CPU budget)
    eval_fraction: float = 0.25  # share of eval tasks, for sources without splits of their own

    def __post_init__(self) -> None:
        if not 0 < self.min_learning_rate <= self.max_learning_rate:
            raise ValueError("need 0 < min_learning_rate <= max_learning_rate, got "
                             f"{self.min_learning_rate} and {self.max_learning_rate}")
        if self.max_epochs < 1 or self.max_steps < 1:
            raise ValueError(f"max_epochs and max_steps must be >= 1, got {self.max_epochs} and {self.max_steps}")
        if not 0 < self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")

    @property
    def limits(self) -> Limits:
        return Limits(self.min_learning_rate, self.max_learning_rate, self.max_epochs)


def _grids(pairs: list[dict[str, Any]]) -> list[tuple[Grid, Grid]]:
    return [(as_grid(p["input"]), as_grid(p["output"])) for p in pairs]


def demonstrations(task: TaskInstance) -> list[tuple[Grid, Grid]]:
    """The task's demonstrations as (input, output) grids."""
    return _grids(task.evaluation["train"])


def tests(task: TaskInstance) -> list[tuple[Grid, Grid]]:
    """The task's test inputs with their solutions."""
    return _grids(task.evaluation["test"])


def _instance(task: ArcTask) -> TaskInstance:
    def rows(pairs):
        return [{"input": [list(r) for r in i], "output": [list(r) for r in o]} for i, o in pairs]
    return TaskInstance(id=task.id, context=demonstrations_text(task.train),
                        evaluation={"train": rows(task.train), "test": rows(task.test)})


def leave_one_out(demos: list[tuple[Grid, Grid]], transforms: list[Transform]) -> list[TrainingExample]:
    """One example per (transform, held-out demonstration): the others are its examples.

    A transform that would make a grid larger than 30 x 30 is skipped for that task.
    """
    examples = []
    for t in transforms:
        if not all(t.fits(g) for pair in demos for g in pair):
            continue
        moved = [(t(a), t(b)) for a, b in demos]
        for i, (query, answer) in enumerate(moved):
            others = moved[:i] + moved[i + 1:]
            examples.append(TrainingExample(completion=to_text(answer), prompt=task_text(others, query)))
    return examples


class ArcDomain(Domain):
    name = "arc"
    evaluator = "arc"
    Options = ArcOptions

    def load_tasks(self, split: str, source: str | None = None) -> list[TaskInstance]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        tasks, where = read_tasks(source)
        if not tasks:
            raise DataError(f"{where}: holds no ARC tasks; point domain.source at a file or directory with some.")
        return [_instance(t) for t in tasks if split_of(t, self.options.eval_fraction) == split]

    def edit_prompt(self, task: TaskInstance) -> str:
        return edit_prompt(demonstrations(task), self.options.limits)

    def edit_schema(self) -> dict[str, Any]:
        """The self-edit's JSON schema (:func:`seal_domains.arc.selfedit.edit_schema`), within
        this run's ``domain.*`` limits: hf-generate and vllm write only members of it."""
        return edit_schema(self.options.limits)

    def parse(self, edit: str) -> EditConfig:
        """The self-edit's configuration; :class:`EditRejected` with the reason if it has none."""
        return parse_edit(edit, self.options.limits)

    def training_set(self, task: TaskInstance, edit: str) -> TrainingSet:
        config = self.parse(edit)
        transforms = [IDENTITY, *(t for flag in config.augmentations for t in AUGMENTATIONS[flag])]
        examples = leave_one_out(demonstrations(task), transforms)
        if not examples:
            raise EditRejected("no training example fits within 30 x 30 grids")
        return TrainingSet(examples, learning_rate=config.learning_rate, epochs=config.num_train_epochs,
                           max_steps=self.options.max_steps,
                           loss_on="completion" if config.strategy == "output" else "all")

    def training_texts(self, task: TaskInstance, edit: str) -> list[str]:
        return self.training_set(task, edit).texts


@hookimpl
def seal_register_domains(register):
    register(ArcDomain())


@hookimpl
def seal_register_evaluators(register):
    from seal_domains.arc.evaluator import ArcEvaluator

    register(ArcEvaluator())


@hookimpl
def seal_register_edit_generators(register):
    from seal_domains.arc.baselines import ConfigGrid

    register(ConfigGrid())
