"""The lexicon domain, through a registry as SEAL sees it."""

import json

import pytest

from seal_core import Domain
from seal_core.loop.config import load_raw, resolve
from seal_core import ConfigError, DataError
from seal_plugin_example.lexicon import LexiconDomain


def test_bundled_tasks_split_into_train_and_eval(registry):
    domain = registry.get("domain", "lexicon")
    assert isinstance(domain, Domain)
    train, evals = domain.load_tasks("train"), domain.load_tasks("eval")
    assert len(train) == 6 and len(evals) == 2
    assert not {t.id for t in train} & {t.id for t in evals}
    assert all(t.evaluation["questions"] for t in train + evals)


def test_a_source_without_splits_is_divided_deterministically(tmp_path):
    entries = [
        {"word": f"w{i}", "entry": f"In Vellish, w{i} means {i}.",
         "questions": [{"question": f"What does w{i} mean?", "answer": str(i)}]}
        for i in range(40)
    ]
    path = tmp_path / "words.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    train = LexiconDomain().load_tasks("train", str(path))
    evals = LexiconDomain().load_tasks("eval", str(path))
    assert train and evals and len(train) + len(evals) == 40
    assert not {t.id for t in train} & {t.id for t in evals}
    assert evals == LexiconDomain().load_tasks("eval", str(path))


def test_a_malformed_entry_is_named(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"word": "x", "entry": "y", "questions": []}]), encoding="utf-8")
    with pytest.raises(DataError, match="record 0"):
        LexiconDomain().load_tasks("train", str(path))


def test_prompt_and_training_texts(registry):
    domain = registry.get("domain", "lexicon")
    task = domain.load_tasks("train")[0]
    assert task.context in domain.edit_prompt(task)
    assert domain.training_texts(task, "One.\n\n  Two.  \n") == ["One.", "Two.", task.context]


def test_options_are_config_keys(full_registry):
    config = resolve(load_raw(None, ["domain.name=lexicon", "domain.include_entry=false",
                                     "model.policy=tiny-random"]), full_registry)
    assert config.components["evaluator"] == "exact-match"  # the domain's default
    domain = full_registry.get("domain", "lexicon").configured(config.options["domain"])
    task = domain.load_tasks("eval")[0]
    assert domain.training_texts(task, "A line.") == ["A line."]
    with pytest.raises(ConfigError, match="max_edit_lines"):
        resolve(load_raw(None, ["domain.name=lexicon", "domain.max_edit_lines=0",
                                "model.policy=tiny-random"]), full_registry)
