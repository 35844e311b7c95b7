"""report_to: the ``trackers`` plugin (seal_plugins/trackers.py) and rest-em's SFT, read back from the
TensorBoard event files of one short run; the run also carries a plugin whose event hooks raise,
and finishes all the same (seal_core/hooks/events.py)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from structlog.testing import capture_logs

from seal_core import Rollout
from seal_core.runtime import logs
from seal_core.commands.main import main
from tiny import tiny_args

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

import seal_plugins.trackers as trackers  # noqa: E402

BROKEN = """\
from seal_core import hookimpl

@hookimpl
def seal_rollout_scored(rollout):
    raise RuntimeError("tracker down")

@hookimpl
def seal_round_finished(round):
    raise OSError(28, "No space left on device")
"""



def accumulate(path: Path) -> EventAccumulator:
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trackers")
    plugin = tmp / "broken.py"
    plugin.write_text(BROKEN, encoding="utf-8")
    run_dir = tmp / "run"
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main([*tiny_args("run", run_dir, "algorithm.min_reward=-1", "report_to=tensorboard"), "--plugins", str(plugin)])
    logs.configure()
    return SimpleNamespace(rc=rc, dir=run_dir, stderr=err.getvalue())


def test_a_run_with_raising_event_hooks_finishes(run):
    assert run.rc == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    warned = [json.loads(line) for line in (run.dir / "log.jsonl").read_text().splitlines()
              if "event hook raised" in line]
    assert sorted(w["hook"] for w in warned) == ["seal_rollout_scored", "seal_round_finished"]  # once each


def test_round_metrics_and_rewards_are_in_the_tensorboard_event_file(run):
    assert list((run.dir / "tensorboard").glob("events.out.tfevents.*"))
    acc = accumulate(run.dir / "tensorboard")
    tags = acc.Tags()["scalars"]
    metrics = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    for key in ("eval_base", "eval_adapted"):
        events = acc.Scalars(f"round/{key}")
        assert [e.step for e in events] == [0, 1]
        assert [e.value for e in events] == pytest.approx([m[key] for m in metrics])
    rewards = [json.loads(line)["reward"] for line in (run.dir / "rollouts.jsonl").read_text().splitlines()]
    assert [e.value for e in acc.Scalars("rollout/reward")] == pytest.approx(rewards)
    assert "round/train_reward_mean" in tags
    assert "self_edits/round_0/text_summary" in acc.Tags()["tensors"]


def test_rest_em_sft_reports_its_loss(run):
    acc = accumulate(run.dir / "tensorboard" / "rest-em-round0")
    assert "train/loss" in acc.Tags()["scalars"]


def test_nothing_is_reported_by_default(tmp_path):
    trackers.seal_run_started(run_dir=tmp_path, config={"report_to": [], "rounds": 1})
    assert str(tmp_path) not in trackers._RUNS and not (tmp_path / "tensorboard").exists()


def test_a_missing_tracker_warns_once_and_the_others_go_on(tmp_path, monkeypatch):
    monkeypatch.setattr(trackers, "installed", lambda name: name == "tensorboard")
    with capture_logs() as logged:
        run = trackers.RunTrackers(tmp_path, {"report_to": ["wandb", "tensorboard"], "rounds": 1})
    assert [t.name for t in run.live] == ["tensorboard"]
    assert [e["tracker"] for e in logged if e["log_level"] == "warning"] == ["wandb"]
    run.close()


def test_a_failing_tracker_is_dropped_after_one_warning(tmp_path, monkeypatch):
    def full_disk(self, values, step):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trackers.TensorBoard, "scalars", full_disk)
    run = trackers.RunTrackers(tmp_path, {"report_to": ["tensorboard"], "rounds": 1})
    rollout = Rollout(0, "t", 0, "p", "e", 0.0, 0.5, 0.5)
    with capture_logs() as logged:
        for _ in range(3):
            run.rollout(rollout)
        run.round(0, {"round": 0, "eval_base": 0.1})
    assert run.live == [] and len([e for e in logged if e["log_level"] == "warning"]) == 1
