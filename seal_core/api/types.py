"""Plain data passed between the engine and plugins."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class TaskInstance:
    """One task (C, tau): ``context`` is C, ``evaluation`` is tau in the domain's own form.

    For the knowledge domain ``evaluation`` is ``{"title": ..., "questions": [{"question", "answer"}]}``.
    """

    id: str
    context: str
    evaluation: dict[str, Any]


@dataclass(frozen=True)
class TrainingExample:
    """One training sequence of the inner loop: ``prompt`` followed by ``completion``.

    Whether the loss covers the prompt tokens too is the :class:`TrainingSet`'s ``loss_on``.
    Plain texts are examples with an empty prompt.
    """

    completion: str
    prompt: str = ""

    @property
    def text(self) -> str:
        return self.prompt + self.completion


@dataclass
class TrainingSet:
    """What the inner loop trains on for one self-edit, and how.

    ``learning_rate`` and ``epochs`` override the inner updater's options for this self-edit only
    (``None``: the updater's own), so that a domain can let the self-edit choose them (ARC does).
    ``loss_on="completion"`` puts the loss on the completion tokens only. ``max_steps`` caps the
    optimizer steps of this self-edit (``None``: no cap beyond the epochs).
    """

    examples: list[TrainingExample]
    learning_rate: float | None = None
    epochs: int | None = None
    max_steps: int | None = None
    loss_on: Literal["all", "completion"] = "all"

    @classmethod
    def from_texts(cls, texts: list[str]) -> "TrainingSet":
        return cls([TrainingExample(t) for t in texts])

    @classmethod
    def coerce(cls, data: "TrainingSet | list[str]") -> "TrainingSet":
        """Accept a plain list of texts wherever a training set is expected."""
        return data if isinstance(data, TrainingSet) else cls.from_texts(list(data))

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.examples]

    def __len__(self) -> int:
        return len(self.examples)


@dataclass
class LoadedModel:
    """A causal LM with its tokenizer, as the engine hands it to components.

    ``spec`` is the model spec it was loaded from (``embedded``, ``tiny-random``, a hub id or a
    path). Components may wrap ``model`` in place (the LoRA updater injects adapters once), but
    must leave its outputs equal to the base model's whenever they hand it back.
    """

    model: Any
    tokenizer: Any
    spec: str

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device


@dataclass(frozen=True)
class Score:
    """An evaluator's verdict on one task: ``value`` (higher is better; in [0, 1] for an accuracy)
    plus any extra metrics."""

    value: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rollout:
    """One scored self-edit: a row of ``rollouts.jsonl``.

    ``reward`` is ``score_after - score_before`` (improvement of the adapted student over the
    student itself, as in the paper). ``prompt`` is the edit prompt the generator saw, so that
    algorithms can train on (prompt -> edit) pairs without asking the domain again.
    """

    round: int
    task_id: str
    edit_index: int
    prompt: str
    edit: str
    score_before: float
    score_after: float
    reward: float
    details: dict[str, Any] = field(default_factory=dict)
    #: per-token log-probabilities of the self-edit under the policy that wrote it, filled in when
    #: the algorithm asks for them: the sampler's own (of ``token_ids``, under the distribution it
    #: drew from) where the generator reports them, else computed from ``edit`` with
    #: :func:`seal_core.models.logprobs.completion_logprobs`
    logprobs: list[float] | None = None
    #: the completion token ids the sampler drew (eos included where it ended there), when the
    #: generator reports them (:class:`SampledEdit`); None: the log-probs are of ``edit``
    #: re-tokenised with an eos appended. Rows written before this field load with None
    token_ids: list[int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "task_id": self.task_id,
            "edit_index": self.edit_index,
            "prompt": self.prompt,
            "edit": self.edit,
            "score_before": self.score_before,
            "score_after": self.score_after,
            "reward": self.reward,
            "details": self.details,
            "logprobs": self.logprobs,
            "token_ids": self.token_ids,
        }

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> "Rollout":
        return cls(**row)


class SampledEdit(str):
    """A self-edit's text that also carries what the sampler drew: ``token_ids`` and their
    ``logprobs`` under the distribution they were drawn from (after temperature, top-p and any
    schema mask). An :class:`~seal_core.EditGenerator` may return these instead of plain strings;
    the engine then stores them with the rollout instead of recomputing log-probs from the text."""

    token_ids: list[int]
    logprobs: list[float]

    def __new__(cls, text: str, token_ids: list[int], logprobs: list[float]) -> "SampledEdit":
        edit = super().__new__(cls, text)
        edit.token_ids, edit.logprobs = list(token_ids), list(logprobs)
        return edit

    def __reduce__(self) -> tuple[Any, ...]:  # so that gathering edits across ranks keeps ids and log-probs
        return SampledEdit, (str(self), self.token_ids, self.logprobs)


@dataclass(frozen=True)
class EditItem:
    """One self-edit to score: its task, its index among the task's k self-edits (-1: the greedy
    self-edit of a held-out evaluation), and its text."""

    task: TaskInstance
    index: int
    edit: str


@dataclass(frozen=True)
class ScoredEdit:
    """An :class:`EditItem` after the inner loop: the adapted student's score on the task, and why
    the self-edit was rejected, if it was (it then scores as the unadapted student)."""

    item: EditItem
    score: Score
    reason: str | None = None
    #: what the inner loop trained on for it, where the updater counts (``{"steps", "tokens"}``;
    #: with several inner runs, their mean); None otherwise
    trained: dict[str, float] | None = None
