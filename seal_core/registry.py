"""Plugin loading and the component registry.

Plugins come from the ``seal`` entry-point group of installed distributions (the built-ins too)
and from ``--plugins`` (an importable module name or a path to a ``.py`` file). Each component
hook is called once per plugin, so every component is known with the plugin that supplied it.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from seal_core import hookspecs
from seal_core.components import (
    Domain,
    EditGenerator,
    Evaluator,
    InnerUpdater,
    RLAlgorithm,
    Setup,
)
from seal_core.errors import PluginError, SealError

ENTRY_POINT_GROUP = "seal"


@dataclass(frozen=True)
class Kind:
    """A component kind: its config-facing name, its hook and its base class."""

    name: str
    hook: str
    base: type
    required: tuple[str, ...]  # attributes and methods every component of this kind must have


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("domain", "seal_register_domains", Domain,
             ("evaluator", "load_tasks", "edit_prompt", "training_texts")),
        Kind("evaluator", "seal_register_evaluators", Evaluator, ("score",)),
        Kind("edit_generator", "seal_register_edit_generators", EditGenerator, ("generate",)),
        Kind("inner_updater", "seal_register_inner_updaters", InnerUpdater, ("adapt", "reset")),
        Kind("algorithm", "seal_register_algorithms", RLAlgorithm, ("update",)),
        Kind("setup", "seal_register_setups", Setup, ("build",)),
    )
}


@dataclass(frozen=True)
class Registered:
    """A component with the kind it was registered as and the plugin that registered it."""

    kind: str
    name: str
    component: Any
    plugin: str
    source: str  # "distribution==version" or the file/module the plugin came from


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("seal")
    pm.add_hookspecs(hookspecs)
    return pm


def _import_extra(spec: str) -> tuple[str, Any, str]:
    """Import a ``--plugins`` value: a ``.py`` path or a module name. Returns (name, module, source)."""
    path = Path(spec)
    try:
        if spec.endswith(".py") or path.suffix == ".py":
            if not path.is_file():
                raise PluginError(
                    f"Plugin file '{spec}' does not exist. Pass an existing .py file or an "
                    "importable module name to --plugins."
                )
            resolved = path.resolve()
            digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
            mod_name = f"seal_extra_plugin_{path.stem}_{digest}"
            module_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[mod_name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[mod_name]
                raise
            return path.stem, module, str(resolved)
        module = importlib.import_module(spec)
        return spec, module, getattr(module, "__file__", None) or spec
    except PluginError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name and (spec == exc.name or spec.startswith(exc.name + ".")):
            raise PluginError(
                f"Plugin '{spec}' is not an importable module (and not a .py file). Check the "
                "name, install the plugin's distribution, or pass the path of its .py file."
            ) from exc
        raise PluginError(f"Plugin '{spec}' raised on import: {exc!r}. Fix the plugin.") from exc
    except Exception as exc:  # a plugin's own bug: name it, do not start the run
        raise PluginError(f"Plugin '{spec}' raised on import: {exc!r}. Fix the plugin.") from exc


class Registry:
    """All plugins and the components they registered, by kind and name."""

    def __init__(self, extra_plugins: list[str] | tuple[str, ...] = (), entry_points: bool = True):
        self.pm = new_plugin_manager()
        self._sources: dict[str, str] = {}
        if entry_points:
            self._load_entry_points()
        for spec in extra_plugins:
            name, module, source = _import_extra(spec)
            self._register_plugin(module, name, source)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(
                f"Plugin '{self.pm.get_name(exc.plugin)}' implements a hook that does not exist: {exc}. "
                "Hook names start with 'seal_'; see seal_core/hookspecs.py for the list."
            ) from exc
        self.components: dict[str, dict[str, Registered]] = {k: {} for k in KINDS}
        self._collect()

    # -- loading -------------------------------------------------------------------------------

    def _load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            source = f"{dist.name}=={dist.version}" if dist else ep.value
            if self.pm.has_plugin(ep.name):
                continue  # the same distribution seen twice on sys.path
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"Plugin '{ep.name}' (entry point '{ep.value}' of {source}) raised on import: "
                    f"{exc!r}. Fix or uninstall that distribution."
                ) from exc
            self._register_plugin(plugin, ep.name, source)

    def _register_plugin(self, plugin: Any, name: str, source: str) -> None:
        if self.pm.has_plugin(name) or self.pm.is_registered(plugin):
            raise PluginError(
                f"Plugin '{name}' ({source}) is loaded twice. Pass it to --plugins only when it "
                "is not installed as an entry point, and only once."
            )
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"Plugin '{name}' ({source}) is invalid: {exc}") from exc
        self._sources[name] = source

    def _collect(self) -> None:
        plugins = [(self.pm.get_name(p), p) for p in self.pm.get_plugins()]
        for kind in KINDS.values():
            for plugin_name, plugin in sorted(plugins, key=lambda x: x[0] or ""):
                others = [p for _, p in plugins if p is not plugin]
                caller = self.pm.subset_hook_caller(kind.hook, remove_plugins=others)
                caller(register=lambda c, k=kind, n=plugin_name: self._add(k, c, n))

    def _add(self, kind: Kind, component: Any, plugin: str) -> None:
        for attr in ("name", *kind.required):
            if not hasattr(component, attr):
                raise PluginError(
                    f"Plugin '{plugin}' registered a {kind.name} {component!r} that has no "
                    f"'{attr}'. A {kind.name} needs: name, {', '.join(kind.required)} "
                    f"(see seal_core.{kind.base.__name__})."
                )
        name = component.name
        if not isinstance(name, str) or not name:
            raise PluginError(f"Plugin '{plugin}' registered a {kind.name} whose name is {name!r}.")
        existing = self.components[kind.name].get(name)
        if existing is not None:
            raise PluginError(
                f"Two {kind.name} components are named '{name}': one from plugin "
                f"'{existing.plugin}' ({existing.source}) and one from plugin '{plugin}' "
                f"({self._sources.get(plugin, '?')}). Uninstall one or rename its component."
            )
        self.components[kind.name][name] = Registered(
            kind.name, name, component, plugin, self._sources.get(plugin, "?")
        )

    # -- lookup --------------------------------------------------------------------------------

    def get(self, kind: str, name: str, *, key: str | None = None) -> Any:
        """The component of ``kind`` named ``name``; an unknown name lists the known ones."""
        found = self.components[kind].get(name)
        if found is None:
            known = sorted(self.components[kind])
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            where = f" (config key '{key}')" if key else ""
            raise SealError(
                f"Unknown {kind} '{name}'{where}. Known {kind} components: "
                f"{', '.join(known) or 'none'}.{hint} A plugin that provides it may be missing: "
                "install it or pass --plugins."
            )
        return found.component

    def entries(self) -> list[Registered]:
        """Every registered component, sorted by kind and name."""
        return [r for k in KINDS for _, r in sorted(self.components[k].items())]

    @property
    def hook(self) -> Any:
        """The plugin manager's hook relay, for calling event hooks."""
        return self.pm.hook
