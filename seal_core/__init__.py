"""seal_core: the engine of the SEAL framework (self-adapting language models).

Plugin authors need only what this module exports::

    from seal_core import hookimpl, TaskInstance, Domain, Evaluator, EditGenerator, InnerUpdater, RLAlgorithm, Setup
"""

import pluggy

hookimpl = pluggy.HookimplMarker("seal")

from seal_core.components import (  # noqa: E402  (hookimpl must exist before plugins import us)
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
from seal_core.errors import ConfigError, DataError, EditRejected, PluginError, SealError  # noqa: E402
from seal_core.types import (LoadedModel, Rollout, SampledEdit, Score, TaskInstance, TrainingExample,  # noqa: E402
                             TrainingSet)

__version__ = "0.1.0"

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
