"""seal_core.loop.config: --set parsing, YAML loading, and validation against the registry."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
import yaml

from seal_core.loop.config import Config, load_raw, parse_override, resolve
from seal_core.api.errors import ConfigError, SealError
from seal_core.hooks.registry import Registry

# ---------------------------------------------------------------------------------------------
# parse_override
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, keys, value",
    [
        ("rounds=3", ["rounds"], 3),
        ("seed=-7", ["seed"], -7),
        ("inner.learning_rate=3e-4", ["inner", "learning_rate"], 3e-4),
        ("inner.learning_rate=1e3", ["inner", "learning_rate"], 1000.0),
        ("inner.alpha=0.5", ["inner", "alpha"], 0.5),
        ("model.trust_remote_code=true", ["model", "trust_remote_code"], True),
        ("model.trust_remote_code=false", ["model", "trust_remote_code"], False),
        ("domain.train_limit=null", ["domain", "train_limit"], None),
        ("domain.train_limit=", ["domain", "train_limit"], None),
        ("inner.target_modules=[q_proj, v_proj]", ["inner", "target_modules"], ["q_proj", "v_proj"]),
        ("domain.prompt=rewrite", ["domain", "prompt"], "rewrite"),
        ("model.policy=org/model-name", ["model", "policy"], "org/model-name"),
        ("domain.source=a=b", ["domain", "source"], "a=b"),
        (" domain . prompt =self-qa", ["domain", "prompt"], "self-qa"),
    ],
)
def test_parse_override_values(text, keys, value):
    got_keys, got_value = parse_override(text)
    assert got_keys == keys
    assert got_value == value
    assert type(got_value) is type(value)


def test_parse_override_scientific_float_is_float_not_string():
    _, value = parse_override("inner.learning_rate=3e-4")
    assert isinstance(value, float)
    assert math.isclose(value, 0.0003)


@pytest.mark.parametrize("text", ["rounds", "rounds3", "=3", "  =3"])
def test_parse_override_rejects_missing_key_or_equals(text):
    with pytest.raises(ConfigError) as info:
        parse_override(text)
    message = str(info.value)
    assert f"'{text}'" in message
    assert "KEY=VALUE" in message


# ---------------------------------------------------------------------------------------------
# load_raw
# ---------------------------------------------------------------------------------------------


def test_load_raw_without_file_or_overrides_is_empty():
    assert load_raw(None) == {}


def test_load_raw_reads_yaml_then_applies_overrides_in_order(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            rounds: 1
            inner:
              r: 8
              epochs: 3
            """
        ),
        encoding="utf-8",
    )
    raw = load_raw(path, ["rounds=2", "inner.epochs=5", "rounds=7", "domain.prompt=rewrite"])
    assert raw == {"rounds": 7, "inner": {"r": 8, "epochs": 5}, "domain": {"prompt": "rewrite"}}


def test_load_raw_accepts_a_string_path_and_empty_file(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert load_raw(str(path), ["seed=4"]) == {"seed": 4}


def test_load_raw_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_raw(missing)
    assert str(missing) in str(info.value)
    assert "does not exist" in str(info.value)


@pytest.mark.parametrize("content, kind", [("- a\n- b\n", "list"), ("just a string\n", "str"), ("42\n", "int")])
def test_load_raw_non_mapping_yaml(tmp_path, content, kind):
    path = tmp_path / "config.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_raw(path)
    assert str(path) in str(info.value)
    assert "mapping" in str(info.value)
    assert kind in str(info.value)


def test_load_raw_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("domain:\n  source: caf\xe9.json\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_raw(path)
    assert str(path) in str(info.value)
    assert "UTF-8" in str(info.value)


def test_load_raw_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("rounds: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_raw(path)
    assert str(path) in str(info.value)


def test_load_raw_override_below_a_value_is_an_error():
    with pytest.raises(ConfigError) as info:
        load_raw(None, ["rounds=3", "rounds.inner=1"])
    assert "'rounds' is a value" in str(info.value)


# ---------------------------------------------------------------------------------------------
# resolve
# ---------------------------------------------------------------------------------------------


def _resolve(registry, *overrides: str) -> Config:
    return resolve(load_raw(None, list(overrides)), registry)


def test_defaults_resolve(registry):
    config = resolve({}, registry)
    assert config.run.rounds == 2
    assert config.run.seed == 0
    assert config.run.setup == "single-model"
    assert config.domain.name == "knowledge"
    assert config.domain.train_limit == 8
    assert config.model.policy == "embedded"
    assert config.components == {
        "domain": "knowledge",
        "generator": "hf-generate",
        "inner": "multi-lora",
        "evaluator": "qa",
        "reward": "qa",  # unset: the held-out evaluator itself
        "algorithm": "rest-em",
    }
    assert config.options["reward"] is config.options["evaluator"] and config.raw["reward"] == {"name": None}
    # every component section carries its component's options
    assert config.options["inner"].r == 32
    assert config.options["domain"].prompt == "implications"
    assert config.options["evaluator"].metric == "containment"
    assert config.raw["rounds"] == 2
    assert config.raw["model"]["dtype"] == "auto"
    for section, name in config.components.items():
        assert config.raw[section]["name"] == (None if section == "reward" else name)


def test_config_yaml_round_trips(registry):
    config = _resolve(registry, "rounds=3", "inner.learning_rate=3e-4")
    assert yaml.safe_load(config.to_yaml()) == config.raw
    assert config.raw["inner"]["learning_rate"] == pytest.approx(3e-4)


def test_resolve_does_not_mutate_its_input(registry):
    raw = {"inner": {"r": 4}, "evaluator": {"metric": "f1"}}
    resolve(raw, registry)
    assert raw == {"inner": {"r": 4}, "evaluator": {"metric": "f1"}}


def test_resolved_config_resolves_again_to_the_same(registry):
    first = _resolve(registry, "rounds=1", "domain.prompt=self-qa", "inner.target_modules=q_proj")
    second = resolve(first.raw, registry)
    assert second.raw == first.raw


def test_unknown_top_level_key(registry):
    with pytest.raises(ConfigError) as info:
        _resolve(registry, "round=3")
    message = str(info.value)
    assert "Unknown config key 'round'" in message
    assert "Did you mean 'rounds'" in message
    for allowed in ("rounds", "seed", "inner", "domain"):
        assert allowed in message


def test_unknown_section_key_names_full_key_and_lists_allowed(registry):
    with pytest.raises(ConfigError) as info:
        _resolve(registry, "inner.lr=0.1")
    message = str(info.value)
    assert "'inner.lr'" in message
    allowed_part = message.split("Allowed keys", 1)[1]
    for allowed in ("learning_rate", "epochs", "target_modules", "r", "name"):
        assert allowed in allowed_part


def test_options_of_a_replaced_component_are_named_as_such(registry):
    """A config file's options for rest-em, then --set algorithm.name=none: the message says which
    component the keys were checked against and what to do."""
    with pytest.raises(ConfigError) as info:
        _resolve(registry, "algorithm.keep_top=1", "algorithm.name=none")
    message = str(info.value)
    assert "Unknown config key 'algorithm.keep_top'" in message
    assert "algorithm.name='none'" in message and "remove them from the file" in message
    with pytest.raises(ConfigError) as info:  # a bad value of the right component: no such advice
        _resolve(registry, "inner.epochs=0")
    assert "remove them" not in str(info.value)


def test_unknown_model_key(registry):
    with pytest.raises(ConfigError) as info:
        _resolve(registry, "model.polcy=tiny-random")
    assert "'model.polcy'" in str(info.value)
    assert "Did you mean 'model.policy'" in str(info.value)


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("rounds=three", "rounds", "int"),
        ("rounds=true", "rounds", "int"),
        ("rounds=1.5", "rounds", "int"),
        ("inner.learning_rate=fast", "inner.learning_rate", "float"),
        ("model.trust_remote_code=1", "model.trust_remote_code", "bool"),
        ("domain.train_limit=all", "domain.train_limit", "int or null"),
        ("inner.target_modules=5", "inner.target_modules", "list of str"),
        ("inner.target_modules=[q_proj, true]", "inner.target_modules", "str"),
    ],
)
def test_ill_typed_value_names_key_and_type(registry, override, key, expected):
    with pytest.raises(ConfigError) as info:
        _resolve(registry, override)
    message = str(info.value)
    assert f"'{key}'" in message
    assert f"expected {expected}" in message


@pytest.mark.parametrize(
    "override, key, allowed",
    [
        ("checkpoint=sometimes", "checkpoint", "'every_round'"),
        ("model.dtype=float64", "model.dtype", "'bfloat16'"),
        ("domain.prompt=poem", "domain.prompt", "'implications'"),
        ("evaluator.metric=bleu", "evaluator.metric", "'containment'"),
    ],
)
def test_literal_violation(registry, override, key, allowed):
    with pytest.raises(ConfigError) as info:
        _resolve(registry, override)
    message = str(info.value)
    assert f"'{key}'" in message
    assert allowed in message


@pytest.mark.parametrize(
    "override, needle",
    [
        ("rounds=-1", "rounds must be >= 0, got -1"),
        ("edits_per_task=0", "edits_per_task must be >= 1"),
        ("domain.train_limit=0", "train_limit must be >= 1"),
        ("domain.eval_limit=-3", "eval_limit must be >= 1"),
        ("inner.epochs=0", "epochs"),
        ("domain.eval_fraction=1.5", "eval_fraction"),
        ("generator.temperature=0", "temperature"),
        ("evaluator.max_new_tokens=0", "max_new_tokens"),
    ],
)
def test_range_errors_from_post_init(registry, override, needle):
    with pytest.raises(ConfigError) as info:
        _resolve(registry, override)
    assert needle in str(info.value)
    assert "not valid" in str(info.value)


def test_range_error_names_the_section(registry):
    with pytest.raises(ConfigError) as info:
        _resolve(registry, "inner.epochs=0")
    assert "'inner'" in str(info.value)


def test_zero_rounds_and_null_limits_are_allowed(registry):
    config = _resolve(registry, "rounds=0", "domain.train_limit=null", "domain.eval_limit=null")
    assert config.run.rounds == 0
    assert config.domain.train_limit is None
    assert config.domain.eval_limit is None
    assert config.raw["domain"]["train_limit"] is None


@pytest.mark.parametrize(
    "override, kind, key, known",
    [
        ("inner.name=qlora", "inner_updater", "inner.name", "lora"),
        ("domain.name=chess", "domain", "domain.name", "knowledge"),
        ("algorithm.name=reinforce", "algorithm", "algorithm.name", "rest-em"),
        ("generator.name=sglang", "edit_generator", "generator.name", "hf-generate"),
        ("evaluator.name=exact", "evaluator", "evaluator.name", "qa"),
        ("setup=mixture-of-teachers", "setup", "setup", "single-model"),
    ],
)
def test_unknown_component_lists_known_ones(registry, override, kind, key, known):
    with pytest.raises(SealError) as info:
        _resolve(registry, override)
    message = str(info.value)
    name = override.split("=", 1)[1]
    assert f"Unknown {kind} '{name}'" in message
    assert f"config key '{key}'" in message
    assert known in message.split("Known", 1)[1]


def test_evaluator_defaults_to_the_domains_evaluator(registry):
    config = _resolve(registry, "evaluator.metric=f1")
    assert config.components["evaluator"] == "qa"
    assert config.raw["evaluator"]["name"] == "qa"
    assert config.raw["evaluator"]["metric"] == "f1"
    assert config.options["evaluator"].metric == "f1"


def test_reward_can_come_from_another_evaluator(registry):
    """reward.name: the rollouts' reward from another evaluator, the held-out table unchanged."""
    config = _resolve(registry, "reward.name=answer-likelihood", "reward.metric=probability")
    assert config.components["evaluator"] == "qa" and config.components["reward"] == "answer-likelihood"
    assert config.options["reward"].metric == "probability" and config.options["evaluator"].metric == "containment"
    assert resolve(config.raw, registry).raw == config.raw
    # options alone: the held-out evaluator's kind with its own options
    own = _resolve(registry, "reward.metric=f1")
    assert own.components["reward"] == "qa" and own.options["reward"].metric == "f1"
    assert own.options["evaluator"].metric == "containment"
    with pytest.raises(SealError, match="reward.name"):
        _resolve(registry, "reward.name=no-such-evaluator")


def test_evaluator_default_follows_a_plugin_domain(tmp_path, clean_modules):
    """A domain whose ``evaluator`` is not 'qa' makes that evaluator the default."""
    plugin = tmp_path / "exotic_domain.py"
    plugin.write_text(
        textwrap.dedent(
            """\
            from seal_core import Domain, Evaluator, hookimpl

            class ExoticDomain(Domain):
                name = "exotic"
                evaluator = "exotic-eval"
                def load_tasks(self, split, source=None):
                    return []
                def edit_prompt(self, task):
                    return ""
                def training_texts(self, task, edit):
                    return []

            class ExoticEval(Evaluator):
                name = "exotic-eval"
                def score(self, model, tokenizer, task):
                    return 0.0

            @hookimpl
            def seal_register_domains(register):
                register(ExoticDomain())

            @hookimpl
            def seal_register_evaluators(register):
                register(ExoticEval())
            """
        ),
        encoding="utf-8",
    )
    registry = Registry([str(plugin)])
    config = resolve({"domain": {"name": "exotic"}}, registry)
    assert config.components["evaluator"] == "exotic-eval"
    assert config.raw["evaluator"] == {"name": "exotic-eval"}
    # the knowledge domain still defaults to qa in the same registry
    assert resolve({}, registry).components["evaluator"] == "qa"


def test_component_options_appear_in_raw(registry):
    config = _resolve(
        registry,
        "domain.prompt=rewrite",
        "generator.temperature=0.7",
        "inner.r=4",
        "algorithm.keep_top=2",
        "evaluator.metric=f1",
    )
    assert config.raw["domain"]["prompt"] == "rewrite"
    assert config.raw["domain"]["source"] is None  # core keys and options side by side
    assert config.raw["generator"]["temperature"] == 0.7
    assert config.raw["inner"]["r"] == 4
    assert config.raw["inner"]["alpha"] == 64.0  # untouched options keep their defaults
    assert config.raw["algorithm"]["keep_top"] == 2
    assert config.raw["evaluator"]["metric"] == "f1"
    assert config.options["domain"].prompt == "rewrite"
    assert config.options["generator"].temperature == 0.7
    assert config.options["algorithm"].keep_top == 2
    dumped = yaml.safe_load(config.to_yaml())
    assert dumped["domain"]["prompt"] == "rewrite"
    assert dumped["inner"]["r"] == 4


def test_comma_separated_override_becomes_a_list(registry):
    config = _resolve(registry, "inner.target_modules=q_proj,v_proj")
    assert config.options["inner"].target_modules == ["q_proj", "v_proj"]
    assert config.raw["inner"]["target_modules"] == ["q_proj", "v_proj"]


def test_int_is_accepted_where_float_is_expected(registry):
    config = _resolve(registry, "inner.learning_rate=1")
    assert config.options["inner"].learning_rate == 1.0
    assert isinstance(config.options["inner"].learning_rate, float)


def test_number_is_accepted_as_string(registry):
    config = _resolve(registry, "domain.source=123")  # read as a hub id, checked when the data loads
    assert config.domain.source == "123"


def test_non_mapping_section_value(registry):
    with pytest.raises(ConfigError) as info:
        resolve({"model": "tiny-random"}, registry)
    assert "'model'" in str(info.value)
    assert "mapping" in str(info.value)


@pytest.mark.parametrize("raw", [{"domain": "knowledge"}, {"inner": 5}, {"algorithm": ["rest-em"]}])
def test_non_mapping_component_section_is_a_config_error(registry, raw):
    section = next(iter(raw))
    with pytest.raises(ConfigError) as info:
        resolve(raw, registry)
    assert f"'{section}'" in str(info.value)


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_resolves(registry, path):
    """The configs the docs point at load and validate (a renamed option would otherwise surface
    only when a user runs them)."""
    resolve(load_raw(str(path), []), registry)


def _flat(raw: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in raw.items():
        out |= _flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return out


def test_make_runs_config_is_the_paper_recipe_with_a_smaller_held_out_set():
    """``make run`` (configs/quickstart.yaml) runs the recipe docs/experiments.md measured
    (configs/paper.yaml); only the held-out set, the number of rounds and the checkpoint differ."""
    configs = Path(__file__).parents[2] / "configs"
    quickstart, paper = (_flat(load_raw(str(configs / name), [])) for name in ("quickstart.yaml", "paper.yaml"))
    sizing = {"rounds", "eval_samples", "checkpoint", "domain.eval_limit"}
    assert quickstart.keys() == paper.keys()
    assert {k: v for k, v in quickstart.items() if k not in sizing} == {k: v for k, v in paper.items() if k not in sizing}
    assert (quickstart["rounds"], quickstart["domain.eval_limit"]) == (1, 6)
