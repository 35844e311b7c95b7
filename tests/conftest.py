"""Shared fixtures. Nothing here loads a model."""

from __future__ import annotations

import sys

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
