"""The ARC self-edit: a JSON object that configures test-time training.

These seven keys, nothing else::

    {"basic": true, "size": false, "chain": false, "repeat": false,
     "strategy": "output", "learning_rate": 0.001, "num_train_epochs": 3}

- ``basic``, ``size``, ``chain``, ``repeat`` (booleans; a flag left out is false): which
  augmentations expand the leave-one-out tasks (see :data:`seal_domains.arc.grids.AUGMENTATIONS`);
- ``strategy``: ``"output"`` puts the loss on the output grid only, ``"all"`` on every token of
  the example (demonstrations included);
- ``learning_rate`` (a number in the domain's ``[min_learning_rate, max_learning_rate]``) and
  ``num_train_epochs`` (an integer in ``[1, max_epochs]``).

Parsing is strict about the object and lenient about what surrounds it: the first ``{`` starts
the object, which must be valid JSON on its own (no comments, no single quotes) except for one
leniency: a comma right before the closing brace is dropped (the embedded model ends most of its
objects with one); text before it (a sentence, a ```` ```json ```` fence) and after it is ignored. A
missing or unknown key, a wrong type or an out-of-range value rejects the self-edit, with the
reason. (Flags may be left out because small models often drop one; the three training keys
may not.)

:func:`edit_schema` is the same space as a JSON schema, for constrained decoding: all seven
keys, in this order, the learning rate one of :func:`learning_rates` (a subset of what parsing
accepts, so that a constrained self-edit is a choice among a few values and always ends).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Literal

from seal_core.api.errors import EditRejected

FLAGS = ("basic", "size", "chain", "repeat")
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
STRATEGIES = ("output", "all")
REQUIRED = ("strategy", "learning_rate", "num_train_epochs")
KEYS = (*FLAGS, *REQUIRED)


@dataclass(frozen=True)
class EditConfig:
    """A parsed self-edit."""

    basic: bool
    size: bool
    chain: bool
    repeat: bool
    strategy: Literal["output", "all"]
    learning_rate: float
    num_train_epochs: int

    @property
    def augmentations(self) -> list[str]:
        return [f for f in FLAGS if getattr(self, f)]

    def to_json(self) -> str:
        """The self-edit text of this configuration, as the edit prompt shows it."""
        return json.dumps(asdict(self))


DEFAULT = EditConfig(basic=True, size=False, chain=False, repeat=False, strategy="output",
                     learning_rate=1e-3, num_train_epochs=3)


@dataclass(frozen=True)
class Limits:
    """The allowed ranges (the domain's options)."""

    min_learning_rate: float = 1e-5
    max_learning_rate: float = 1e-2
    max_epochs: int = 10


def learning_rates(limits: Limits = Limits()) -> list[float]:
    """The learning rates a constrained self-edit chooses from: 1 and 3 times the powers of ten
    within ``[min_learning_rate, max_learning_rate]``, and both ends (1e-5, 3e-5, ..., 3e-3, 1e-2
    by default)."""
    lo, hi = limits.min_learning_rate, limits.max_learning_rate
    grid = {lo, hi}
    for exponent in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        grid |= {float(f"{m}e{exponent}") for m in (1, 3) if lo <= float(f"{m}e{exponent}") <= hi}
    return sorted(grid)


def edit_schema(limits: Limits = Limits()) -> dict:
    """The self-edit as a JSON schema: the four augmentation flags, the loss strategy, a learning
    rate of :func:`learning_rates` and an integer number of epochs in ``[1, max_epochs]``, every
    key required, no other key. Every JSON text it admits passes :func:`parse_edit`."""
    return {
        "type": "object",
        "properties": {
            **{flag: {"type": "boolean"} for flag in FLAGS},
            "strategy": {"enum": list(STRATEGIES)},
            "learning_rate": {"enum": learning_rates(limits)},
            "num_train_epochs": {"type": "integer", "minimum": 1, "maximum": limits.max_epochs},
        },
        "required": list(KEYS),
        "additionalProperties": False,
    }


def parse_edit(text: str, limits: Limits = Limits()) -> EditConfig:
    """The configuration in ``text``; raises :class:`EditRejected` with the reason otherwise."""
    start = text.find("{")
    if start < 0:
        raise EditRejected("no JSON object in the self-edit")
    body = _TRAILING_COMMA.sub(r"\1", text[start:])
    try:
        obj, _ = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError as exc:
        raise EditRejected(f"invalid JSON: {exc.msg} at character {exc.pos} of the object") from exc
    if not isinstance(obj, dict):  # pragma: no cover - raw_decode at '{' always gives a dict
        raise EditRejected("the self-edit is not a JSON object")
    unknown = sorted(set(obj) - set(KEYS))
    if unknown:
        raise EditRejected(f"unknown key {unknown[0]!r}; allowed keys: {', '.join(KEYS)}")
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise EditRejected(f"missing key {missing[0]!r}")
    obj = {**dict.fromkeys(FLAGS, False), **obj}
    for flag in FLAGS:
        if not isinstance(obj[flag], bool):
            raise EditRejected(f"{flag!r} must be true or false, got {obj[flag]!r}")
    if obj["strategy"] not in STRATEGIES:
        raise EditRejected(f"'strategy' must be one of {', '.join(map(repr, STRATEGIES))}, got {obj['strategy']!r}")
    lr = obj["learning_rate"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr):
        raise EditRejected(f"'learning_rate' must be a number, got {lr!r}")
    if not limits.min_learning_rate <= lr <= limits.max_learning_rate:
        raise EditRejected(f"'learning_rate' {lr} is outside [{limits.min_learning_rate}, {limits.max_learning_rate}]")
    epochs = obj["num_train_epochs"]
    if isinstance(epochs, float) and epochs.is_integer():
        epochs = int(epochs)
    if isinstance(epochs, bool) or not isinstance(epochs, int):
        raise EditRejected(f"'num_train_epochs' must be an integer, got {epochs!r}")
    if not 1 <= epochs <= limits.max_epochs:
        raise EditRejected(f"'num_train_epochs' {epochs} is outside [1, {limits.max_epochs}]")
    return EditConfig(*(obj[f] for f in FLAGS), obj["strategy"], float(lr), epochs)


def config_grid(augmentations: list[str], strategies: list[str], learning_rates: list[float],
                epochs: list[int]) -> list[EditConfig]:
    """Every combination, in a fixed order. An augmentation set is flags joined by ``+``
    (``none`` for no augmentation), e.g. ``basic+size``."""
    sets = []
    for spec in augmentations:
        names = [] if spec == "none" else spec.split("+")
        bad = [n for n in names if n not in FLAGS]
        if bad:
            raise ValueError(f"augmentation set {spec!r}: {bad[0]!r} is not one of none, {', '.join(FLAGS)}")
        sets.append({f: f in names for f in FLAGS})
    return [EditConfig(**flags, strategy=s, learning_rate=lr, num_train_epochs=e)
            for flags, s, lr, e in itertools.product(sets, strategies, learning_rates, epochs)]
