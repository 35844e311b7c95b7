"""The plugin as a whole: what it registers, and the entry point that installs it."""

import importlib.metadata

import pytest

from seal_core.hooks.registry import ENTRY_POINT_GROUP, Registry


def test_the_plugin_registers_a_domain_and_an_evaluator(registry):
    assert [(e.kind, e.name, e.plugin) for e in registry.entries()] == [
        ("domain", "lexicon", "seal_plugin_example.plugin"),
        ("evaluator", "exact-match", "seal_plugin_example.plugin"),
    ]


def test_the_installed_distribution_declares_the_entry_point():
    try:
        dist = importlib.metadata.distribution("seal-plugin-example")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("not installed: pip install -e . in the plugin's folder")
    declared = [(ep.name, ep.value) for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    assert declared == [("seal-plugin-example", "seal_plugin_example.plugin")]
    entry = Registry().components["domain"]["lexicon"]  # loaded like any installed plugin
    assert (entry.plugin, entry.distribution, entry.version) == (
        "seal-plugin-example", "seal-plugin-example", dist.version)
