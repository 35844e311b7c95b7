"""A new user's first hour: errors that name the real problem, failed starts that leave nothing in
the way, settings that are not silently ignored, the console without third-party noise.
(The docs' commands are checked in tests/docs/test_doc_commands.py, the plugin tutorial in
tests/docs/test_tutorial.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from seal_core.commands.main import main
from seal_core.runtime.paths import has_path_sign, kind_of, not_found
from tiny import TINY, sets, tiny_args

# -- a missing file is named as missing, before any hub lookup ----------------------------------


@pytest.mark.parametrize("value,kind", [("nope.json", "missing"), ("data/nope.csv", "missing"), ("./model", "missing"),
                                        ("~/nowhere", "missing"), ("runs/x/checkpoints/policy", "missing"),
                                        ("nonexistent-dir", "hub"), ("Qwen/Qwen2.5-7B", "hub"),
                                        ("squad:validation", "hub"), ("llama-3.2-1b", "hub")])
def test_the_path_rule(value, kind):
    assert kind_of(value) == kind and has_path_sign(value) == (kind == "missing")


@pytest.mark.parametrize("source", ["nope.json", "nope.jsonl", "nope.csv"])
def test_a_missing_data_file_is_named_missing(source, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(tiny_args("run", run_dir, f"domain.source={source}")) == 2
    err = capsys.readouterr().err
    assert f"domain.source = '{source}': no such file or directory" in err and "Hub" not in err
    assert not run_dir.exists()


def test_a_model_that_is_no_path_and_no_reachable_hub_id_is_refused_before_anything(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run_dir = tmp_path / "run"
    assert main(tiny_args("run", run_dir, "model.policy=nonexistent-dir")) == 2
    err = capsys.readouterr().err
    assert "no such local file or directory" in err and "the hub is off" in err and "Repo id" not in err
    assert not run_dir.exists()  # nothing left to block the retry
    assert main(tiny_args("run", run_dir, "model.policy=./nonexistent-dir")) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_ask_names_a_missing_model_without_config_keys(tmp_path, capsys):
    assert main(["ask", str(tmp_path / "nope"), "What?"]) == 2
    err = capsys.readouterr().err
    assert "seal-run ask MODEL" in err and "no such file or directory" in err and "model.policy" not in err
    (tmp_path / "empty").mkdir()
    assert main(["ask", str(tmp_path / "empty"), "What?"]) == 2
    assert "neither a model (config.json) nor a peft adapter" in capsys.readouterr().err


def test_the_rule_says_the_hub_is_off(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE is set" in not_found("some-org-model", "x", "fix")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert not_found("some-org-model", "x", "fix") is None  # a hub id, and the hub is on: left to the hub


# -- failed starts leave nothing in the way ----------------------------------------------------


def test_a_run_that_fails_after_its_directory_is_made_can_be_resumed(tmp_path, capsys, monkeypatch):
    """Past the checks a run's directory holds its config.yaml at once, so --resume continues it
    (here: the model fails to load the first time, as a hub model can)."""
    import seal_core.loop.workbench as workbench

    real = workbench.load_model

    def failing(spec, **kwargs):
        raise OSError("the hub timed out")

    run_dir = tmp_path / "run"
    monkeypatch.setattr(workbench, "load_model", failing)
    with pytest.raises(OSError):
        main(tiny_args("run", run_dir))
    assert (run_dir / "config.yaml").is_file()
    monkeypatch.setattr(workbench, "load_model", real)
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("command", ["compare", "baselines"])
def test_a_multi_run_command_with_bad_data_makes_no_directory(command, tmp_path, capsys):
    out = tmp_path / "out"
    extra = ["--algorithms", "rest-em,none"] if command == "compare" else []
    assert main([*tiny_args(command, out, "domain.source=nope.json"), *extra]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    assert not out.exists()


def test_check_checks_and_makes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main([*tiny_args("run", run_dir), "--check"]) == 0
    assert "Nothing was run" in capsys.readouterr().out and not run_dir.exists()
    assert main([*tiny_args("run", run_dir, "domain.source=nope.json"), "--check"]) == 2
    run_dir.mkdir()
    (run_dir / "x").write_text("")
    assert main([*tiny_args("run", run_dir), "--check"]) == 2
    assert "already holds files" in capsys.readouterr().err


# -- settings --------------------------------------------------------------------------------


def test_every_round_also_saves_the_final_policy(tiny_run):
    run_dir = tiny_run("checkpoint=every_round", "algorithm.min_reward=-1")
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["policy", "policy-round1"]
    card = (run_dir / "checkpoints" / "policy" / "README.md").read_text()
    assert "after round 1 of 1; the RL updates changed the policy in round(s) 0" in card


def test_a_card_says_when_the_update_kept_nothing(tiny_run):
    run_dir = tiny_run("checkpoint=final")  # random rewards are 0: rest-em keeps nothing above 0
    card = (run_dir / "checkpoints" / "policy" / "README.md").read_text()
    assert "the RL updates changed the policy in round(s) none and left it unchanged in round(s) 0" in card


def test_a_model_role_the_setup_does_not_use_is_refused(tmp_path, capsys):
    assert main(tiny_args("run", tmp_path / "r", "model.teacher=tiny-random")) == 2
    err = capsys.readouterr().err
    assert "'model.teacher'" in err and "setup 'single-model' does not use it" in err
    without_policy = [s for s in TINY if not s.startswith("model.policy=")]
    assert main(["config", *sets([*without_policy, "setup=teacher-student", "model.teacher=tiny-random",
                                  "model.student=tiny-random"])]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["model"]["policy"] is None and resolved["model"]["teacher"] == "tiny-random"


def test_a_role_a_config_file_sets_is_dropped_with_null(capsys):
    """configs/paper.yaml sets model.policy; its teacher-student variant drops it from the command line."""
    paper = str(Path(__file__).resolve().parents[2] / "configs" / "paper.yaml")
    roles = ["setup=teacher-student", "model.teacher=tiny-random", "model.student=tiny-random"]
    assert main(["config", "--config", paper, *sets(roles)]) == 2
    assert "--set model.policy=null" in capsys.readouterr().err
    assert main(["config", "--config", paper, *sets([*roles, "model.policy=null"])]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["model"]["policy"] is None and resolved["model"]["student"] == "tiny-random"


def test_config_checks_the_data(capsys):
    assert main(["config", "--set", "domain.source=nope.json"]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_a_resumed_round_keeps_the_seconds_it_had(tmp_path, monkeypatch):
    from seal_core.runs.store import RunStore
    from tiny import Killed

    run_dir = tmp_path / "run"
    original = RunStore.append_metrics

    def killed_before_the_line(self, metrics):
        raise Killed

    with monkeypatch.context() as mp:
        mp.setattr(RunStore, "append_metrics", killed_before_the_line)
        with pytest.raises(Killed):
            main(tiny_args("run", run_dir, "algorithm.min_reward=-1"))
    pending = json.loads((run_dir / "checkpoints" / "resume.json").read_text())["metrics"]["seconds"]
    assert pending > 0
    assert main(["run", "--resume", str(run_dir)]) == 0
    first = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert first["seconds"] >= pending
    assert original is RunStore.append_metrics


def test_adapt_that_learns_nothing_says_so_and_fails(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The bell of Thrushby is named Old Margery.\n")
    rc = main(["adapt", "--policy", "tiny-random", "--documents", str(docs), "--out", str(tmp_path / "out"),
               "--set", "generator.max_new_tokens=4", "--set", "domain.include_passage=false"])
    assert rc == 2
    assert "learned no document" in capsys.readouterr().err


def test_plugins_into_a_closed_pipe_is_quiet():
    code = "import subprocess, sys; p = subprocess.Popen([sys.executable, '-m', 'seal_core', 'plugins', '--json'], " \
           "stdout=subprocess.PIPE, stderr=subprocess.PIPE); p.stdout.read(10); p.stdout.close(); " \
           "err = p.stderr.read().decode(); p.wait(); print(p.returncode); print(err)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    rc, err = done.stdout.split("\n", 1)
    assert rc == "0" and "Traceback" not in err and "BrokenPipe" not in err


def test_baselines_help_names_its_own_directory(capsys):
    with pytest.raises(SystemExit):
        main(["baselines", "--help"])
    assert "runs/<time>-baselines" in capsys.readouterr().out


# -- the console shows the project's own output ------------------------------------------------


def test_the_listed_third_party_warnings_are_silenced_and_no_others(monkeypatch):
    from seal_core.runtime.quiet import WARNINGS, silence_third_parties

    monkeypatch.delenv("SEAL_LOG_LEVEL", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_third_parties()
        for category, message, _ in WARNINGS:
            warnings.warn(message.replace("\\", "") + " and will be removed in v6.", category)
        warnings.warn("`something_else` is deprecated", FutureWarning)
    assert [str(w.message) for w in caught] == ["`something_else` is deprecated"]


def test_deepspeeds_device_detection_line_is_dropped():
    import logging

    from seal_core.runtime.quiet import silence_third_parties

    silence_third_parties()
    logger = logging.getLogger("DeepSpeed")
    record = logging.LogRecord("DeepSpeed", logging.WARNING, "x.py", 1, "Setting accelerator to CPU. If you have GPU",
                               None, None)
    other = logging.LogRecord("DeepSpeed", logging.WARNING, "x.py", 1, "ZeRO stage 3 initialised", None, None)
    assert not logger.filter(record) and logger.filter(other)


def test_rest_ems_trainer_logs_events_under_a_labelled_bar(tiny_run, capsys):
    run_dir = tiny_run("algorithm.min_reward=-1")
    err = capsys.readouterr().err
    assert "round 0 · rest-em update" in err and "{'train_runtime'" not in err
    events = [json.loads(line) for line in (Path(run_dir) / "log.jsonl").read_text().splitlines()]
    logged = [e for e in events if e["event"] == "rest-em trainer log"]
    assert logged and "train_runtime" in logged[-1] and all(e["round"] == 0 for e in logged)
