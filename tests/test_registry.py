"""seal_core.registry and the public plugin API."""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
import uuid

import pytest

from seal_core import hookspecs
from seal_core.errors import PluginError, SealError
from seal_core.registry import ENTRY_POINT_GROUP, KINDS, Registry

BUILTINS = {
    "domain": "knowledge",
    "evaluator": "qa",
    "edit_generator": "hf-generate",
    "inner_updater": "lora",
    "algorithm": "rest-em",
    "setup": "single-model",
}

DOMAIN_PLUGIN = """\
from seal_core import Domain, TaskInstance, hookimpl

class {cls}(Domain):
    name = {name!r}
    evaluator = "qa"
    def load_tasks(self, split, source=None):
        return [TaskInstance(id="t-" + split, context="c", evaluation={{}})]
    def edit_prompt(self, task):
        return "prompt"
    def training_texts(self, task, edit):
        return [edit]

@hookimpl
def seal_register_domains(register):
    register({cls}())
"""


def domain_plugin(name: str, cls: str = "ToyDomain") -> str:
    return DOMAIN_PLUGIN.format(name=name, cls=cls)


def write(path, text: str):
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------


def test_public_api_imports():
    from seal_core import (  # noqa: F401
        Domain,
        EditGenerator,
        Evaluator,
        InnerUpdater,
        RLAlgorithm,
        Setup,
        TaskInstance,
        hookimpl,
    )
    from seal_core.components import Component

    for base in (Domain, EditGenerator, Evaluator, InnerUpdater, RLAlgorithm, Setup):
        assert issubclass(base, Component)
        assert inspect.isabstract(base)
    assert hookimpl.project_name == "seal"


def test_task_instance_is_a_frozen_dataclass():
    from seal_core import TaskInstance

    assert dataclasses.is_dataclass(TaskInstance)
    assert [f.name for f in dataclasses.fields(TaskInstance)] == ["id", "context", "evaluation"]
    task = TaskInstance(id="a", context="C", evaluation={"questions": []})
    assert task.id == "a" and task.context == "C" and task.evaluation == {"questions": []}
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.id = "b"  # type: ignore[misc]
    assert task == TaskInstance("a", "C", {"questions": []})


# ---------------------------------------------------------------------------------------------
# built-ins through entry points
# ---------------------------------------------------------------------------------------------


def test_builtins_are_registered_through_entry_points(registry):
    import importlib.metadata

    group = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert set(BUILTINS.values()) <= group
    for kind, name in BUILTINS.items():
        entry = registry.components[kind][name]
        assert entry.kind == kind
        assert entry.name == name
        assert entry.plugin == name  # the entry point's name
        assert entry.source.startswith("seal-framework==")
        assert registry.get(kind, name) is entry.component
        assert isinstance(entry.component, KINDS[kind].base)


def test_without_entry_points_nothing_is_registered():
    empty = Registry(entry_points=False)
    assert empty.entries() == []
    with pytest.raises(SealError) as info:
        empty.get("domain", "knowledge")
    assert "Known domain components: none" in str(info.value)


def test_entries_are_sorted_by_kind_then_name(registry):
    entries = registry.entries()
    kinds = [e.kind for e in entries]
    assert kinds == sorted(kinds, key=list(KINDS).index)
    assert {(e.kind, e.name) for e in entries} >= set(BUILTINS.items())


def test_get_unknown_name_lists_known_ones(registry):
    with pytest.raises(SealError) as info:
        registry.get("domain", "knowlege", key="domain.name")
    message = str(info.value)
    assert "Unknown domain 'knowlege'" in message
    assert "(config key 'domain.name')" in message
    known = message.split("Known domain components: ")[1].split(".")[0].split(", ")
    assert "knowledge" in known and known == sorted(known)
    assert "Did you mean 'knowledge'" in message


# ---------------------------------------------------------------------------------------------
# extra plugins
# ---------------------------------------------------------------------------------------------


def test_extra_plugin_from_py_file(tmp_path, clean_modules):
    path = write(tmp_path / "toy_plugin.py", domain_plugin("toy"))
    reg = Registry([str(path)])
    entry = reg.components["domain"]["toy"]
    assert entry.plugin == "toy_plugin"
    assert entry.source == str(path.resolve())
    domain = reg.get("domain", "toy")
    assert [t.id for t in domain.load_tasks("eval")] == ["t-eval"]
    # the built-ins are still there
    assert reg.get("domain", "knowledge").name == "knowledge"


def test_extra_plugin_from_module_name(tmp_path, monkeypatch, clean_modules):
    module = f"seal_test_plugin_{uuid.uuid4().hex[:8]}"
    write(tmp_path / f"{module}.py", domain_plugin("modtoy"))
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry([module], entry_points=False)
    entry = reg.components["domain"]["modtoy"]
    assert entry.plugin == module
    assert entry.source.endswith(f"{module}.py")
    assert [e.name for e in reg.entries()] == ["modtoy"]


def test_two_components_with_one_name_names_both_plugins(tmp_path, clean_modules):
    first = write(tmp_path / "alpha_plugin.py", domain_plugin("dup", "A"))
    second = write(tmp_path / "beta_plugin.py", domain_plugin("dup", "B"))
    with pytest.raises(PluginError) as info:
        Registry([str(first), str(second)], entry_points=False)
    message = str(info.value)
    assert "'dup'" in message
    assert "alpha_plugin" in message
    assert "beta_plugin" in message


def test_plugin_clashing_with_a_builtin_names_both(tmp_path, clean_modules):
    path = write(tmp_path / "shadow_plugin.py", domain_plugin("knowledge"))
    with pytest.raises(PluginError) as info:
        Registry([str(path)])
    message = str(info.value)
    assert "'knowledge'" in message
    assert "shadow_plugin" in message
    assert "seal-framework==" in message


def test_same_plugin_twice_is_an_error(tmp_path, clean_modules):
    path = write(tmp_path / "twice_plugin.py", domain_plugin("twice"))
    with pytest.raises(PluginError) as info:
        Registry([str(path), str(path)], entry_points=False)
    assert "twice_plugin" in str(info.value)
    assert "loaded twice" in str(info.value)


def test_plugin_raising_on_import(tmp_path, clean_modules):
    path = write(tmp_path / "broken_plugin.py", "raise RuntimeError('kaboom at import')\n")
    with pytest.raises(PluginError) as info:
        Registry([str(path)], entry_points=False)
    message = str(info.value)
    assert "broken_plugin.py" in message
    assert "kaboom at import" in message


def test_module_plugin_with_missing_dependency(tmp_path, monkeypatch, clean_modules):
    module = f"seal_test_plugin_{uuid.uuid4().hex[:8]}"
    write(tmp_path / f"{module}.py", "import surely_not_installed_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as info:
        Registry([module], entry_points=False)
    message = str(info.value)
    assert module in message
    assert "raised on import" in message
    assert "surely_not_installed_dependency_xyz" in message


def test_missing_py_path(tmp_path):
    missing = tmp_path / "not_there.py"
    with pytest.raises(PluginError) as info:
        Registry([str(missing)], entry_points=False)
    assert str(missing) in str(info.value)
    assert "does not exist" in str(info.value)


def test_non_importable_module_name():
    with pytest.raises(PluginError) as info:
        Registry(["no_such_seal_plugin_module_xyz"], entry_points=False)
    assert "'no_such_seal_plugin_module_xyz'" in str(info.value)
    assert "not an importable module" in str(info.value)


def test_misspelled_hook_name(tmp_path, clean_modules):
    path = write(
        tmp_path / "typo_plugin.py",
        """\
        from seal_core import hookimpl

        @hookimpl
        def seal_register_domain(register):
            pass
        """,
    )
    with pytest.raises(PluginError) as info:
        Registry([str(path)], entry_points=False)
    message = str(info.value)
    assert "seal_register_domain" in message
    assert "typo_plugin" in message


def test_misspelled_hook_name_is_not_silently_accepted(tmp_path, clean_modules):
    """Whatever the error type, the registry must refuse a plugin with an unknown hook."""
    path = write(
        tmp_path / "typo2_plugin.py",
        """\
        from seal_core import hookimpl

        @hookimpl
        def seal_register_domain(register):
            pass
        """,
    )
    with pytest.raises(Exception) as info:
        Registry([str(path)], entry_points=False)
    assert not isinstance(info.value, AssertionError)


def test_hookimpl_with_unknown_argument_is_a_plugin_error(tmp_path, clean_modules):
    path = write(
        tmp_path / "badargs_plugin.py",
        """\
        from seal_core import hookimpl

        @hookimpl
        def seal_register_domains(register, bogus_argument):
            pass
        """,
    )
    with pytest.raises(PluginError) as info:
        Registry([str(path)], entry_points=False)
    assert "badargs_plugin" in str(info.value)


@pytest.mark.parametrize(
    "hook, body, kind, missing",
    [
        (
            "seal_register_domains",
            "name = 'halfdomain'\n    evaluator = 'qa'\n    def load_tasks(self, split, source=None): return []\n"
            "    def edit_prompt(self, task): return ''",
            "domain",
            "training_texts",
        ),
        ("seal_register_inner_updaters", "name = 'halfupdater'\n    def adapt(self, student, texts): return student",
         "inner_updater", "reset"),
        ("seal_register_evaluators", "def score(self, model, tokenizer, task): return 0.0", "evaluator", "name"),
    ],
)
def test_component_missing_required_attribute(tmp_path, clean_modules, hook, body, kind, missing):
    path = tmp_path / "half_plugin.py"
    path.write_text(
        "from seal_core import hookimpl\n\n"
        f"class Half:\n    {body}\n\n"
        f"@hookimpl\ndef {hook}(register):\n    register(Half())\n",
        encoding="utf-8",
    )
    with pytest.raises(PluginError) as info:
        Registry([str(path)], entry_points=False)
    message = str(info.value)
    assert "'half_plugin'" in message
    assert f"'{missing}'" in message
    article = "an" if kind[0] in "aeiou" else "a"
    assert f"registered {article} {kind} " in message


def test_component_with_empty_name(tmp_path, clean_modules):
    path = write(tmp_path / "noname_plugin.py", domain_plugin(""))
    with pytest.raises(PluginError) as info:
        Registry([str(path)], entry_points=False)
    assert "noname_plugin" in str(info.value)


def test_one_plugin_may_register_several_kinds(tmp_path, clean_modules):
    path = write(
        tmp_path / "multi_plugin.py",
        domain_plugin("multi")
        + textwrap.dedent(
            """
            from seal_core import Evaluator

            class E(Evaluator):
                name = "multi-eval"
                def score(self, model, tokenizer, task):
                    return 1.0

            @hookimpl
            def seal_register_evaluators(register):
                register(E())
                register(type("E2", (E,), {"name": "multi-eval-2"})())
            """
        ),
    )
    reg = Registry([str(path)], entry_points=False)
    assert sorted((e.kind, e.name, e.plugin) for e in reg.entries()) == [
        ("domain", "multi", "multi_plugin"),
        ("evaluator", "multi-eval", "multi_plugin"),
        ("evaluator", "multi-eval-2", "multi_plugin"),
    ]


# ---------------------------------------------------------------------------------------------
# hookspecs
# ---------------------------------------------------------------------------------------------


def _hookspecs():
    return {
        name: obj
        for name, obj in vars(hookspecs).items()
        if callable(obj) and getattr(obj, "seal_spec", None) is not None
    }


def test_hookspecs_found():
    specs = _hookspecs()
    assert len(specs) >= len(KINDS) + 3
    assert all(name.startswith("seal_") for name in specs)


def test_every_hookspec_has_a_docstring():
    for name, spec in _hookspecs().items():
        doc = inspect.getdoc(spec)
        assert doc and len(doc.strip()) > 20, f"hookspec {name} has no docstring"


def test_component_hookspecs_document_register():
    for kind in KINDS.values():
        doc = inspect.getdoc(getattr(hookspecs, kind.hook))
        assert "register" in doc, kind.hook


def test_every_component_hook_exists_in_hookspecs():
    specs = _hookspecs()
    for kind in KINDS.values():
        assert kind.hook in specs, f"{kind.name}: {kind.hook} is not a hookspec"
        assert list(inspect.signature(specs[kind.hook]).parameters) == ["register"]


def test_registry_hook_relay_exposes_event_hooks(registry):
    for event in ("seal_run_started", "seal_rollout_scored", "seal_round_finished"):
        assert hasattr(registry.hook, event)
