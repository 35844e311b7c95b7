"""Event hooks that raise are logged, never the run's end (seal_core/hooks/events.py).

A whole run with a raising plugin is in tests/runs/test_trackers.py (one run serves both)."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from seal_core import hookimpl
from seal_core.hooks.events import EventHooks
from seal_core.runtime.interrupt import Interrupted
from seal_core.hooks.registry import new_plugin_manager


class Broken:
    @hookimpl
    def seal_round_finished(self, round):
        raise OSError(28, "No space left on device")


class Recorder:
    def __init__(self):
        self.rounds = []

    @hookimpl
    def seal_round_finished(self, round, metrics):
        self.rounds.append((round, metrics["x"]))


def events(*plugins) -> EventHooks:
    pm = new_plugin_manager()
    for i, plugin in enumerate(plugins):
        pm.register(plugin, name=f"p{i}")
    return EventHooks(pm)


def test_a_raising_hook_is_logged_once_and_the_others_still_run():
    recorder = Recorder()
    hooks = events(recorder, Broken())  # registered last: pluggy calls it first
    with capture_logs() as logged:
        for rnd in range(3):
            hooks.seal_round_finished(round=rnd, metrics={"x": rnd}, run_dir=None)
    assert recorder.rounds == [(0, 0), (1, 1), (2, 2)]
    warnings = [e for e in logged if e["log_level"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["plugin"] == "p1" and "No space" in warnings[0]["error"]
    assert hooks.failures == {("p1", "seal_round_finished"): 3}


def test_a_hook_without_implementations_is_a_no_op():
    events().seal_run_started(run_dir=None, config={})


def test_interrupted_is_not_swallowed():
    class Stops:
        @hookimpl
        def seal_round_finished(self):
            raise Interrupted

    with pytest.raises(Interrupted):
        events(Stops()).seal_round_finished(round=0, metrics={}, run_dir=None)


@pytest.mark.parametrize("main_rank", [True, False])
def test_only_rank_0_calls_the_plugins(monkeypatch, main_rank):
    """Trackers hear each event once: the event hooks of a rank other than 0 call no plugin (and
    rank 0's do, the control that the recorder would have seen a call)."""
    from seal_core.hooks.events import event_hooks
    from seal_core.runtime import distributed

    monkeypatch.setattr(distributed, "is_main", lambda: main_rank)
    recorder = Recorder()
    pm = new_plugin_manager()
    pm.register(recorder, name="recorder")
    event_hooks(pm).seal_round_finished(round=0, metrics={"x": 7}, run_dir=None)
    assert recorder.rounds == ([(0, 7)] if main_rank else [])
