"""seal_core: the engine of the SEAL framework (self-adapting language models).

Plugin authors need only what this module exports::

    from seal_core import hookimpl, TaskInstance, Domain, Evaluator, EditGenerator, InnerUpdater, RLAlgorithm, Setup

The engine lives in sub-packages by role, each of which imports only those below it:
``api`` (hookspecs, component bases, types, errors), ``runtime`` (files, logs, seeds, Ctrl-C,
ranks), ``hooks`` (plugin registry), ``models``, ``inner`` (the inner loop's machinery),
``evaluation``, ``rl``, ``runs`` (the run directory), ``loop`` (config, engine), ``studies``
(compare, baselines), ``deploy`` (adapt, ask) and ``commands`` (``seal-run``); docs/architecture.md
maps them. The module paths of 0.1 still import, with a warning (:mod:`seal_core._moved`).
"""

import pluggy

hookimpl = pluggy.HookimplMarker("seal")

from seal_core.api.components import (  # noqa: E402  (hookimpl must exist before plugins import us)
    AdvantageEstimator,
    Component,
    Domain,
    EditGenerator,
    Evaluator,
    InnerUpdater,
    RLAlgorithm,
    Roles,
    Setup,
    UpdateContext,
)
from seal_core.api.errors import ConfigError, DataError, EditRejected, PluginError, SealError  # noqa: E402
from seal_core.api.types import (LoadedModel, Rollout, SampledEdit, Score, TaskInstance, TrainingExample,  # noqa: E402
                             TrainingSet)

__version__ = "0.1.0"

from seal_core import _moved  # noqa: E402

_moved.install()

__all__ = [
    "hookimpl",
    "TaskInstance",
    "Domain",
    "Evaluator",
    "EditGenerator",
    "InnerUpdater",
    "RLAlgorithm",
    "Setup",
    "Component",
    "AdvantageEstimator",
    "Roles",
    "UpdateContext",
    "LoadedModel",
    "Rollout",
    "SampledEdit",
    "Score",
    "TrainingExample",
    "TrainingSet",
    "SealError",
    "ConfigError",
    "DataError",
    "PluginError",
    "EditRejected",
]
