"""Fixtures: each test gets its own registry, with this plugin registered for that test only."""

import importlib.metadata
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub

import pytest

from seal_core.hooks.registry import ENTRY_POINT_GROUP, Registry

PLUGIN = "seal_plugin_example.plugin"


@pytest.fixture
def registry():
    """A fresh registry that holds this plugin and nothing else.

    ``entry_points=False`` keeps every installed plugin out (the built-ins too), so the test sees
    this plugin's code, installed or not, and nothing it registers outlives the test.
    """
    return Registry(extra_plugins=[PLUGIN], entry_points=False)


@pytest.fixture
def full_registry():
    """The built-ins and this plugin, as ``seal-run`` sees them once the plugin is installed."""
    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    installed = any(ep.value == PLUGIN for ep in entry_points)
    return Registry(extra_plugins=[] if installed else [PLUGIN])
