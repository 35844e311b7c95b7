"""seal_core.hooks.registry and the public plugin API: loading, the component contract, messages for
broken plugins (each names the plugin, where it came from, the problem and the fix), where each
component came from (``seal-run plugins``), and hook tracing."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import json
import textwrap
import uuid
from pathlib import Path

import pytest
import structlog

from seal_core.api import hookspecs
from seal_core.runtime import logs
from seal_core.commands.main import main
from seal_core.api.errors import PluginError, SealError
from seal_core.hooks.tracing import TRACE_ENV
from seal_core.hooks.registry import ENTRY_POINT_GROUP, KINDS, Registry

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
    from seal_core.api.components import Component

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


# ---------------------------------------------------------------------------------------------
# broken plugins, provenance and tracing (toy plugins written to files)
# ---------------------------------------------------------------------------------------------

HEADER = "from seal_core import Domain, Evaluator, TaskInstance, hookimpl\n\n"

TOY_DOMAIN = """\
class ToyDomain(Domain):
    name = "toy"
    evaluator = "toy-eval"
    def load_tasks(self, split, source=None):
        return [TaskInstance(id="t-" + split, context="c", evaluation={})]
    def edit_prompt(self, task):
        return "prompt"
    def training_texts(self, task, edit):
        return [edit]
"""

TOY_EVALUATOR = """\
class ToyEvaluator(Evaluator):
    name = "toy-eval"
    def score(self, model, tokenizer, task):
        return 1.0
"""


def plugin_file(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(HEADER + TOY_DOMAIN + TOY_EVALUATOR + textwrap.dedent(body), encoding="utf-8")
    return str(path)


def load_error(tmp_path: Path, name: str, body: str) -> str:
    with pytest.raises(PluginError) as info:
        Registry([plugin_file(tmp_path, name, body)], entry_points=False)
    message = str(info.value)
    assert f"'{name}'" in message, message  # names the plugin ...
    assert str((tmp_path / f"{name}.py").resolve()) in message, message  # ... and where it came from
    assert "\n" not in message, "one paragraph"
    return message


# ---------------------------------------------------------------------------------------------
# a broken plugin is named, with the problem and the fix
# ---------------------------------------------------------------------------------------------


def test_an_evaluator_passed_to_the_domains_register(tmp_path, clean_modules):
    message = load_error(tmp_path, "wrongkind_plugin", """
        @hookimpl
        def seal_register_domains(register):
            register(ToyEvaluator())
        """)
    assert "'toy-eval' (class ToyEvaluator) as a domain" in message
    assert "it is an evaluator (a subclass of seal_core.Evaluator)" in message
    assert "Register it from seal_register_evaluators instead" in message


def test_a_domain_passed_to_the_evaluators_register(tmp_path, clean_modules):
    message = load_error(tmp_path, "wrongkind2_plugin", """
        @hookimpl
        def seal_register_evaluators(register):
            register(ToyDomain())
        """)
    assert "as an evaluator, but it is a domain" in message
    assert "Register it from seal_register_domains instead" in message


def test_a_duck_typed_component_of_another_kind(tmp_path, clean_modules):
    message = load_error(tmp_path, "duck_plugin", """
        class Scorer:
            name = "duck"
            def score(self, model, tokenizer, task):
                return 0.0

        @hookimpl
        def seal_register_domains(register):
            register(Scorer())
        """)
    assert "has no 'evaluator', 'load_tasks', 'edit_prompt', 'training_texts'" in message
    assert "It looks like an evaluator (it has score): register it from seal_register_evaluators" in message


def test_a_duck_typed_component_missing_a_method(tmp_path, clean_modules):
    message = load_error(tmp_path, "half_plugin", """
        class Half:
            name = "half"
            def adapt(self, student, texts):
                return student

        @hookimpl
        def seal_register_inner_updaters(register):
            register(Half())
        """)
    assert "has no 'reset'" in message
    assert "needs: name, adapt, reset" in message
    assert "or subclass seal_core.InnerUpdater" in message


def test_a_duck_typed_component_without_configured(tmp_path, clean_modules):
    message = load_error(tmp_path, "noconf_plugin", """
        class Plain:
            name = "plain"
            def score(self, model, tokenizer, task):
                return 0.0

        @hookimpl
        def seal_register_evaluators(register):
            register(Plain())
        """)
    assert "'configured'" in message
    assert "Subclass seal_core.Evaluator" in message


def test_a_complete_duck_typed_component_is_accepted(tmp_path, clean_modules):
    path = plugin_file(tmp_path, "fullduck_plugin", """
        class Plain:
            name = "plain"
            def score(self, model, tokenizer, task):
                return 0.0
            def configured(self, options):
                return self

        @hookimpl
        def seal_register_evaluators(register):
            register(Plain())
        """)
    assert Registry([path], entry_points=False).get("evaluator", "plain").name == "plain"


def test_a_class_instead_of_an_instance(tmp_path, clean_modules):
    message = load_error(tmp_path, "class_plugin", """
        @hookimpl
        def seal_register_domains(register):
            register(ToyDomain)
        """)
    assert "passed the class ToyDomain" in message
    assert "register(ToyDomain())" in message


@pytest.mark.parametrize("attr, value, expected", [
    ("load_tasks", "'tasks.json'", "whose 'load_tasks' is not a method but 'tasks.json'"),
    ("evaluator", "None", "whose 'evaluator' is None. Set 'evaluator' to a non-empty string"),
    ("name", "42", "whose 'name' is 42"),
])
def test_a_required_attribute_of_the_wrong_type(tmp_path, clean_modules, attr, value, expected):
    message = load_error(tmp_path, "badattr_plugin", f"""
        class Bad(ToyDomain):
            {attr} = {value}

        @hookimpl
        def seal_register_domains(register):
            register(Bad())
        """)
    assert expected in message


def test_an_unimplemented_abstract_method(tmp_path, clean_modules):
    message = load_error(tmp_path, "abstract_plugin", """
        class Unfinished(Domain):
            name = "unfinished"
            evaluator = "qa"
            def load_tasks(self, split, source=None):
                return []
            def edit_prompt(self, task):
                return ""

        @hookimpl
        def seal_register_domains(register):
            register(Unfinished())
        """)
    assert "raised TypeError" in message
    assert "in seal_register_domains" in message
    assert "training_texts" in message
    assert "must implement every abstract method of seal_core.Domain" in message


def test_a_hook_that_raises(tmp_path, clean_modules):
    message = load_error(tmp_path, "raising_plugin", """
        @hookimpl
        def seal_register_evaluators(register):
            raise RuntimeError("no GPU for you")
        """)
    assert "RuntimeError('no GPU for you')" in message
    assert "in seal_register_evaluators" in message
    assert "Fix the plugin, or uninstall it" in message


def test_a_misspelled_hook_name_gets_a_suggestion(tmp_path, clean_modules):
    message = load_error(tmp_path, "typo_plugin", """
        @hookimpl
        def seal_register_domain(register):
            register(ToyDomain())

        @hookimpl
        def seal_round_finish(metrics):
            pass
        """)
    assert "'seal_register_domain' (did you mean 'seal_register_domains'?)" in message
    assert "'seal_round_finish' (did you mean 'seal_round_finished'?)" in message
    assert "which are not SEAL hooks" in message
    assert "seal_rollout_scored" in message  # the hooks are listed


def test_a_hook_without_the_decorator(tmp_path, clean_modules):
    message = load_error(tmp_path, "undecorated_plugin", """
        def seal_register_domains(register):
            register(ToyDomain())
        """)
    assert "defines seal_register_domains() without the @hookimpl decorator" in message
    assert "`@hookimpl`" in message


def test_an_argument_the_hook_does_not_offer(tmp_path, clean_modules):
    message = load_error(tmp_path, "args_plugin", """
        @hookimpl
        def seal_round_finished(round, metrics, step):
            pass
        """)
    assert "step" in message
    assert "fewer arguments than the hook offers" in message


# ---------------------------------------------------------------------------------------------
# where each component came from: seal-run plugins --json
# ---------------------------------------------------------------------------------------------

GOOD = """
@hookimpl
def seal_register_domains(register):
    register(ToyDomain())
"""


def test_plugins_json_shows_distribution_version_and_file(tmp_path, clean_modules, capsys):
    path = plugin_file(tmp_path, "listed_plugin", GOOD)
    assert main(["plugins", "--json", "--plugins", path]) == 0
    entries = {(e["kind"], e["name"]): e for e in json.loads(capsys.readouterr().out)}
    assert all(set(e) == {"kind", "name", "plugin", "distribution", "version", "file", "source"}
               for e in entries.values())
    toy = entries[("domain", "toy")]
    resolved = str(Path(path).resolve())
    assert toy == {"kind": "domain", "name": "toy", "plugin": "listed_plugin", "distribution": None,
                   "version": None, "file": resolved, "source": resolved}
    qa = entries[("evaluator", "qa")]
    version = importlib.metadata.version("seal-framework")
    assert (qa["plugin"], qa["distribution"], qa["version"]) == ("qa", "seal-framework", version)
    assert qa["source"] == f"seal-framework=={version}"
    assert qa["file"].endswith("qa_evaluator.py") and Path(qa["file"]).is_file()


def test_plugins_json_for_a_module_plugin(tmp_path, monkeypatch, clean_modules, capsys):
    (tmp_path / "seal_test_plugin_listed.py").write_text(HEADER + TOY_DOMAIN + GOOD, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["plugins", "--json", "--plugins", "seal_test_plugin_listed"]) == 0
    toy = next(e for e in json.loads(capsys.readouterr().out) if e["name"] == "toy")
    assert toy["plugin"] == "seal_test_plugin_listed"
    assert toy["distribution"] is None and toy["version"] is None
    assert toy["file"] == toy["source"] == str(tmp_path / "seal_test_plugin_listed.py")


def test_plugins_table(tmp_path, clean_modules, capsys):
    path = plugin_file(tmp_path, "table_plugin", GOOD)
    assert main(["plugins", "--plugins", path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["kind", "name", "plugin", "source"]
    toy = next(line for line in lines if line.split()[:2] == ["domain", "toy"])
    assert toy.split()[2:] == ["table_plugin", str(Path(path).resolve())]
    assert any(line.split()[1:3] == ["qa", "qa"] and "seal-framework==" in line for line in lines)


def test_a_broken_plugin_exits_2_with_its_message(tmp_path, clean_modules, capsys):
    path = plugin_file(tmp_path, "cli_broken_plugin", """
        @hookimpl
        def seal_register_domains(register):
            register(ToyEvaluator())
        """)
    assert main(["plugins", "--plugins", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seal-run: error: Plugin 'cli_broken_plugin'")
    assert "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# tracing
# ---------------------------------------------------------------------------------------------

EVENTS = GOOD + """
@hookimpl
def seal_round_finished(round, metrics):
    if metrics.get("fail"):
        raise ValueError("tracker is down")
"""


def test_trace_logs_every_hook_call_with_its_plugins(tmp_path, clean_modules):
    path = plugin_file(tmp_path, "traced_plugin", EVENTS)
    with structlog.testing.capture_logs() as events:
        registry = Registry([path], entry_points=False, trace=True)
        registry.hook.seal_round_finished(round=3, metrics={"round": 3}, run_dir=tmp_path)
    calls = [e for e in events if e["event"] == "hook call"]
    assert [(e["hook"], e["plugins"]) for e in calls] == [
        ("seal_register_domains", ["traced_plugin"]),
        ("seal_round_finished", ["traced_plugin"]),
    ]
    assert all(e["logger"] == "seal.trace" and e["log_level"] == "info" for e in calls)
    assert calls[0]["args"]["register"] == "<register domain for plugin 'traced_plugin'>"
    assert calls[1]["args"] == {"round": 3, "metrics": "{'round': 3}", "run_dir": str(tmp_path)}
    assert calls[1]["seconds"] >= 0 and "error" not in calls[1]


def test_trace_records_a_hook_that_raises(tmp_path, clean_modules):
    registry = Registry([plugin_file(tmp_path, "failing_plugin", EVENTS)], entry_points=False, trace=True)
    with structlog.testing.capture_logs() as events, pytest.raises(ValueError):
        registry.hook.seal_round_finished(round=0, metrics={"fail": True}, run_dir=tmp_path)
    assert [e["error"] for e in events] == ["ValueError('tracker is down')"]


@pytest.mark.parametrize("value, traced", [("1", True), ("true", True), ("0", False), ("", False)])
def test_the_environment_variable_turns_tracing_on(tmp_path, clean_modules, monkeypatch, value, traced):
    monkeypatch.setenv(TRACE_ENV, value)
    with structlog.testing.capture_logs() as events:
        Registry([plugin_file(tmp_path, "env_plugin", GOOD)], entry_points=False)
    assert bool([e for e in events if e["event"] == "hook call"]) is traced


def test_trace_is_off_by_default(tmp_path, clean_modules, monkeypatch):
    monkeypatch.delenv(TRACE_ENV, raising=False)
    with structlog.testing.capture_logs() as events:
        Registry([plugin_file(tmp_path, "quiet_plugin", GOOD)], entry_points=False)
    assert events == []


def test_trace_lands_in_the_log_file(tmp_path, clean_modules):
    registry = Registry([plugin_file(tmp_path, "file_plugin", EVENTS)], entry_points=False, trace=True)
    log_file = tmp_path / "log.jsonl"
    logs.configure(log_file)
    try:
        registry.hook.seal_round_finished(round=1, metrics={}, run_dir=tmp_path)
    finally:
        logs.configure()
    (line,) = [json.loads(x) for x in log_file.read_text(encoding="utf-8").splitlines()]
    assert (line["event"], line["logger"], line["hook"], line["plugins"]) == (
        "hook call", "seal.trace", "seal_round_finished", ["file_plugin"])
