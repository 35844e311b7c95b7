"""``seal-run adapt`` and ``seal-run ask`` (seal_core/deploy/adapter.py, documents.py, lora_export.py,
ask.py): documents in, a peft adapter per document (or one merged model) out, on tiny-random.

tiny-random writes empty self-edits, so the end-to-end tests use an ``echo`` edit generator
(a --plugins file) that restates the document one sentence per line."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from seal_core.runtime import logs
from seal_core.commands.main import main
from seal_core.deploy.documents import read_documents

ECHO = """\
from seal_core import EditGenerator, hookimpl


class Echo(EditGenerator):
    name = "echo"

    def generate(self, model, prompts, k, *, greedy=False, tasks=None):
        return [[t.context.replace(". ", ".\\n")] * k if "Ansel" not in t.context else [""] * k for t in tasks]


@hookimpl
def seal_register_edit_generators(register):
    register(Echo())
"""
FAST = ["--set", "inner.epochs=2", "--set", "inner.learning_rate=5e-3"]


def write_documents(folder: Path) -> Path:
    folder.mkdir()
    (folder / "bell.txt").write_text("The bell of Thrushby is named Old Margery. It was cast in 1602.\n")
    (folder / "mill.md").write_text("# The Orrick Mill\n\nThe Orrick mill grinds barley. Its wheel has 14 paddles.\n")
    (folder / "more.json").write_text(json.dumps([{"title": "Kites", "text": "Quillhaven kites are made of reed."},
                                                  {"title": "No text"}]))
    (folder / "lines.jsonl").write_text('{"text": "The river Ansel is cold."}\nnot json\n')
    (folder / "table.csv").write_text("a,b\n")
    (folder / "broken.txt").write_bytes(b"\xff\xfe bad")
    return folder


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    logs.configure()
    return rc, out.getvalue(), err.getvalue()


def test_documents_are_read_and_the_unreadable_reported_by_name(tmp_path):
    docs, skipped = read_documents(write_documents(tmp_path / "docs"))
    assert [(d.name, d.title) for d in docs] == [("bell", "bell"), ("lines-1", "lines-1"),
                                                  ("mill", "The Orrick Mill"), ("Kites", "Kites")]
    assert sorted(name for name, _ in skipped) == ["broken.txt", "lines.jsonl line 2", "more.json record 1",
                                                  "table.csv"]
    bundled = Path(__file__).resolve().parents[2] / "seal_domains" / "knowledge" / "data" / "passages.json"
    passages, none = read_documents(bundled)  # SEAL's passage format: its 'context' is the text
    assert passages[0].title == "The Velmora Lighthouse" and "Skarren Island" in passages[0].text and not none


@pytest.mark.parametrize("updater", ["lora", "multi-lora"])
def test_the_saved_adapter_is_the_adapted_student(updater, registry, fresh_tiny, tiny_logits, tmp_path):
    """Differential: PeftModel.from_pretrained(base, adapter) computes what the adapted student does."""
    from peft import PeftModel

    from seal_core.deploy.lora_export import save_peft_adapter
    from seal_core.models.loading import load_model

    inner = registry.get("inner_updater", updater)
    texts = ["The bell of Thrushby is named Old Margery.", "Old Margery was cast in 1602."]
    base_logits = tiny_logits(fresh_tiny)
    with inner.adapted(fresh_tiny, texts) as adapted:
        expected = tiny_logits(adapted)
        save_peft_adapter(adapted.model, tmp_path / "adapter", "tiny-random", updater)
    assert not torch.allclose(expected, base_logits, atol=1e-4)  # negative control: training moved it
    loaded = load_model("tiny-random")
    loaded.model = PeftModel.from_pretrained(loaded.model, str(tmp_path / "adapter")).eval()
    assert torch.allclose(tiny_logits(loaded), expected, atol=1e-5)


@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adapt")
    (tmp / "echo.py").write_text(ECHO)
    docs = write_documents(tmp / "docs")
    rc, out, err = cli("adapt", "--policy", "tiny-random", "--documents", str(docs), "--out", str(tmp / "out"),
                       "--plugins", str(tmp / "echo.py"), "--set", "generator.name=echo", *FAST)
    assert rc == 0, err[-3000:]
    return tmp, out


def test_adapt_writes_an_adapter_per_document_and_reports_the_skipped(adapted):
    tmp, out = adapted
    adapters = tmp / "out" / "adapters"
    # lines-1's self-edit is empty: it is learned from the document itself, as a run trains it
    assert sorted(p.name for p in adapters.iterdir()) == ["Kites", "bell", "lines-1", "mill"]
    assert {"adapter_config.json", "adapter_model.safetensors", "self_edit.txt", "README.md"} <= {
        p.name for p in (adapters / "bell").iterdir()}
    assert (adapters / "bell" / "self_edit.txt").read_text() == "The bell of Thrushby is named Old Margery.\nIt was cast in 1602."
    assert sorted(p.name for p in (tmp / "out" / "self_edits").iterdir()) == ["Kites.txt", "bell.txt", "lines-1.txt", "mill.txt"]
    skipped = json.loads((tmp / "out" / "skipped.json").read_text())
    assert set(skipped) == {"broken.txt", "table.csv", "more.json record 1", "lines.jsonl line 2"}
    assert "Learned 4 document(s)" in out and "skipped table.csv" in out
    warned = [json.loads(line) for line in (tmp / "out" / "log.jsonl").read_text().splitlines()]
    assert [e["document"] for e in warned if e["event"].startswith("empty self-edit")] == ["lines-1"]


def test_an_empty_self_edit_learns_the_document_as_a_run_would(tmp_path, registry):
    """The training set of lines-1's empty self-edit is the one a run builds: the document's own
    text (include_passage); without include_passage there is nothing to learn, and it is skipped
    with that reason."""
    from seal_core.deploy.adapter import AdaptPlan, Adapter
    from seal_core.loop.config import load_raw, resolve

    for include, expected in ((True, ["The river Ansel is cold."]), (False, None)):
        config = resolve(load_raw(None, ["model.policy=tiny-random", f"domain.include_passage={include}"]), registry)
        adapter = Adapter(config, registry, AdaptPlan("tiny-random", "docs"), tmp_path, stop=None)
        task = adapter.task(read_documents(write_documents(tmp_path / f"docs-{include}"))[0][1])
        data = adapter.training_set(task, "")
        assert (data.texts if data else None) == ([f"lines-1\n{expected[0]}"] if expected else None)
        assert adapter.skipped == ({} if include else {"lines-1": "the policy wrote an empty self-edit and the "
                                                                  "self-edit yields no training text"})


def test_ask_answers_from_an_adapter(adapted):
    tmp, _ = adapted
    rc, out, err = cli("ask", str(tmp / "out" / "adapters" / "bell"), "What is the bell of Thrushby named?",
                       "--max-new-tokens", "4")
    assert rc == 0, err[-2000:]
    assert out.endswith("\n")


def test_resume_redoes_only_what_is_missing(adapted):
    import shutil

    tmp, _ = adapted
    out = tmp / "out"
    shutil.rmtree(out / "adapters" / "mill")
    (out / "self_edits" / "bell.txt").write_text("Edited by hand.")  # kept, not regenerated
    before = (out / "adapters" / "bell" / "adapter_model.safetensors").stat().st_mtime_ns
    rc, _, err = cli("adapt", "--resume", str(out), "--plugins", str(tmp / "echo.py"))  # as run --resume
    assert rc == 0, err[-2000:]
    assert (out / "adapters" / "mill" / "adapter_model.safetensors").is_file()
    assert (out / "adapters" / "bell" / "adapter_model.safetensors").stat().st_mtime_ns == before
    assert (out / "self_edits" / "bell.txt").read_text() == "Edited by hand."


def test_merge_learns_every_document_into_one_model(adapted, tmp_path):
    from transformers import AutoModelForCausalLM

    from seal_core.models.loading import load_model

    tmp, _ = adapted
    out = tmp_path / "merged"
    rc, stdout, err = cli("adapt", "--policy", "tiny-random", "--documents", str(tmp / "docs"), "--out", str(out),
                          "--merge", "--plugins", str(tmp / "echo.py"), "--set", "generator.name=echo",
                          "--set", "inner.name=lora", *FAST)
    assert rc == 0, err[-3000:]
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    assert "after learning 4 documents" in (out / "model" / "README.md").read_text()
    assert not (out / "checkpoints").exists()  # the resume point is dropped at the end
    start = load_model("tiny-random").model.state_dict()
    assert any(not torch.equal(v, start[k]) for k, v in model.state_dict().items() if k in start)
    assert "Learned 4 document(s)" in stdout


def test_adapt_errors_name_the_input_and_the_fix(tmp_path):
    rc, _, err = cli("adapt", "--policy", "tiny-random", "--documents", str(tmp_path / "nowhere"),
                     "--out", str(tmp_path / "o"))
    assert rc == 2 and "--documents" in err and "no such file" in err
    rc, _, err = cli("adapt", "--policy", "tiny-random")
    assert rc == 2 and "--documents, --out" in err
    rc, _, err = cli("adapt", "--policy", "tiny-random", "--documents", str(tmp_path), "--out", str(tmp_path / "o"),
                     "--set", "inner.name=full")
    assert rc == 2 and "--merge" in err


def test_the_readme_snippet_asks_an_adapter(adapted, capsys):
    """The README's five-line Python block, run on this module's adapter (tiny-random for embedded)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("```python\nfrom peft import PeftModel\n", 1)[1].split("```", 1)[0]
    tmp, _ = adapted
    code = ("from peft import PeftModel\n" + block).replace('"embedded"', '"tiny-random"').replace(
        "runs/adapted/adapters/The-Velmora-Lighthouse", str(tmp / "out" / "adapters" / "bell"))
    assert code.count("\n") == 6  # five lines after the import of PeftModel, no more
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.endswith("\n")
