"""The module paths of 0.1 still import, as the module at the new path, with a FutureWarning that
names it (seal_core/_moved.py); the facades keep the most used paths warning-free."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

from seal_core._moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_gives_the_new_module_and_says_where_it_went(old, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)  # as in a fresh process
    with pytest.warns(FutureWarning, match=f"{old} moved to {MOVED[old]}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])


def test_from_imports_of_old_paths_work(monkeypatch):
    monkeypatch.delitem(sys.modules, "seal_core.registry", raising=False)
    with pytest.warns(FutureWarning):
        from seal_core.registry import Registry  # noqa: F401  (a 0.1 plugin's import)
    from seal_core.hooks.registry import Registry as Moved

    assert Registry is Moved


@pytest.mark.parametrize("statement", [
    "from seal_core.models import load_model, plain_copy, load_weights",
    "from seal_core.rl import OutcomePolicyGradient, PolicyGradientOptions, grpo_advantages, masked_mean, UpdateLoop",
    "from seal_core.inner import LoraOptions, StackedLoraLinear, SequentialUpdater",
    "from seal_core import Domain, Evaluator, TaskInstance, DataError, hookimpl",
])
def test_the_facades_import_without_a_warning(statement):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(statement, {})


def test_an_unknown_old_path_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("seal_core.no_such_module")
