"""Shared fixtures. Nothing here loads a model."""

from __future__ import annotations

import os
import sys

# Before anything imports huggingface_hub: tests never reach a hub, whoever runs them.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import pytest

from seal_core.registry import Registry


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
    from seal_core.models import load_model

    return load_model("tiny-random")


@pytest.fixture
def fresh_tiny():
    """A tiny-random model of this test's own, free to mutate (adapters, training)."""
    from seal_core.models import load_model

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
