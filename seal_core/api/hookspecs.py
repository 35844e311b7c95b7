"""Every hook a SEAL plugin can implement: this module is the plugin author's reference.

A plugin is a module (or any object) with functions decorated by ``seal_core.hookimpl`` whose
names match the hooks below. An implementation may accept fewer arguments than the hook offers,
so hooks can gain arguments later without breaking plugins.

Component hooks hand the plugin a ``register`` callback; call it once per component::

    from seal_core import hookimpl

    @hookimpl
    def seal_register_domains(register):
        register(MyDomain())

The core checks each component's contract, and two components of one kind with one name are an
error that names both plugins. Component hooks are called once per plugin when the registry
loads, before any model loads. Event hooks are called by the engine while a run goes on; their
return values are ignored, and an exception raised in one is logged as a warning (once per plugin
and hook) and the run goes on: a broken tracker never costs a run.

Set ``SEAL_TRACE_HOOKS=1`` to log every hook call, with the plugins that implement it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pluggy

from seal_core.api.types import Rollout

hookspec = pluggy.HookspecMarker("seal")

# ---------------------------------------------------------------------------------------------
# Component hooks
# ---------------------------------------------------------------------------------------------


@hookspec
def seal_register_domains(register: Callable[[Any], None]) -> None:
    """Register domains (:class:`seal_core.Domain`): where tasks come from and what to train on.

    A domain has a ``name``; ``evaluator``, the name of the evaluator used when the config names
    none; ``load_tasks(split, source=None)``, the ``"train"`` or ``"eval"`` tasks as
    :class:`seal_core.TaskInstance` objects (``source`` is ``domain.source``, ``None`` for the
    domain's bundled data; train and eval never share a task); ``edit_prompt(task)``, the prompt
    that asks for a self-edit; and ``training_texts(task, edit)``, what the inner loop trains on.
    Optionally ``training_set(task, edit)`` returns a :class:`seal_core.TrainingSet` instead:
    prompt/completion examples with a completion-only loss, or a learning rate, epochs and a
    step cap chosen by the self-edit (raise :class:`seal_core.EditRejected` for an unusable one).
    Optionally ``edit_schema()`` returns the form of its self-edits as a JSON schema (a dict; the
    default ``None`` is free text): ``hf-generate`` and ``vllm`` then write only self-edits that
    match it, by constrained decoding (``generator.constrained``, on by default), and the RL
    algorithms use the log-probs of that constrained distribution. Its ``Options`` dataclass
    declares its own ``domain.*`` config keys.

    :param register: call ``register(domain)`` once for each domain (an instance, not a class).

    Example::

        @hookimpl
        def seal_register_domains(register):
            register(LexiconDomain())
    """


@hookspec
def seal_register_evaluators(register: Callable[[Any], None]) -> None:
    """Register evaluators (:class:`seal_core.Evaluator`): score a model on a task, higher is better.

    An evaluator has a ``name`` and ``score(model, tokenizer, task)``, a float (in [0, 1] for an
    accuracy; ``answer-likelihood``'s default is a mean log-probability, at most 0); it
    must not show the model ``task.context``. Override ``evaluate(model, tokenizer, task)`` to
    return a :class:`seal_core.Score` with extra metrics in ``details`` (they are written to
    rollouts.jsonl). Optionally, ``evaluate_routed(model, tokenizer, tasks, rows)`` scores
    several adapted models in one pass (``with rows(owners):`` routes each batch row to its
    task's adapted model); without it, batched inner updaters score one task at a time. Its
    ``Options`` dataclass declares its ``evaluator.*`` config keys.

    :param register: call ``register(evaluator)`` once for each evaluator.

    Example::

        @hookimpl
        def seal_register_evaluators(register):
            register(ExactMatchEvaluator())
    """


@hookspec
def seal_register_edit_generators(register: Callable[[Any], None]) -> None:
    """Register edit generators (:class:`seal_core.EditGenerator`): write k self-edits per prompt.

    An edit generator has a ``name`` and ``generate(model, prompts, k, greedy=False,
    tasks=None)``, which returns, for each prompt, a list of ``k`` self-edits written by
    ``model`` (a :class:`seal_core.LoadedModel`). Optionally ``constrained_by(schema)`` returns
    the domain's self-edit schema when the generator honours it; the engine then passes
    ``generate(..., schema=schema)`` and the generator must sample only from the tokens the
    schema allows (:mod:`seal_core.models.constrained` compiles it for a tokenizer). A sampled self-edit
    may be a :class:`seal_core.SampledEdit` (a ``str`` that also carries the token ids drawn and
    their log-probs under the distribution they were drawn from); the RL algorithms then take
    those as the old policy's log-probs instead of recomputing them from the text. Optionally
    ``prompts_per_call()`` says how many prompts ``generate`` takes at once (default 1): the engine
    then writes a round's self-edits in batches of that many tasks, in task order, each batch
    seeded from its tasks. Its ``Options`` dataclass declares its ``generator.*`` config keys.

    :param register: call ``register(generator)`` once for each edit generator.
    """


@hookspec
def seal_register_inner_updaters(register: Callable[[Any], None]) -> None:
    """Register inner updaters (:class:`seal_core.InnerUpdater`): theta -> theta' and back.

    An inner updater has a ``name``, ``adapt(student, texts)``, which fine-tunes the student on
    the training texts and returns the adapted model, and ``reset(student)``, after which the
    student computes exactly what it did before ``adapt``. Raise
    :class:`seal_core.EditRejected` from ``adapt`` for a self-edit that cannot be applied.
    Optionally, ``batch_capacity()`` > 1 and ``adapt_batch(student, datas, seeds)`` train
    several self-edits at once (see :class:`seal_core.api.components.AdaptedBatch`); the engine
    then hands it batches of that size, filled longest training first by its
    ``planned_steps(data)`` (default: the number of examples). Optionally ``merge(student)`` keeps the current
    adaptation in the weights (``experiment=continual`` needs it). Its ``Options`` dataclass
    declares its ``inner.*`` config keys. The built-ins' machinery is public in
    :mod:`seal_core.inner` (the one-at-a-time AdamW loop, peft injection, stacked LoRA layers and
    their routing, packed attention, stacked AdamW): subclass ``SequentialUpdater`` or build on
    ``StackedLoraLinear`` as ``lora`` and ``multi-lora`` do.

    :param register: call ``register(updater)`` once for each inner updater.
    """


@hookspec
def seal_register_algorithms(register: Callable[[Any], None]) -> None:
    """Register RL algorithms (:class:`seal_core.RLAlgorithm`): update the generator from rollouts.

    An RL algorithm has a ``name`` and ``update(policy, rollouts, context)``, which updates the
    policy's weights in place from the round's scored self-edits (:class:`seal_core.Rollout`)
    and returns statistics for the round's metrics line. Its ``Options`` dataclass declares its
    ``algorithm.*`` config keys.

    :param register: call ``register(algorithm)`` once for each algorithm.
    """


@hookspec
def seal_register_advantage_estimators(register: Callable[[Any], None]) -> None:
    """Register advantage estimators (:class:`seal_core.AdvantageEstimator`): one advantage per
    rollout from the rewards of its group.

    An advantage estimator has a ``name`` and ``advantages(rewards, groups, *, eps)``, which maps
    (N,) rewards and (N,) group ids (the ``k`` self-edits of one task in one round share one) to
    (N,) advantages. ``grpo`` and ``dr-grpo`` use the one that ``algorithm.estimator`` names; the
    built-ins are ``grpo``, ``dr-grpo`` and ``rloo``.

    :param register: call ``register(estimator)`` once for each estimator.
    """


@hookspec
def seal_register_setups(register: Callable[[Any], None]) -> None:
    """Register setups (:class:`seal_core.Setup`): which model writes edits, which is adapted.

    A setup has a ``name``, ``model_keys`` (the ``model.*`` config keys it needs) and
    ``build(load, models)``, which loads the models it needs with ``load(spec)`` and returns
    :class:`seal_core.Roles` (the generator, trained by RL, and the student, adapted per edit).

    :param register: call ``register(setup)`` once for each setup.
    """


# ---------------------------------------------------------------------------------------------
# Event hooks
# ---------------------------------------------------------------------------------------------


@hookspec
def seal_run_started(run_dir: Path, config: dict[str, Any]) -> None:
    """A run has started (or resumed) in ``run_dir`` with the resolved ``config``.

    Called once per run, after the models are loaded and config.yaml is written, before the
    first round.

    :param run_dir: the run directory.
    :param config: the resolved configuration, as written to ``config.yaml``.
    """


@hookspec
def seal_rollout_scored(rollout: Rollout, run_dir: Path) -> None:
    """A self-edit was applied and scored; ``rollout`` has just been appended to rollouts.jsonl.

    Called once per training self-edit (held-out evaluation does not call it). ``rollout`` holds
    the round, the task id, the edit index, the prompt, the self-edit, the scores before and
    after adapting, the reward and the evaluator's details.

    :param rollout: the scored self-edit.
    :param run_dir: the run directory.
    """


@hookspec
def seal_round_finished(round: int, metrics: dict[str, Any], run_dir: Path) -> None:
    """A round has finished; ``metrics`` has just been appended to metrics.jsonl.

    Called once per round, round 0 included, after results.md is rewritten.

    :param round: the round number (0 is before any RL update).
    :param metrics: the round's metrics line.
    :param run_dir: the run directory.
    """
