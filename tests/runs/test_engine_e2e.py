"""End to end through the CLI: a 2-round run on tiny-random, and the CLI's error paths."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import seal_core.loop.workbench
import seal_core.models.loading
from seal_core.runtime import logs
from seal_core.commands.main import main
from tiny import tiny_args

ROUNDS, TRAIN_LIMIT, EVAL_LIMIT, K = 2, 2, 2, 2
E2E = (f"rounds={ROUNDS}", f"edits_per_task={K}", f"domain.train_limit={TRAIN_LIMIT}", f"domain.eval_limit={EVAL_LIMIT}",
       "generator.max_new_tokens=12",
       "algorithm.min_reward=-1",  # the random model's rewards are all 0: keep them anyway
       "checkpoint=final")


def read_jsonl(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert all(line.strip() for line in lines), f"{path.name} has blank lines"
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One CLI run for the whole module: its return code, stdout, run dir and model loads."""
    run_dir = tmp_path_factory.mktemp("e2e") / "run"
    loads: list[str] = []
    real_load = seal_core.loop.workbench.load_model

    def counting_load(spec, **kwargs):
        loads.append(spec)
        return real_load(spec, **kwargs)

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(seal_core.loop.workbench, "load_model", counting_load)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(tiny_args("run", run_dir, *E2E))
    logs.configure()  # close the run's log.jsonl, so later tests do not log into it
    return SimpleNamespace(rc=rc, stdout=out.getvalue(), stderr=err.getvalue(), dir=run_dir, loads=loads)


@pytest.fixture(scope="module")
def bundled_splits():
    from seal_domains.knowledge import KnowledgeDomain

    domain = KnowledgeDomain()
    return {t.id for t in domain.load_tasks("train")}, {t.id for t in domain.load_tasks("eval")}


def test_run_succeeds(run):
    assert run.rc == 0, run.stderr[-3000:]
    assert run.loads == ["tiny-random"]  # single-model: the policy is loaded once
    names = {p.name for p in run.dir.iterdir()}
    assert {"config.yaml", "rollouts.jsonl", "metrics.jsonl", "evaluations.jsonl", "log.jsonl",
            "results.md", "plot.png", "checkpoints"} <= names
    assert not any(n.startswith(".") for n in names)  # no temp files left behind
    assert not any(n.startswith("rest-em-") for n in names)


def test_config_yaml(run):
    config = yaml.safe_load((run.dir / "config.yaml").read_text(encoding="utf-8"))
    assert config["model"]["policy"] == "tiny-random"
    assert config["rounds"] == ROUNDS and config["edits_per_task"] == K
    assert config["domain"]["train_limit"] == TRAIN_LIMIT
    assert config["inner"]["name"] == "multi-lora" and config["inner"]["epochs"] == 1 and config["inner"]["r"] == 32
    assert config["algorithm"]["name"] == "rest-em"
    assert config["algorithm"]["min_reward"] == -1.0 and config["algorithm"]["keep_top"] == 1
    assert config["generator"]["max_new_tokens"] == 12
    assert config["evaluator"]["name"] == "qa"


def test_rollouts(run, bundled_splits):
    rows = read_jsonl(run.dir / "rollouts.jsonl")
    assert len(rows) == ROUNDS * TRAIN_LIMIT * K
    fields = {"round", "task_id", "edit_index", "edit", "score_before", "score_after", "reward", "prompt"}
    for row in rows:
        assert fields <= row.keys()
        assert row["reward"] == pytest.approx(row["score_after"] - row["score_before"], abs=1e-12)
        assert 0.0 <= row["score_before"] <= 1.0 and 0.0 <= row["score_after"] <= 1.0
        assert isinstance(row["edit"], str)
        assert row["edit_index"] in range(K)
        assert "Passage:" in row["prompt"]
    ids = [(r["round"], r["task_id"], r["edit_index"]) for r in rows]
    assert len(set(ids)) == len(ids)
    assert sorted({r["round"] for r in rows}) == list(range(ROUNDS))
    train_ids, eval_ids = bundled_splits
    for rnd in range(ROUNDS):
        tasks = {r["task_id"] for r in rows if r["round"] == rnd}
        assert len(tasks) == TRAIN_LIMIT
        assert tasks <= train_ids
        assert not tasks & eval_ids


def test_metrics(run):
    rows = read_jsonl(run.dir / "metrics.jsonl")
    rollouts = read_jsonl(run.dir / "rollouts.jsonl")
    assert [m["round"] for m in rows] == list(range(ROUNDS + 1))
    for m in rows:
        assert {"eval_base", "eval_adapted", "seconds"} <= m.keys()
        assert 0.0 <= m["eval_base"] <= 1.0 and 0.0 <= m["eval_adapted"] <= 1.0
        assert m["seconds"] >= 0
        assert m["eval_tasks"] == EVAL_LIMIT
    for m in rows[:-1]:
        rewards = [r["reward"] for r in rollouts if r["round"] == m["round"]]
        assert m["train_reward_mean"] == pytest.approx(sum(rewards) / len(rewards))
        assert m["n_rollouts"] == TRAIN_LIMIT * K
        assert m["n_kept"] == TRAIN_LIMIT  # min_reward=-1 and keep_top=1: one edit per task
        assert m["sft_loss"] > 0
    assert rows[-1].get("train_reward_mean") is None
    assert "n_kept" not in rows[-1]


def test_evaluations(run, bundled_splits):
    rows = read_jsonl(run.dir / "evaluations.jsonl")
    assert len(rows) == (ROUNDS + 1) * EVAL_LIMIT
    _, eval_ids = bundled_splits
    for rnd in range(ROUNDS + 1):
        of_round = [r for r in rows if r["round"] == rnd]
        assert len(of_round) == EVAL_LIMIT
        assert {r["task_id"] for r in of_round} <= eval_ids
    # the same held-out tasks every round
    assert len({r["task_id"] for r in rows}) == EVAL_LIMIT
    assert all({"score_before", "score_after", "edit"} <= r.keys() for r in rows)


def test_log_jsonl(run):
    lines = (run.dir / "log.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    assert all("event" in e for e in events)
    names = [e["event"] for e in events]
    assert names.count("round finished") == ROUNDS + 1
    assert names.count("round started") == ROUNDS + 1
    assert "run started" in names and "checkpoint saved" in names
    assert names.index("run started") < names.index("round started")


def test_results_md_and_stdout(run):
    text = (run.dir / "results.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| round")]
    assert [row.split("|")[1].strip() for row in rows] == [str(r) for r in range(ROUNDS + 1)]
    assert "plot.png" in text
    # the CLI printed the table
    assert "| round | eval base |" in run.stdout
    for r in range(ROUNDS + 1):
        assert f"\n| {r} |" in run.stdout
    assert str(run.dir) in run.stdout


def test_plot_png(run):
    data = (run.dir / "plot.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 1000


def test_checkpoint_is_a_model_directory(run):
    """checkpoints/policy is a save_pretrained directory that transformers loads as it is."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from seal_core.models.loading import load_model, plain_state_dict

    path = run.dir / "checkpoints" / "policy"
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
            "README.md"} <= {p.name for p in path.iterdir()}
    assert not [p for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    tensors = load_file(str(path / "model.safetensors"))
    assert not any("lora_" in k or ".base_layer." in k for k in tensors)
    base = plain_state_dict(load_model("tiny-random").model)
    # two RL updates ran: the policy is no longer the initial model
    assert any(not torch.equal(tensors[k], base[k]) for k in tensors)
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer("Skarren Island").input_ids
    assert all(torch.equal(model.state_dict()[k], tensors[k]) for k in tensors)
    assert [p.name for p in (run.dir / "checkpoints").iterdir()] == ["policy"]  # no resume point left


def test_model_card(run):
    card = (run.dir / "checkpoints" / "policy" / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlibrary_name: transformers\n")
    assert "- base model: `tiny-random`" in card and "algorithm `rest-em`" in card
    assert f"`seal-run run --run-dir {run.dir} --set model.policy=tiny-random" in card  # the command
    assert "| round | eval base |" in card and f"\n| {ROUNDS} |" in card  # the metrics table
    assert "edits_per_task: 2" in card  # the resolved config


def test_a_new_run_continues_from_the_saved_policy(run, tmp_path):
    """model.policy=RUN/checkpoints/policy: a new run starts from the trained weights."""
    final_sha = read_jsonl(run.dir / "metrics.jsonl")[ROUNDS]["generator_sha"]  # after both updates
    new = tmp_path / "continued"
    args = tiny_args("run", new, *E2E, f"model.policy={run.dir / 'checkpoints' / 'policy'}", "rounds=0", "checkpoint=none")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = main(args)
    logs.configure()
    assert rc == 0
    assert read_jsonl(new / "metrics.jsonl")[0]["generator_sha"] == final_sha


def test_push_to_hub_offline_fails_before_the_run_with_a_clear_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc = main([*tiny_args("run", tmp_path / "r", *E2E), "--push-to-hub", "someone/seal-policy"])
    err = capsys.readouterr().err
    assert rc == 2 and "HF_HUB_OFFLINE" in err and "hf upload" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


# -- error paths -----------------------------------------------------------------------------


@pytest.fixture
def no_model_loads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(seal_core.models.loading, "load_model", refuse)
    monkeypatch.setattr(seal_core.loop.workbench, "load_model", refuse)


def test_bad_config_key_fails_before_loading(tmp_path, capsys, no_model_loads):
    run_dir = tmp_path / "run"
    rc = main(["run", "--set", "inner.lr=1", "--set", "model.policy=tiny-random", "--run-dir", str(run_dir)])
    out, err = capsys.readouterr()
    assert rc == 2
    assert "inner.lr" in err
    assert err.startswith("seal-run: error:")
    assert "Traceback" not in err
    assert not run_dir.exists()


def test_bad_config_value_fails_before_loading(tmp_path, capsys, no_model_loads):
    rc = main(["run", "--set", "rounds=-1", "--run-dir", str(tmp_path / "run")])
    assert rc == 2
    assert "rounds" in capsys.readouterr().err


def test_existing_run_dir_is_refused(tmp_path, capsys, no_model_loads):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text("{}\n", encoding="utf-8")
    rc = main(tiny_args("run", run_dir, *E2E))
    assert rc == 2
    assert "already holds files" in capsys.readouterr().err
    assert [p.name for p in run_dir.iterdir()] == ["metrics.jsonl"]
    assert (run_dir / "metrics.jsonl").read_text(encoding="utf-8") == "{}\n"


def test_plugins_json(capsys):
    assert main(["plugins", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    found = {(e["kind"], e["name"]): e["plugin"] for e in entries}
    expected = {
        ("domain", "knowledge"): "knowledge",
        ("evaluator", "qa"): "qa",
        ("edit_generator", "hf-generate"): "hf-generate",
        ("inner_updater", "lora"): "lora",
        ("algorithm", "rest-em"): "rest-em",
        ("setup", "single-model"): "single-model",
    }
    for k, plugin in expected.items():
        assert found.get(k) == plugin, k
    assert all({"kind", "name", "plugin"} <= e.keys() for e in entries)


def test_config_command_prints_resolved_yaml(capsys, no_model_loads):
    assert main(["config", "--set", "rounds=3", "--set", "inner.epochs=4"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["rounds"] == 3
    assert config["inner"]["epochs"] == 4
    assert config["algorithm"]["name"] == "rest-em"


@pytest.fixture
def close_run_log():
    yield
    logs.configure()  # a failed run leaves its log.jsonl open as the log sink


def test_bad_tiny_spec_is_a_clean_error(tmp_path, capsys, close_run_log):
    rc = main(["run", "--set", "model.policy=tiny-random:foo=1", "--run-dir", str(tmp_path / "run")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "tiny-random:foo=1" in err and "Traceback" not in err


@pytest.mark.parametrize("override", ["model.device=cuda", "model.policy=tiny-random:foo=1"])
def test_model_errors_surface_before_the_run_dir_is_created(tmp_path, capsys, close_run_log, override):
    import torch

    if override.startswith("model.device") and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    run_dir = tmp_path / "run"
    rc = main(["run", "--set", "model.policy=tiny-random", "--set", override, "--run-dir", str(run_dir)])
    assert rc == 2
    assert override.split("=", 1)[1] in capsys.readouterr().err
    assert not run_dir.exists() or not any(run_dir.iterdir())


def test_an_unchanged_held_out_self_edit_scores_the_same_every_round(tmp_path):
    """Held-out adaptations train from round 0's seed in every round (common random numbers): with
    no RL update the greedy self-edits repeat, and so does every held-out score, to the last digit
    of the dense score; the training rollouts still draw a new seed each round."""
    run_dir = tmp_path / "run"
    args = ["run", "--run-dir", str(run_dir), "--set", "model.policy=tiny-random", "--set", "rounds=2",
            "--set", "algorithm.name=none", "--set", "evaluator.name=answer-likelihood", "--set", "domain.eval_limit=2",
            "--set", "domain.train_limit=1", "--set", "edits_per_task=1", "--set", "generator.max_new_tokens=12",
            "--set", "inner.epochs=2", "--set", "checkpoint=none"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(args) == 0
    logs.configure()
    evals = read_jsonl(run_dir / "evaluations.jsonl")
    by_round = [{e["task_id"]: (e["edit"], e["score_after"]) for e in evals if e["round"] == r} for r in range(3)]
    assert by_round[0] == by_round[1] == by_round[2] and len(by_round[0]) == 2
    assert len({e["score_after"] for e in evals} | {e["score_before"] for e in evals}) > 1  # the scores are not all one value
