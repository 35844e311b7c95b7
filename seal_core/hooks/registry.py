"""Plugin loading and the component registry.

Plugins come from the ``seal`` entry-point group of installed distributions (the built-ins too)
and from ``--plugins`` (an importable module name or a path to a ``.py`` file). Each component
hook is called once per plugin, so every component is known with the plugin that supplied it,
and with where that plugin came from (its distribution and version, and its file).

A broken plugin stops the run before any model loads, with one paragraph naming the plugin, the
problem and the fix: a hook implementation whose name is no hook, a component of the wrong kind
or missing part of its contract, a hook that raises.

``SEAL_TRACE_HOOKS=1`` logs every hook call (:mod:`seal_core.hooks.tracing`).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
from dataclasses import dataclass
from typing import Any

import pluggy
import structlog

from seal_core.api import hookspecs
from seal_core.api.components import (
    AdvantageEstimator,
    Domain,
    EditGenerator,
    Evaluator,
    InnerUpdater,
    RLAlgorithm,
    Setup,
)
from seal_core.api.errors import PluginError, SealError
from seal_core.hooks.tracing import HookTracer, shorten, trace_requested
from seal_core.hooks.loading import Origin, import_plugin

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
        Kind("advantage_estimator", "seal_register_advantage_estimators", AdvantageEstimator, ("advantages",)),
        Kind("setup", "seal_register_setups", Setup, ("build",)),
    )
}

#: required names that are plain attributes (strings), not methods
_STRING_ATTRIBUTES = frozenset({"name", "evaluator"})
#: what the engine calls on every component but the setup; the base classes provide it
_ENGINE_METHODS = ("configured",)


def hook_names() -> list[str]:
    """The names of every hook in :mod:`seal_core.api.hookspecs`, in the order they are defined."""
    marker = f"{ENTRY_POINT_GROUP}_spec"
    return [n for n, obj in vars(hookspecs).items() if callable(obj) and hasattr(obj, marker)]


@dataclass(frozen=True)
class Registered:
    """A component with the kind it was registered as and the plugin that registered it."""

    kind: str
    name: str
    component: Any
    plugin: str
    source: str  # "distribution==version" or the file/module the plugin came from
    distribution: str | None = None  # the installed distribution that declared the entry point
    version: str | None = None  # that distribution's version
    file: str | None = None  # the plugin module's file, where it has one

    def to_json(self) -> dict[str, Any]:
        """What ``seal-run plugins --json`` prints for this component."""
        return {
            "kind": self.kind,
            "name": self.name,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "file": self.file,
            "source": self.source,
        }


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("seal")
    pm.add_hookspecs(hookspecs)
    return pm


def _describe(component: Any, noun: bool = False) -> str:
    """``'name' (class X)`` for messages, without calling the component's own ``repr``.

    Without a usable name: ``of class X``, or ``an object of class X`` where a noun is needed.
    """
    cls = type(component).__qualname__
    name = getattr(component, "name", None)
    if isinstance(name, str) and name:
        return f"'{name}' (class {cls})"
    return f"an object of class {cls}" if noun else f"of class {cls}"


def _a(word: str) -> str:
    """``word`` with its indefinite article: "a domain", "an evaluator"."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _short(value: Any, limit: int = 80) -> str:
    return shorten(repr(value), limit)


class _Register:
    """The ``register`` callback handed to one plugin's component hook."""

    def __init__(self, registry: "Registry", kind: Kind, plugin: str):
        self._registry, self._kind, self._plugin = registry, kind, plugin

    def __call__(self, component: Any) -> None:
        self._registry._add(self._kind, component, self._plugin)

    def __repr__(self) -> str:
        return f"<register {self._kind.name} for plugin {self._plugin!r}>"


class Registry:
    """All plugins and the components they registered, by kind and name.

    ``trace``: log every hook call (see the module docstring); ``None`` reads ``SEAL_TRACE_HOOKS``.
    """

    def __init__(self, extra_plugins: list[str] | tuple[str, ...] = (), entry_points: bool = True,
                 trace: bool | None = None):
        self.pm = new_plugin_manager()
        self._origins: dict[str, Origin] = {}
        if trace_requested() if trace is None else trace:
            tracer = HookTracer()
            self.pm.add_hookcall_monitoring(tracer.before, tracer.after)
        if entry_points:
            self._load_entry_points()
        for spec in extra_plugins:
            name, module, origin = import_plugin(spec)
            installed = self.pm.get_name(module) if self.pm.is_registered(module) else None
            if installed is not None and self._origins[installed].distribution:
                structlog.get_logger(__name__).warning(
                    "plugin already installed; --plugins adds nothing", plugin=spec, installed_as=installed,
                    source=self._origins[installed].source)
                continue  # the installed plugin is the same module: load it once
            self._register_plugin(module, name, origin)
        self._check_pending()
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
            origin = Origin(
                source,
                distribution=dist.name if dist else None,
                version=dist.version if dist else None,
                file=getattr(plugin, "__file__", None),
            )
            self._register_plugin(plugin, ep.name, origin)

    def _register_plugin(self, plugin: Any, name: str, origin: Origin) -> None:
        source = origin.source
        if self.pm.has_plugin(name) or self.pm.is_registered(plugin):
            raise PluginError(
                f"Plugin '{name}' ({source}) is loaded twice. Pass it to --plugins only when it "
                "is not installed as an entry point, and only once."
            )
        for hook in hook_names():
            func = getattr(plugin, hook, None)
            if callable(func) and self.pm.parse_hookimpl_opts(plugin, hook) is None:
                raise PluginError(
                    f"Plugin '{name}' ({source}) defines {hook}() without the @hookimpl decorator, "
                    "so SEAL would never call it. Put `@hookimpl` (from seal_core import hookimpl) "
                    f"on the line above `def {hook}`."
                )
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            problem = " ".join(str(exc).split())
            raise PluginError(
                f"Plugin '{name}' ({source}) cannot be registered: {problem}. A hook "
                "implementation may take fewer arguments than the hook offers, never other ones: "
                "use the argument names of the hook's signature in seal_core/api/hookspecs.py (listed "
                "in docs/plugins.md)."
            ) from exc
        self._origins[name] = origin

    def _check_pending(self) -> None:
        """Every hook implementation must match a hook: a misspelled name is an error."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin)
            known = hook_names()
            unknown = sorted(
                caller.name
                for caller in self.pm.get_hookcallers(exc.plugin) or []
                if not caller.has_spec()
                and any(i.plugin is exc.plugin and not i.optionalhook for i in caller.get_hookimpls())
            ) or [str(exc)]
            hints = []
            for bad in unknown:
                close = difflib.get_close_matches(bad, known, n=1)
                hints.append(f"'{bad}' (did you mean '{close[0]}'?)" if close else f"'{bad}'")
            raise PluginError(
                f"Plugin '{name}' ({self._where(name)}) implements {', '.join(hints)}, which "
                f"{'is not a SEAL hook' if len(hints) == 1 else 'are not SEAL hooks'}, so SEAL would "
                f"never call {'it' if len(hints) == 1 else 'them'}. Rename "
                f"{'the function' if len(hints) == 1 else 'each function'} to one of the hooks: "
                f"{', '.join(known)} (see docs/plugins.md or seal_core/api/hookspecs.py)."
            ) from exc

    def _where(self, plugin: str) -> str:
        origin = self._origins.get(plugin)
        return origin.source if origin else "?"

    def _collect(self) -> None:
        plugins = sorted(((self.pm.get_name(p) or "", p) for p in self.pm.get_plugins()), key=lambda x: x[0])
        for kind in KINDS.values():
            implementers = {impl.plugin for impl in getattr(self.pm.hook, kind.hook).get_hookimpls()}
            for plugin_name, plugin in plugins:
                if plugin not in implementers:
                    continue
                others = [p for _, p in plugins if p is not plugin]
                caller = self.pm.subset_hook_caller(kind.hook, remove_plugins=others)
                try:
                    caller(register=_Register(self, kind, plugin_name))
                except PluginError:
                    raise
                except Exception as exc:  # the plugin's own bug: name it, do not start the run
                    fix = "Fix the plugin, or uninstall it."
                    if isinstance(exc, TypeError) and "abstract" in str(exc):
                        fix = (f"A component class must implement every abstract method of "
                               f"seal_core.{kind.base.__name__} before it can be created: add "
                               "the missing methods.")
                    raise PluginError(
                        f"Plugin '{plugin_name}' ({self._where(plugin_name)}) raised {exc!r} in "
                        f"{kind.hook}. {fix}"
                    ) from exc

    def _check_contract(self, kind: Kind, component: Any, plugin: str) -> None:
        """The component can serve as a ``kind``; else a PluginError naming plugin and fix."""
        who = f"Plugin '{plugin}' ({self._where(plugin)})"
        base = f"seal_core.{kind.base.__name__}"
        if inspect.isclass(component):
            raise PluginError(
                f"{who} passed the class {component.__qualname__} to the register callback of "
                f"{kind.hook} instead of an instance of it. Call register({component.__qualname__}())."
            )
        if not isinstance(component, kind.base):
            actual = next((k for k in KINDS.values() if isinstance(component, k.base)), None)
            if actual is not None:
                raise PluginError(
                    f"{who} registered {_describe(component, noun=True)} as {_a(kind.name)}, but it is "
                    f"{_a(actual.name)} (a subclass of seal_core.{actual.base.__name__}): {kind.hook} "
                    f"takes {kind.name} components only. Register it from {actual.hook} instead."
                )
        needed = ("name", *kind.required)
        missing = [a for a in needed if not hasattr(component, a)]
        if missing:
            fits = [k for k in KINDS.values()
                    if k is not kind and all(hasattr(component, a) for a in ("name", *k.required))]
            hint = (
                f" It looks like {_a(fits[0].name)} (it has {', '.join(fits[0].required)}): "
                f"register it from {fits[0].hook} instead."
                if fits else f" Add {'it' if len(missing) == 1 else 'them'}, or subclass {base}."
            )
            raise PluginError(
                f"{who} registered {_a(kind.name)} {_describe(component)} that has no "
                f"{', '.join(repr(a) for a in missing)}. A {kind.name} needs: {', '.join(needed)} "
                f"(see {base}).{hint}"
            )
        for attr in needed:
            value = getattr(component, attr)
            if attr in _STRING_ATTRIBUTES:
                if not isinstance(value, str) or not value:
                    raise PluginError(
                        f"{who} registered {_a(kind.name)} {_describe(component)} whose '{attr}' is "
                        f"{value!r}. Set '{attr}' to a non-empty string."
                    )
            elif not callable(value):
                raise PluginError(
                    f"{who} registered {_a(kind.name)} {_describe(component)} whose '{attr}' is "
                    f"not a method but {_short(value, 40)}. Define {attr}() as in {base}."
                )
        if kind.name != "setup" and not isinstance(component, kind.base):
            missing = [m for m in _ENGINE_METHODS if not callable(getattr(component, m, None))]
            if missing:
                raise PluginError(
                    f"{who} registered {_a(kind.name)} {_describe(component)} that has no "
                    f"{', '.join(repr(m) for m in missing)}: the engine hands every component its "
                    f"options through it. Subclass {base}, which provides it."
                )

    def _add(self, kind: Kind, component: Any, plugin: str) -> None:
        self._check_contract(kind, component, plugin)
        name = component.name
        existing = self.components[kind.name].get(name)
        if existing is not None:
            raise PluginError(
                f"Two {kind.name} components are named '{name}': one from plugin "
                f"'{existing.plugin}' ({existing.source}) and one from plugin '{plugin}' "
                f"({self._where(plugin)}). Uninstall one or rename its component."
            )
        origin = self._origins.get(plugin) or Origin("?")
        self.components[kind.name][name] = Registered(
            kind.name, name, component, plugin, origin.source,
            distribution=origin.distribution, version=origin.version, file=origin.file,
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

    def origin(self, plugin: str) -> Origin | None:
        """Where the plugin named ``plugin`` came from (None: no such plugin)."""
        return self._origins.get(plugin)

    @property
    def hook(self) -> Any:
        """The plugin manager's hook relay, for calling event hooks."""
        return self.pm.hook
