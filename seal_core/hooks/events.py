"""Event hooks that cannot stop a run: each plugin's implementation is called on its own, and one
that raises is logged as a warning (once per plugin and hook) while the run goes on.

Loggers and trackers follow a run through the event hooks (``seal_run_started``,
``seal_rollout_scored``, ``seal_round_finished``); a broken tracker, a full disk or a network
error in one of them must not cost the run. pluggy stops a hook call at the first implementation
that raises, so :class:`EventHooks` calls each plugin's implementation through its own subset
caller: ``SEAL_TRACE_HOOKS=1`` logs one ``hook call`` event per plugin that implements the hook.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy
import structlog

from seal_core.runtime.interrupt import Interrupted

log = structlog.get_logger(__name__)


class EventHooks:
    """``hooks.seal_round_finished(round=..., metrics=..., run_dir=...)``: calls every plugin's
    implementation of the event hook; an exception in one is logged and swallowed."""

    def __init__(self, pm: pluggy.PluginManager):
        self._pm = pm
        self._callers: dict[str, list[tuple[str, Callable[..., Any]]]] = {}
        self._warned: set[tuple[str, str]] = set()
        self.failures: dict[tuple[str, str], int] = {}  # (plugin, hook) -> exceptions swallowed

    def _per_plugin(self, hook: str) -> list[tuple[str, Callable[..., Any]]]:
        """(plugin name, a caller of that plugin's implementation alone), in pluggy's call order."""
        if hook not in self._callers:
            impls = list(reversed(getattr(self._pm.hook, hook).get_hookimpls()))  # call order
            plugins = [impl.plugin for impl in impls]
            self._callers[hook] = [
                (impl.plugin_name,
                 self._pm.subset_hook_caller(hook, remove_plugins=[p for p in plugins if p is not impl.plugin]))
                for impl in impls
            ]
        return self._callers[hook]

    def call(self, hook: str, **kwargs: Any) -> None:
        """Call ``hook`` with ``kwargs`` on every plugin that implements it (one traced call per
        plugin; a hook that none implements is called once all the same, so the trace shows it)."""
        callers = self._per_plugin(hook)
        if not callers:
            getattr(self._pm.hook, hook)(**kwargs)
        for plugin, caller in callers:
            try:
                caller(**kwargs)
            except Interrupted:
                raise
            except Exception as exc:  # a plugin's bug or a tracker's I/O error: never the run's end
                key = (plugin, hook)
                self.failures[key] = self.failures.get(key, 0) + 1
                if key not in self._warned:
                    self._warned.add(key)
                    log.warning("event hook raised; the run goes on without it", plugin=plugin, hook=hook,
                                error=repr(exc), fix="fix or uninstall the plugin; later errors of this "
                                "hook are counted, not logged")

    def __getattr__(self, hook: str) -> Callable[..., None]:
        if hook.startswith("_"):
            raise AttributeError(hook)
        return lambda **kwargs: self.call(hook, **kwargs)


class NoEvents:
    """The event hooks of ranks other than 0, which call nothing: trackers and loggers hear each
    event once, from rank 0."""

    def __getattr__(self, hook: str) -> Callable[..., None]:
        if hook.startswith("_"):
            raise AttributeError(hook)
        return lambda **kwargs: None


def event_hooks(pm: pluggy.PluginManager) -> EventHooks | NoEvents:
    """This process's event hooks: the plugins' on rank 0 (or in one process), none on the other
    ranks, so that each event reaches the trackers once."""
    from seal_core.runtime import distributed

    return EventHooks(pm) if distributed.is_main() else NoEvents()
