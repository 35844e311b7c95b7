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
error that names both plugins. Event hooks are called by the engine while a run goes on; their
return values are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pluggy

from seal_core.types import Rollout

hookspec = pluggy.HookspecMarker("seal")

# ---------------------------------------------------------------------------------------------
# Component hooks
# ---------------------------------------------------------------------------------------------


@hookspec
def seal_register_domains(register: Callable[[Any], None]) -> None:
    """Register domains (:class:`seal_core.Domain`): where tasks come from and what to train on.

    :param register: call ``register(domain)`` once for each domain.
    """


@hookspec
def seal_register_evaluators(register: Callable[[Any], None]) -> None:
    """Register evaluators (:class:`seal_core.Evaluator`): score a model on a task in [0, 1].

    :param register: call ``register(evaluator)`` once for each evaluator.
    """


@hookspec
def seal_register_edit_generators(register: Callable[[Any], None]) -> None:
    """Register edit generators (:class:`seal_core.EditGenerator`): write k self-edits per prompt.

    :param register: call ``register(generator)`` once for each edit generator.
    """


@hookspec
def seal_register_inner_updaters(register: Callable[[Any], None]) -> None:
    """Register inner updaters (:class:`seal_core.InnerUpdater`): theta -> theta' and back.

    :param register: call ``register(updater)`` once for each inner updater.
    """


@hookspec
def seal_register_algorithms(register: Callable[[Any], None]) -> None:
    """Register RL algorithms (:class:`seal_core.RLAlgorithm`): update the generator from rollouts.

    :param register: call ``register(algorithm)`` once for each algorithm.
    """


@hookspec
def seal_register_setups(register: Callable[[Any], None]) -> None:
    """Register setups (:class:`seal_core.Setup`): which model writes edits, which is adapted.

    :param register: call ``register(setup)`` once for each setup.
    """


# ---------------------------------------------------------------------------------------------
# Event hooks
# ---------------------------------------------------------------------------------------------


@hookspec
def seal_run_started(run_dir: Path, config: dict[str, Any]) -> None:
    """A run has started (or resumed) in ``run_dir`` with the resolved ``config``.

    :param run_dir: the run directory.
    :param config: the resolved configuration, as written to ``config.yaml``.
    """


@hookspec
def seal_rollout_scored(rollout: Rollout, run_dir: Path) -> None:
    """A self-edit was applied and scored; ``rollout`` has just been appended to rollouts.jsonl.

    :param rollout: the scored self-edit.
    :param run_dir: the run directory.
    """


@hookspec
def seal_round_finished(round: int, metrics: dict[str, Any], run_dir: Path) -> None:
    """A round has finished; ``metrics`` has just been appended to metrics.jsonl.

    :param round: the round number (0 is before any RL update).
    :param metrics: the round's metrics line.
    :param run_dir: the run directory.
    """
