"""Base classes of the six component kinds that plugins register.

A component is an object with a ``name`` and the methods of its kind. Subclassing these bases is
the easy way to get the contract right; the registry checks the contract either way.

Components take their settings from the config section of their kind (``inner.*`` for the inner
updater, ``generator.*``, ``algorithm.*``, ``evaluator.*``, and the domain-specific keys of
``domain.*``). A component declares the keys it accepts as a dataclass named ``Options``; the
config loader validates the section against it before any model loads, and the engine hands the
component a configured copy (see :meth:`Component.configured`).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable

from seal_core.api.types import LoadedModel, Rollout, Score, TaskInstance, TrainingSet


class Component(ABC):
    """Shared behaviour: a name, an ``Options`` dataclass and configured copies."""

    name: str

    @dataclass
    class Options:
        """No options."""

    @property
    def options(self) -> Any:
        """This component's options; the defaults until :meth:`configured` is called."""
        found = self.__dict__.get("_options")
        return found if found is not None else self.Options()

    def configured(self, options: Any) -> "Component":
        """Return a shallow copy of this component that uses ``options``."""
        clone = copy.copy(self)
        clone.__dict__["_options"] = options
        return clone


class Domain(Component):
    """Where tasks come from and how a self-edit becomes training data.

    ``evaluator`` names the evaluator used when the config does not choose one.
    """

    evaluator: str

    @abstractmethod
    def load_tasks(self, split: str, source: str | None = None) -> list[TaskInstance]:
        """Return the tasks of ``split`` (``"train"`` or ``"eval"``) from ``source``.

        ``source`` is the ``domain.source`` config value (``None`` for the domain's bundled
        data). A source without splits of its own must be divided deterministically, and the
        two splits must never share a task.
        """

    @abstractmethod
    def edit_prompt(self, task: TaskInstance) -> str:
        """The prompt that asks the generator for a self-edit of ``task``."""

    @abstractmethod
    def training_texts(self, task: TaskInstance, edit: str) -> list[str]:
        """The texts the inner loop trains on for this self-edit (may be empty)."""

    def training_set(self, task: TaskInstance, edit: str) -> TrainingSet:
        """What the inner loop trains on, and how; the engine calls this one.

        The default trains on :meth:`training_texts` with the updater's own hyperparameters.
        Override it to mask the loss to completions or to let the self-edit choose the learning
        rate and the number of epochs. Raise :class:`seal_core.api.errors.EditRejected` (with the
        reason) for a self-edit that cannot be used: it then scores as no adaptation.
        """
        return TrainingSet.from_texts(self.training_texts(task, edit))

    def edit_schema(self) -> dict[str, Any] | None:
        """Optional: the form of this domain's self-edits as a JSON schema, or None (the default:
        free text).

        An edit generator that honours a schema (``hf-generate`` and ``vllm``, while
        ``generator.constrained`` is on, the default) then writes only self-edits that match it,
        by constrained decoding, and the RL algorithms score self-edits under that constrained
        distribution (:mod:`seal_core.models.constrained`). The schema may depend on the domain's
        options. :meth:`training_set` should still check what it is given: other generators, or
        ``generator.constrained=false``, write freely.
        """
        return None


class Evaluator(Component):
    """Scores a (possibly adapted) model on a task, without showing it the context."""

    @abstractmethod
    def score(self, model: Any, tokenizer: Any, task: TaskInstance) -> float:
        """Return the score of ``model`` on ``task``: higher is better (in [0, 1] for an
        accuracy; ``answer-likelihood``'s default is a mean log-probability, at most 0)."""

    def evaluate(self, model: Any, tokenizer: Any, task: TaskInstance) -> Score:
        """Like :meth:`score`, with extra metrics in ``details``; override to report them."""
        return Score(self.score(model, tokenizer, task))

    def evaluate_routed(self, model: Any, tokenizer: Any, tasks: list[TaskInstance],
                        rows: Callable[[list[int]], AbstractContextManager]) -> list[Score] | None:
        """Optional: score ``tasks[j]`` on adapted model ``j`` for every j, in as few passes as
        possible. Inside ``with rows(owners):`` row ``r`` of every batch ``model`` computes goes
        through adapted model ``owners[r]``, so one ``generate`` call can hold the questions of all
        tasks. Return ``None`` (the default) when not supported: the engine then calls
        :meth:`evaluate` once per task with that task's adapted model switched on.
        """
        return None


class EditGenerator(Component):
    """Writes self-edits: ``k`` samples for each prompt."""

    @abstractmethod
    def generate(
        self,
        model: LoadedModel,
        prompts: list[str],
        k: int,
        *,
        greedy: bool = False,
        tasks: list[TaskInstance] | None = None,
    ) -> list[list[str]]:
        """Return, for each prompt, a list of ``k`` self-edits (``greedy``: deterministic). A
        sampled self-edit may be a :class:`seal_core.SampledEdit`, reporting the token ids drawn
        and their log-probs under the sampling distribution (``hf-generate`` does); a plain
        string gets its log-probs recomputed from the text.

        ``tasks`` are the tasks the prompts were made from (the engine always passes them), for
        generators that look self-edits up rather than write them (``from-file``). A generator
        whose :meth:`constrained_by` returns a schema also gets ``schema=`` (that schema).
        """

    def prompts_per_call(self) -> int:
        """How many prompts :meth:`generate` gets per call: the engine writes a round's self-edits
        in batches of this many tasks, cut from the round's tasks in order (each batch seeded from
        its tasks), so that the same run always writes the same self-edits. 1 (the default): one
        prompt per call."""
        return 1

    def constrained_by(self, schema: dict[str, Any]) -> dict[str, Any] | None:
        """The schema this generator's self-edits will follow when the domain declares ``schema``
        (:meth:`Domain.edit_schema`); None (the default): it writes freely and gets no ``schema``.

        Return ``schema`` (or a narrower one) only if :meth:`generate` accepts ``schema=`` and
        then samples from the model's distribution restricted to tokens the schema allows: the
        engine computes the RL log-probs of the self-edits under that restriction.
        """
        return None


class InnerUpdater(Component):
    """The inner loop: theta -> theta' on a self-edit's training set, and back again.

    An updater that counts what it trained sets :attr:`trained` in :meth:`adapt` (and
    :attr:`AdaptedBatch.trained` in :meth:`adapt_batch`): the optimizer steps it took and the
    tokens its loss covered, which the engine writes beside each score (``inner_steps``,
    ``inner_tokens``): the step-matched baselines read them.
    """

    #: after :meth:`adapt`: ``{"steps": optimizer steps, "tokens": tokens under the loss}`` of that
    #: adaptation; None where the updater does not count
    trained: dict[str, int] | None = None

    @abstractmethod
    def adapt(self, student: LoadedModel, data: TrainingSet | list[str]) -> LoadedModel:
        """Fine-tune ``student`` on ``data`` and return the adapted model.

        ``data`` is a :class:`TrainingSet` (a plain list of texts is accepted too: use
        :meth:`TrainingSet.coerce`); its ``learning_rate``/``epochs``, when set, override the
        updater's options for this call.
        """

    @abstractmethod
    def reset(self, student: LoadedModel) -> None:
        """Undo :meth:`adapt`: afterwards ``student`` computes exactly what it did before."""

    def merge(self, student: LoadedModel) -> None:
        """Optional: keep the current adaptation in ``student``'s base weights, so that
        :meth:`reset` no longer undoes it (``experiment=continual`` merges after each step, on a
        copy of the student). Updaters that cannot merge leave this as it is."""
        raise NotImplementedError(f"inner updater '{self.name}' cannot merge an adaptation into the weights")

    @property
    def can_merge(self) -> bool:
        return type(self).merge is not InnerUpdater.merge

    @contextmanager
    def adapted(self, student: LoadedModel, data: TrainingSet | list[str]) -> Iterator[LoadedModel]:
        """``with updater.adapted(student, data) as model:`` - resets on exit, even on error;
        :attr:`trained` inside is this adaptation's count (None where the updater does not count)."""
        self.trained = None
        try:
            yield self.adapt(student, data)
        finally:
            self.reset(student)

    # -- optional: several self-edits at once --------------------------------------------------

    def batch_capacity(self) -> int:
        """How many self-edits :meth:`adapt_batch` trains at once; 1 (the default): it does not,
        and the engine adapts one self-edit at a time."""
        return 1

    def planned_steps(self, data: TrainingSet) -> int:
        """How long :meth:`adapt_batch` trains ``data``, in optimizer steps (or any measure in
        proportion to them). The engine fills each batch with self-edits of similar length, so
        that a batch does not run its longest self-edit's steps for one row; the default, the
        number of examples, is in proportion for updaters that train every example equally often."""
        return len(data.examples)

    def adapt_batch(self, student: LoadedModel, datas: list[TrainingSet], seeds: list[int]) -> "AdaptedBatch":
        """Fine-tune one adapted model per training set, all held by ``student``; ``seeds[j]``
        seeds ``datas[j]``'s randomness (what :meth:`adapt` would draw after ``seed_all(seeds[j])``).
        :meth:`reset` undoes it. A failure of one self-edit is reported in ``rejected``, not raised.
        """
        raise NotImplementedError(f"inner updater '{self.name}' adapts one self-edit at a time")

    @contextmanager
    def adapted_batch(self, student: LoadedModel, datas: list[TrainingSet], seeds: list[int]
                      ) -> Iterator["AdaptedBatch"]:
        """``with updater.adapted_batch(student, datas, seeds) as batch:`` - resets on exit."""
        try:
            yield self.adapt_batch(student, datas, seeds)
        finally:
            self.reset(student)


class AdaptedBatch(ABC):
    """Several adapted versions of one student, made by :meth:`InnerUpdater.adapt_batch`.

    Version ``j`` was trained on ``datas[j]``; outside :meth:`use` and :meth:`rows` the student
    computes the unadapted model.
    """

    #: index -> why that self-edit was not adapted (it scores as the unadapted student)
    rejected: dict[int, str]
    #: index -> ``{"steps": ..., "tokens": ...}`` that version trained on (see :attr:`InnerUpdater.trained`);
    #: empty where the updater does not count
    trained: Mapping[int, dict[str, int]] = MappingProxyType({})

    @abstractmethod
    def use(self, index: int) -> AbstractContextManager[None]:
        """Inside ``with batch.use(j):`` the student is adapted version ``j``."""

    @abstractmethod
    def rows(self, owners: list[int]) -> AbstractContextManager[None]:
        """Inside ``with batch.rows(owners):`` row ``r`` of every batch goes through version
        ``owners[r]`` (-1: the unadapted student); batches must have ``len(owners)`` rows."""


@dataclass
class UpdateContext:
    """What an RL algorithm may need besides the rollouts."""

    round: int
    seed: int
    workdir: Path
    reference: Callable[[], LoadedModel] | None = None  # loads the initial policy weights, lazily
    #: the DeepSpeed config to run the update under (data-parallel over all ranks, see
    #: :mod:`seal_core.rl.zero`); None: the plain one-process update. Only algorithms that declare
    #: ``supports_deepspeed = True`` are given one.
    deepspeed: dict[str, Any] | None = None
    #: ``lookup(kind, name)``: a registered component (the engine passes its registry's
    #: ``Registry.get``, so components of ``--plugins`` files are found); None: none can be looked up
    components: Callable[[str, str], Any] | None = None
    #: the JSON schema the round's self-edits were sampled under (constrained decoding), or None:
    #: pass it to :class:`seal_core.models.logprobs.TokenizedRollouts` so that log-probs are those of
    #: the constrained distribution
    edit_schema: dict[str, Any] | None = None
    #: the run's ``report_to`` trackers (tensorboard, wandb, trackio, all), for an update that
    #: reports its own training (rest-em's SFT); empty: report nothing
    report_to: list[str] = field(default_factory=list)

    def component(self, kind: str, name: str) -> Any:
        """The registered component ``name`` of ``kind`` (e.g. an ``advantage_estimator``)."""
        if self.components is None:
            raise TypeError(f"UpdateContext.component({kind!r}, {name!r}): this context has no component lookup. "
                            "Build it with components=registry.get (the engine always does).")
        return self.components(kind, name)


class RLAlgorithm(Component):
    """The outer loop: makes self-edits with high reward more likely."""

    needs_logprobs: bool = False
    """True: the engine stores, with each rollout, the per-token log-probs of its self-edit under
    the policy that sampled it (``Rollout.logprobs``: the "old" policy of a clipped-ratio update)."""

    supports_deepspeed: bool = False
    """True: ``update`` honours ``context.deepspeed`` and runs data-parallel under DeepSpeed ZeRO
    (:class:`seal_core.rl.zero.UpdateLoop`); False: under a multi-process launcher rank 0 updates
    alone and its weights are broadcast, and ``trainer.deepspeed`` is refused."""

    @abstractmethod
    def update(
        self, policy: LoadedModel, rollouts: list[Rollout], context: UpdateContext
    ) -> dict[str, Any]:
        """Update ``policy``'s weights in place from this round's rollouts; return statistics.

        In place, because the same model object may also be the student whose LoRA wrapper the
        inner updater created once for the whole run. Use :func:`seal_core.models.loading.plain_copy`
        to get a trainable copy and :func:`seal_core.models.loading.load_weights` to write back.
        """

    def state_dict(self, policy: LoadedModel) -> dict[str, Any]:
        """What this algorithm keeps between rounds for ``policy`` besides the policy's weights
        (tensors by name, such as ``ppo``'s value head); the engine saves it with the run's resume
        point after each update and hands it back through :meth:`load_state_dict` on resume.
        Default: nothing (the algorithm keeps no state)."""
        return {}

    def load_state_dict(self, policy: LoadedModel, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned for ``policy`` (called on resume, before the
        next update; ``state`` is never empty). Default: nothing to restore."""


class AdvantageEstimator(Component):
    """One advantage per rollout from the rewards of its group (the ``k`` self-edits of one task
    in one round), for the critic-free policy-gradient algorithms (``algorithm.estimator``)."""

    @abstractmethod
    def advantages(self, rewards: Any, groups: Any, *, eps: float = 1e-6) -> Any:
        """(N,) advantages from (N,) float rewards and (N,) long group ids; ``eps`` guards a
        division by a group's spread, where the estimator has one."""


@dataclass
class Roles:
    """Which model writes self-edits (and is updated by RL) and which one is adapted."""

    generator: LoadedModel
    student: LoadedModel


class Setup(Component):
    """Decides which models play the generator and the student."""

    #: the ``model.*`` keys this setup reads, e.g. ``("policy",)``; the config check requires them
    model_keys: tuple[str, ...] = ()

    @abstractmethod
    def build(self, load: Callable[[str], LoadedModel], models: dict[str, str]) -> Roles:
        """Load the models named in ``models`` (the ``model`` config section) with ``load``."""


def algorithm_flag(algorithm: Any, flag: str) -> bool:
    """An :class:`RLAlgorithm` flag (``needs_logprobs``, ``supports_deepspeed``) of ``algorithm``;
    an algorithm that does not subclass :class:`RLAlgorithm` and does not set it gets the base
    class's default."""
    return bool(getattr(algorithm, flag, getattr(RLAlgorithm, flag)))
