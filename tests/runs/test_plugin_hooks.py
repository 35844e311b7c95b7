"""The event hooks, called by a real run: one short run on tiny-random with a recording plugin.

Each hook has a test named ``test_hook_<hook name>`` (tests/docs/test_plugin_docs.py checks that every
hook without a built-in implementation has one). The run also has ``SEAL_TRACE_HOOKS=1`` set, so
it checks that traced hook calls land in the run's log.jsonl.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from seal_core.runtime import logs
from seal_core.commands.main import main
from tiny import tiny_args
from seal_core.hooks.tracing import TRACE_ENV

RECORDER = """\
import json, os
from seal_core import hookimpl

def _record(**row):
    with open(os.environ["SEAL_TEST_HOOK_LOG"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, default=str) + "\\n")

@hookimpl
def seal_run_started(run_dir, config):
    _record(hook="seal_run_started", run_dir=str(run_dir), rounds=config["rounds"],
            domain=config["domain"]["name"])

@hookimpl
def seal_rollout_scored(rollout, run_dir):
    _record(hook="seal_rollout_scored", run_dir=str(run_dir), round=rollout.round,
            task_id=rollout.task_id, edit_index=rollout.edit_index, reward=rollout.reward)

@hookimpl
def seal_round_finished(metrics, round):  # fewer arguments than the hook offers, in any order
    _record(hook="seal_round_finished", round=round, metrics_round=metrics["round"])
"""



def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One traced run with the recording plugin, for the whole module."""
    tmp = tmp_path_factory.mktemp("hooks")
    plugin = tmp / "recorder.py"
    plugin.write_text(RECORDER, encoding="utf-8")
    calls, run_dir = tmp / "calls.jsonl", tmp / "run"
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEAL_TEST_HOOK_LOG", str(calls))
        mp.setenv(TRACE_ENV, "1")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([*tiny_args("run", run_dir), "--plugins", str(plugin)])
    logs.configure()  # close the run's log.jsonl
    assert rc == 0, err.getvalue()[-3000:]
    return SimpleNamespace(dir=run_dir, calls=read_jsonl(calls), stderr=err.getvalue())


def test_hook_seal_run_started(run):
    started = [c for c in run.calls if c["hook"] == "seal_run_started"]
    assert started == [
        {"hook": "seal_run_started", "run_dir": str(run.dir), "rounds": 1, "domain": "knowledge"}
    ]
    assert run.calls[0] == started[0]  # before any rollout or round
    assert (run.dir / "config.yaml").is_file()


def test_hook_seal_rollout_scored(run):
    scored = [(c["round"], c["task_id"], c["edit_index"], c["reward"]) for c in run.calls
              if c["hook"] == "seal_rollout_scored"]
    rollouts = [(r["round"], r["task_id"], r["edit_index"], r["reward"])
                for r in read_jsonl(run.dir / "rollouts.jsonl")]
    assert scored == rollouts  # one call per line, in order
    assert len(scored) == 2 * 2  # train_limit x edits_per_task


def test_hook_seal_round_finished(run):
    finished = [(c["round"], c["metrics_round"]) for c in run.calls if c["hook"] == "seal_round_finished"]
    metrics = read_jsonl(run.dir / "metrics.jsonl")
    assert finished == [(m["round"], m["round"]) for m in metrics] == [(0, 0), (1, 1)]
    hooks = [c["hook"] for c in run.calls]
    last_rollout = max(i for i, h in enumerate(hooks) if h == "seal_rollout_scored")
    assert hooks.index("seal_round_finished") > last_rollout  # round 0 ends after its rollouts
    assert hooks[-1] == "seal_round_finished"


def test_traced_hook_calls_land_in_the_run_log(run):
    traced = [e for e in read_jsonl(run.dir / "log.jsonl") if e.get("event") == "hook call"]
    assert traced and all(e["logger"] == "seal.trace" for e in traced)
    by_hook: dict[str, list[dict]] = {}
    for event in traced:
        by_hook.setdefault(event["hook"], []).append(event)
    # each plugin's implementation of an event hook is a call of its own (seal_core/hooks/events.py):
    # the recorder's, and the built-in trackers plugin's (which reports nothing in this run)
    assert [e["plugins"] for e in by_hook["seal_run_started"]] == [["recorder"], ["trackers"]]
    recorded = {hook: [e for e in events if e["plugins"] == ["recorder"]] for hook, events in by_hook.items()}
    assert len(recorded["seal_rollout_scored"]) == 4
    assert [e["args"]["round"] for e in recorded["seal_round_finished"]] == [0, 1]
    assert all(isinstance(e["seconds"], float) and "error" not in e for e in traced)
    assert "hook call" in run.stderr  # and on the console
