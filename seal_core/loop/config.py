"""The run configuration: defaults, YAML file, ``--set KEY=VALUE`` overrides, validation.

Every key is checked before any model loads. The engine's own keys are the dataclasses below;
each component section (``domain``, ``generator``, ``inner``, ``evaluator``, ``reward``,
``algorithm``) also takes the fields of its chosen component's ``Options`` dataclass (``reward``
names the evaluator of the rollouts' reward; unset, the held-out ``evaluator`` with its options). Example::

    seal-run run --set rounds=3 --set inner.learning_rate=3e-4 --set domain.prompt=rewrite
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from seal_core.api.errors import ConfigError, UnknownConfigKey
from seal_core.loop.typed import as_dict, build_dataclass, coerce


@dataclass
class DomainSection:
    name: str = "knowledge"  # a registered domain
    source: str | None = None  # None: the domain's bundled data; else a file path or hub id
    train_limit: int | None = 8  # tasks per round for RL (None: all)
    eval_limit: int | None = 8  # held-out tasks scored each round (None: all)

    def __post_init__(self) -> None:
        for key in ("train_limit", "eval_limit"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"{key} must be >= 1 or null (all tasks), got {value}")


@dataclass
class ModelSection:
    policy: str = "embedded"  # embedded | tiny-random | random:<shape> | a hub id | a local path
    teacher: str | None = None  # for setups that split the roles
    student: str | None = None
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: fp32 on CPU, bf16 on GPU
    trust_remote_code: bool = False  # only for hub models you trust
    #: auto: prompts in the tokenizer's chat template when it has one, plain text otherwise;
    #: none: plain text always (base models; the reference code's instruct_model=False)
    chat_template: Literal["auto", "none"] = "auto"


#: the model roles a setup may read (its ``model_keys``); the others stay unset
MODEL_ROLES = ("policy", "teacher", "student")


@dataclass
class TrainerSection:
    #: the outer update under DeepSpeed ZeRO: zero2 | zero3 | zero3-offload | a .json file;
    #: None: the plain one-process update (zero2 under a multi-process launcher). See docs/distributed.md
    deepspeed: str | None = None
    #: seconds a rank waits in a collective (gather, broadcast, an update step) for the others
    #: before the job stops: a dead or stalled rank ends the run in bounded time, not a hang
    collective_timeout: float = 1800.0

    def __post_init__(self) -> None:
        if self.collective_timeout <= 0:
            raise ValueError(f"collective_timeout must be > 0 seconds, got {self.collective_timeout}")


@dataclass
class NamedSection:
    name: str | None = None  # None: the default component (for the evaluator: the domain's)


#: what ``report_to`` takes (besides none): the trackers of seal_plugins.trackers, or all of them
TRACKERS = ("tensorboard", "wandb", "trackio", "all")


@dataclass
class RunSection:
    seed: int = 0
    rounds: int = 2  # RL updates; metrics has rounds + 1 lines (round 0 = before any update)
    edits_per_task: int = 4  # k self-edits sampled per training task and round
    #: R: each rollout's reward is the mean over R inner runs (R inner seeds: data order and adapter
    #: initialisation), each run's score kept in the rollout (details.inner_runs); the SEAL code's eval_times 3
    inner_runs: int = 1
    eval_inner_runs: int = 1  # the same for each held-out self-edit's score
    #: held-out self-edits sampled per passage and scored besides the greedy one (0: greedy only);
    #: their mean is eval_sampled (RL trains the sampling distribution, the greedy edit is its mode)
    eval_samples: int = 0
    #: a run directory: train each held-out task for exactly the optimizer steps that run's round-0
    #: evaluation recorded for it (inner_steps), its texts repeated as needed: the step-matched control
    #: of ``seal-run baselines``. ``{seed}`` in it is replaced by this run's seed
    match_steps: str | None = None
    setup: str = "single-model"
    # the policy as a model directory: final = checkpoints/policy/ at the end; every_round = also
    # checkpoints/policy-roundN/ after each update; none = no policy saved
    checkpoint: Literal["final", "every_round", "none"] = "final"
    # how held-out passages are adapted each round (seal_core/loop/experiments.py): single = one
    # adapter per passage; cpt = all domain.eval_limit passages' self-edits in one adapter;
    # continual = one after another, merged after each step, with a retention matrix
    experiment: Literal["single", "cpt", "continual"] = "single"
    #: experiment trackers that follow the run (the built-in ``trackers`` plugin) and rest-em's
    #: SFT: tensorboard | wandb | trackio | all (every one installed); none or [] (the default): none
    report_to: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.report_to = [] if self.report_to in (["none"], ["None"]) else list(self.report_to)
        unknown = [t for t in self.report_to if t not in TRACKERS]
        if unknown:
            raise ValueError(f"report_to {unknown} is not allowed: use none, all or a list of {', '.join(TRACKERS[:-1])}")
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}")
        if self.edits_per_task < 1:
            raise ValueError(f"edits_per_task must be >= 1, got {self.edits_per_task}")
        for key in ("inner_runs", "eval_inner_runs"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.eval_samples < 0:
            raise ValueError(f"eval_samples must be >= 0, got {self.eval_samples}")


#: component sections: config key -> (registry kind, default component name)
COMPONENT_SECTIONS: dict[str, tuple[str, str | None]] = {
    "domain": ("domain", "knowledge"),
    "generator": ("edit_generator", "hf-generate"),
    "inner": ("inner_updater", "multi-lora"),
    "evaluator": ("evaluator", None),
    # the evaluator of the rollouts' reward; unset: the held-out evaluator itself, same options
    "reward": ("evaluator", None),
    "algorithm": ("algorithm", "rest-em"),
}
CORE_SECTIONS: dict[str, type] = {
    "domain": DomainSection,
    "model": ModelSection,
    "generator": NamedSection,
    "inner": NamedSection,
    "evaluator": NamedSection,
    "reward": NamedSection,
    "algorithm": NamedSection,
    "trainer": TrainerSection,
}


@dataclass
class Config:
    """A validated configuration. ``raw`` is the fully resolved nested dict (config.yaml)."""

    run: RunSection
    domain: DomainSection
    model: ModelSection
    components: dict[str, str]  # section -> chosen component name
    options: dict[str, Any]  # section -> that component's Options instance
    raw: dict[str, Any] = field(default_factory=dict)
    trainer: TrainerSection = field(default_factory=TrainerSection)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.raw, sort_keys=False)


# ---------------------------------------------------------------------------------------------
# raw dict handling
# ---------------------------------------------------------------------------------------------


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"inner.learning_rate=3e-4"`` -> (["inner", "learning_rate"], 0.0003)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set '{text}' is not of the form KEY=VALUE (e.g. --set rounds=3).")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    if isinstance(parsed, str) and _looks_like_float(parsed):
        parsed = float(parsed)  # YAML 1.1 reads "3e-4" as a string
    return [p.strip() for p in key.split(".")], parsed


def _looks_like_float(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value)


def load_raw(config_file: str | Path | None, overrides: list[str] = ()) -> dict[str, Any]:
    """The user's config as a nested dict: the YAML file, then each override in order."""
    raw: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"Config file '{path}' does not exist. Pass an existing YAML file to --config.")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Config file '{path}' is not valid UTF-8 YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"Config file '{path}' must hold a mapping of keys, not {type(loaded).__name__}.")
        raw = loaded or {}
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for part in keys[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set '{text}': '{part}' is a value, not a section.")
            node = child
        node[keys[-1]] = value
    return raw


_SECRET_KEY = re.compile(r"(api_?key|secret|password|passwd|(^|_)token$|credential)", re.IGNORECASE)


def reject_secrets(raw: dict[str, Any], prefix: str = "") -> None:
    """Secrets belong in environment variables, never in a config that is saved with the run."""
    for key, value in raw.items():
        full = f"{prefix}{key}"
        if _SECRET_KEY.search(str(key)):
            raise ConfigError(
                f"Config key '{full}' looks like a secret. Secrets are read from environment "
                "variables (for example OPENAI_API_KEY), never from the config, which is saved "
                "as config.yaml in the run directory. Remove the key and set the variable instead."
            )
        if isinstance(value, dict):
            reject_secrets(value, f"{full}.")


def resolve(raw: dict[str, Any], registry: Any) -> Config:
    """Validate ``raw`` against the core schema and the chosen components' ``Options``."""
    raw = copy.deepcopy(raw)
    reject_secrets(raw)
    run_keys = [f.name for f in dataclasses.fields(RunSection)]
    top_allowed = [*run_keys, *CORE_SECTIONS]
    for key in raw:
        if key not in top_allowed:
            close = difflib.get_close_matches(key, top_allowed, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise UnknownConfigKey(f"Unknown config key '{key}'.{hint} Allowed top-level keys: {', '.join(top_allowed)}.")
    run = build_dataclass(RunSection, {k: raw[k] for k in run_keys if k in raw}, "")
    setup = registry.get("setup", run.setup, key="setup")
    given = raw.get("model") or {}
    # a role set to null (--set model.policy=null) is unset: how a command drops a role its config file sets
    if isinstance(given, dict):
        given = {k: v for k, v in given.items() if not (k in MODEL_ROLES and v is None)}
    model = build_dataclass(ModelSection, given, "model")
    wanted = tuple(getattr(setup, "model_keys", ()))
    for key in wanted:
        if not getattr(model, key, None):
            raise ConfigError(
                f"Setup '{run.setup}' needs config key 'model.{key}' (a model spec: embedded, "
                f"tiny-random, a hub id or a local path); set it with --set model.{key}=..."
            )
    for key in MODEL_ROLES:
        if key not in wanted and given.get(key) is not None:
            raise ConfigError(
                f"Config key 'model.{key}' = {given[key]!r} is set, but setup '{run.setup}' does not use it (it reads "
                f"{', '.join(f'model.{k}' for k in wanted) or 'no model key'}). Drop model.{key} (from the command "
                f"line, where a config file sets it: --set model.{key}=null), or choose the setup that uses it "
                "(setup=teacher-student reads model.teacher and model.student; single-model, model.policy)."
            )
        if key not in wanted:
            setattr(model, key, None)  # the resolved config holds the models the run uses, no others
    from seal_core.models.loading import check_spec, resolve_device

    resolve_device(model.device)
    for key in wanted:
        check_spec(getattr(model, key), f"Config key 'model.{key}'")

    resolved: dict[str, Any] = dataclasses.asdict(run)
    resolved["model"] = dataclasses.asdict(model)
    trainer = build_dataclass(TrainerSection, raw.get("trainer") or {}, "trainer")
    resolved["trainer"] = dataclasses.asdict(trainer)
    components: dict[str, str] = {}
    options: dict[str, Any] = {}
    domain_section: DomainSection | None = None
    for section, (kind, default_name) in COMPONENT_SECTIONS.items():
        values = raw.get(section) or {}
        if not isinstance(values, dict):
            raise ConfigError(
                f"Config key '{section}' = {values!r} is a section, not a value: set its keys, "
                f"e.g. --set {section}.name=..."
            )
        values = dict(values)
        core_cls = CORE_SECTIONS[section]
        core_names = [f.name for f in dataclasses.fields(core_cls)]
        name = values.get("name", default_name)
        if section == "reward" and not {k: v for k, v in values.items() if (k, v) != ("name", None)}:
            # nothing set: the held-out evaluator rewards the rollouts
            components[section], options[section] = components["evaluator"], options["evaluator"]
            resolved[section] = {"name": None}
            continue
        if section == "reward" and name is None:  # its options set, the held-out evaluator's kind
            name = components["evaluator"]
        if section == "evaluator" and name is None:
            name = registry.get("domain", components["domain"]).evaluator
        name = coerce(name, str, f"{section}.name")
        component = registry.get(kind, name, key=f"{section}.name")
        opts_cls = getattr(component, "Options", None)
        opt_names = [f.name for f in dataclasses.fields(opts_cls)] if opts_cls else []
        try:
            core = build_dataclass(core_cls, values, section, tuple(opt_names))
            opt_values = {k: v for k, v in values.items() if k not in core_names}
            opts = build_dataclass(opts_cls, opt_values, section, tuple(core_names)) if opts_cls else None
        except UnknownConfigKey as exc:
            raise UnknownConfigKey(f"{exc} Those are the keys of {section}.name={name!r}; options written for another "
                              f"{kind.replace('_', ' ')} (for example in the config file, before --set {section}.name="
                              f"{name} replaced it) are refused, not dropped: remove them from the file, or replace the whole "
                              f"section: --set '{section}={{name: {name}}}'.") from None
        for f in dataclasses.fields(opts) if opts is not None else ():
            if "component" in f.metadata:  # an option that names a component of another kind
                registry.get(f.metadata["component"], getattr(opts, f.name), key=f"{section}.{f.name}")
        components[section] = name
        options[section] = opts
        resolved[section] = {**dataclasses.asdict(core), "name": name, **as_dict(opts)}
        if section == "domain":
            domain_section = core
    assert domain_section is not None
    # each held-out option of experiment=single, and its value that turns it off
    held_out_options = {"eval_samples": (run.eval_samples != 0, "0"), "eval_inner_runs": (run.eval_inner_runs != 1, "1"),
                        "match_steps": (run.match_steps is not None, "null")}
    if run.experiment != "single" and any(given for given, _ in held_out_options.values()):
        keys = [key for key, (given, _) in held_out_options.items() if given]
        off = " ".join(f"--set {key}={held_out_options[key][1]}" for key in keys)
        raise ConfigError(f"Config key(s) {', '.join(keys)} set with experiment={run.experiment!r}: they shape how each "
                          "held-out passage is adapted on its own (experiment=single), which cpt and continual do not do. "
                          f"Drop them (where a config file sets them: {off}), or use experiment=single.")
    updater = registry.get("inner_updater", components["inner"])
    if run.experiment == "continual" and not getattr(updater, "can_merge", False):
        raise ConfigError(f"Config key 'experiment' = 'continual' merges each adaptation into the weights, which "
                          f"inner updater '{components['inner']}' cannot do. Use inner.name=lora or inner.name=full.")
    from seal_core.rl.zero import check_deepspeed

    check_deepspeed(trainer.deepspeed, registry.get("algorithm", components["algorithm"]).configured(options["algorithm"]))
    return Config(run, domain_section, model, components, options, resolved, trainer)
