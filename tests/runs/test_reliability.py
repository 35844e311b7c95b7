"""Bad input gets a clear message and loses nothing; safe defaults hold."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from seal_core.commands.main import main
from seal_core.loop.config import load_raw, resolve
from seal_core.api.errors import ConfigError, EditRejected, SealError
from seal_core.runs.store import named_run_dir
from tiny import rows, tiny_args

ROOT = Path(__file__).resolve().parents[2]


def _args(run_dir: Path, *extra: str) -> list[str]:
    return tiny_args("run", run_dir, "checkpoint=final", *extra)


# -- bad input -----------------------------------------------------------------------------------


def test_empty_dataset_is_refused_before_the_run_directory_exists(tmp_path, capsys):
    source = tmp_path / "empty.json"
    source.write_text("[]")
    run_dir = tmp_path / "run"
    assert main(_args(run_dir, f"domain.source={source}")) == 2
    err = capsys.readouterr().err
    assert str(source) in err and "no passages" in err
    assert not run_dir.exists()


def test_malformed_record_names_file_and_record(tmp_path, capsys):
    source = tmp_path / "bad.json"
    source.write_text(json.dumps([{"title": "ok", "context": "x", "questions": [{"question": "q?", "answer": "a"}]},
                                  {"title": "broken", "questions": []}]))
    assert main(_args(tmp_path / "run", f"domain.source={source}")) == 2
    err = capsys.readouterr().err
    assert str(source) in err and "record 1" in err and "'broken'" in err


def test_invalid_utf8_data_is_named(tmp_path, capsys):
    source = tmp_path / "latin1.json"
    source.write_bytes('[{"title": "Caf\xe9"}]'.encode("latin-1"))
    assert main(_args(tmp_path / "run", f"domain.source={source}")) == 2
    assert "not valid UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize("updater", ["lora", "multi-lora"])
def test_rejected_edits_score_zero_with_a_reason_and_the_run_goes_on(tmp_path, monkeypatch, updater):
    """An unparsable self-edit (the domain raises EditRejected) and a NaN loss (the updater
    rejects it: ``lora`` one edit at a time, ``multi-lora`` one adapter of a batch)."""
    import torch

    from seal_domains.knowledge import KnowledgeDomain
    from seal_plugins.lora_updater import LoraUpdater
    from seal_plugins.multi_lora import MultiLoraUpdater

    original_texts = KnowledgeDomain.training_texts
    original_adapt = LoraUpdater.adapt
    original_losses = MultiLoraUpdater._token_losses
    calls = {"n": 0, "nan": 0}

    def texts(self, task, edit):
        calls["n"] += 1
        if calls["n"] == 2:
            raise EditRejected("unparsable self-edit: expected one fact per line")
        return original_texts(self, task, edit)

    def adapt(self, student, texts_):
        if calls["n"] == 3:
            raise EditRejected("inner-loop loss became nan")
        return original_adapt(self, student, texts_)

    def token_losses(self, *args):
        losses, owners = original_losses(self, *args)
        # the training batch: its first adapter diverges in the first step (the packed pass
        # and multi-lora's one-adapter-per-pack redo of it)
        if calls["n"] >= 5 and calls["nan"] < 2:
            calls["nan"] += 1
            losses = torch.where(owners == 0, losses * float("nan"), losses)
        return losses, owners

    monkeypatch.setattr(LoraUpdater, "adapt", adapt)
    monkeypatch.setattr(MultiLoraUpdater, "_token_losses", token_losses)
    monkeypatch.setattr(KnowledgeDomain, "training_texts", texts)
    run_dir = tmp_path / "run"
    assert main(_args(run_dir, f"inner.name={updater}")) == 0
    found = rows(run_dir / "rollouts.jsonl")
    assert len(found) == 4  # every rollout was written, the run finished
    reasons = [r["details"].get("reason") for r in found]
    assert "unparsable self-edit: expected one fact per line" in reasons
    assert "inner-loop loss became nan" in reasons
    for r in found:
        if r["details"].get("reason"):
            assert r["reward"] == 0.0 and r["score_after"] == r["score_before"]
    assert len(rows(run_dir / "metrics.jsonl")) == 2


def test_long_training_text_is_truncated_and_logged(tmp_path, fresh_tiny):
    from seal_plugins.lora_updater import LoraOptions, LoraUpdater
    from seal_core.runtime import logs

    log_file = tmp_path / "log.jsonl"
    logs.configure(log_file)
    try:
        LoraUpdater().configured(LoraOptions(epochs=1, max_length=16)).adapt(fresh_tiny, ["word " * 100, "short"])
    finally:
        logs.configure()
    events = [e for e in rows(log_file) if e["event"] == "training text truncated"]
    assert events and events[0]["max_length"] == 16 and events[0]["longest_tokens"] > 16


def test_a_plugin_that_raises_on_import_stops_the_run_before_it_starts(tmp_path, capsys):
    plugin = tmp_path / "broken_plugin.py"
    plugin.write_text("raise RuntimeError('boom at import')\n")
    run_dir = tmp_path / "run"
    assert main([*_args(run_dir), "--plugins", str(plugin)]) == 2
    err = capsys.readouterr().err
    assert "broken_plugin" in err and "boom at import" in err
    assert not run_dir.exists()


# -- safe defaults -------------------------------------------------------------------------------


def test_trust_remote_code_is_off_by_default_and_passed_through(tmp_path, monkeypatch, registry):
    assert resolve(load_raw(None, []), registry).model.trust_remote_code is False
    import transformers

    from seal_core.models.loading import load_model

    seen = {}

    def fake(source, **kwargs):
        seen[source] = kwargs.get("trust_remote_code")
        raise OSError("stop here")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SealError):
        load_model(str(tmp_path))
    assert seen == {str(tmp_path): False}


def test_no_pickle_anywhere_in_the_code():
    """Checkpoints are safetensors; nothing unpickles user files."""
    sources = [p for d in ("seal_core", "plugins", "domains") for p in (ROOT / d).rglob("*.py")]
    assert sources
    for path in sources:
        text = path.read_text()
        assert "pickle" not in text, path
        assert "torch.save(" not in text, path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)


def test_secrets_never_reach_the_run_directory(tmp_path, monkeypatch):
    secret = "sk-test-9f8e7d6c5b4a-do-not-leak"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("HF_TOKEN", secret)
    run_dir = tmp_path / "run"
    assert main(_args(run_dir)) == 0
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".pkl")]


@pytest.mark.parametrize("key", ["evaluator.api_key", "model.hf_token", "algorithm.secret", "evaluator.password"])
def test_secret_looking_config_keys_are_refused(key, registry):
    with pytest.raises(ConfigError, match="environment"):
        resolve(load_raw(None, [f"{key}=abc"]), registry)


@pytest.mark.parametrize("name", ["../escape", "a/b", "/abs", "..", ".hidden", "~home", ""])
def test_a_run_name_cannot_leave_the_runs_directory(name, tmp_path):
    with pytest.raises(SealError, match="Run name"):
        named_run_dir(name, tmp_path / "runs")


def test_a_run_name_lands_under_the_runs_directory(tmp_path):
    assert named_run_dir("exp-1.v2", tmp_path / "runs") == tmp_path / "runs" / "exp-1.v2"
