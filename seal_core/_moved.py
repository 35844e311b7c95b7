"""The module paths of seal-framework 0.1, before ``seal_core`` was split into sub-packages.

``import seal_core.registry`` (or ``from seal_core.registry import Registry``) still works: it
gives the module at its new path, :mod:`seal_core.hooks.registry`, and warns once with a
``FutureWarning`` that names the new path. ``seal_core.models``, ``seal_core.rl`` and
``seal_core.inner`` are packages whose ``__init__`` exports what those modules exported, so their
old imports work without a warning.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old module path -> new module path
MOVED: dict[str, str] = {f"seal_core.{old}": f"seal_core.{new}" for old, new in {
    "hookspecs": "api.hookspecs", "components": "api.components", "types": "api.types", "errors": "api.errors",
    "logs": "runtime.logs", "seeding": "runtime.seeding", "interrupt": "runtime.interrupt",
    "distributed": "runtime.distributed",
    "registry": "hooks.registry", "plugin_import": "hooks.loading", "hook_trace": "hooks.tracing",
    "events": "hooks.events",
    "generation": "models.generation", "prompting": "models.prompting", "constrained": "models.constrained",
    "logprobs": "models.logprobs",
    "qa": "evaluation.qa", "answer_likelihood": "evaluation.answer_likelihood",
    "zero": "rl.zero",
    "runstore": "runs.store", "results": "runs.results", "checkpoints": "runs.checkpoints", "resume": "runs.resume",
    "rollout_report": "runs.report",
    "config": "loop.config", "engine": "loop.engine", "experiments": "loop.experiments",
    "intervals": "studies.intervals", "variants": "studies.variants", "compare": "studies.compare",
    "baselines": "studies.baselines",
    "adapt": "deploy.adapter", "documents": "deploy.documents", "ask": "deploy.ask", "lora_export": "deploy.lora_export",
    "cli": "commands.main",
}.items()}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module path and loads it as the module at its new path, with a warning."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return None  # a blank module; exec_module replaces it in sys.modules

    def exec_module(self, module) -> None:
        new = MOVED[module.__name__]
        warnings.warn(f"{module.__name__} moved to {new} in seal-framework 0.2; import it from there "
                      f"(the old path is kept for now and will be removed).", FutureWarning, stacklevel=2)
        # the import system returns what sys.modules holds once exec_module returns: the new module
        sys.modules[module.__name__] = importlib.import_module(new)


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (seal_core's ``__init__`` calls it)."""
    if not any(isinstance(f, MovedModules) for f in sys.meta_path):
        sys.meta_path.append(MovedModules())
