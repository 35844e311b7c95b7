"""Shared fixtures. Nothing here loads a model until a test asks for one.

The suite is in folders: ``unit/`` (components and functions, in process), ``runs/`` (``seal-run``
commands end to end on tiny-random, and the multi-process runs), ``docs/`` (the docs and the
architecture they describe, checked against the code), ``benchmarks/`` (the harnesses run on tiny
shapes) and ``install/`` (the wheel, installed as a user would).
"""

from __future__ import annotations

import os
import sys

# Before anything imports huggingface_hub: tests never reach a hub, whoever runs them.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import pytest

from seal_core.hooks.registry import Registry
from tiny import tiny_args


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The built-in components, loaded through the ``seal`` entry-point group (read-only use)."""
    return Registry()


@pytest.fixture
def clean_modules():
    """Forget modules that a test imported as plugins, so tests cannot see each other's."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("seal_extra_plugin_") or name.startswith("seal_test_plugin_"):
            del sys.modules[name]


# --- model fixtures (they load models lazily, only for the tests that ask for them) -----------


@pytest.fixture(scope="session")
def tiny():
    """A shared tiny-random model. Read-only: tests that train or inject adapters use ``fresh_tiny``."""
    from seal_core.models.loading import load_model

    return load_model("tiny-random")


@pytest.fixture
def fresh_tiny():
    """A tiny-random model of this test's own, free to mutate (adapters, training)."""
    from seal_core.models.loading import load_model

    return load_model("tiny-random")


@pytest.fixture
def tiny_logits():
    """``tiny_logits(loaded)`` -> the model's logits on a fixed short input (no grad, a copy)."""
    import torch

    def logits(loaded, text: str = "The bell of Thrushby is named Old Margery."):
        enc = loaded.tokenizer([text], return_tensors="pt").to(loaded.device)
        with torch.no_grad():
            return loaded.model(**enc).logits.detach().clone()

    return logits


@pytest.fixture
def tiny_run(tmp_path):
    """``tiny_run(*overrides, name="run", command="run", expect=0, extra=())`` runs ``seal-run
    COMMAND`` on tiny-random with the small settings of tests/tiny.py (then ``overrides``) into
    ``tmp_path/name``, checks its exit status and returns the directory. ``extra``: more
    arguments (``--plugins X``, ``--seeds 2``)."""
    from seal_core.commands.main import main
    from seal_core.runtime import logs

    def run(*overrides: str, name: str = "run", command: str = "run", expect: int = 0, extra: tuple = ()):
        run_dir = tmp_path / name
        try:
            rc = main([*tiny_args(command, run_dir, *overrides), *extra])
        finally:
            logs.configure()  # close the run's log.jsonl
        assert rc == expect, f"seal-run {command} exited {rc}, expected {expect}"
        return run_dir

    return run
