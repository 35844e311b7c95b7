"""Config values checked against dataclass annotations: a section's dict becomes its dataclass,
with one error per unknown key (and a close match) or ill-typed value, naming the key."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal

from seal_core.api.errors import ConfigError, UnknownConfigKey


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"Config key '{key}' = {value!r} is not allowed: expected {_type_name(tp)}.")
    if tp is Any:
        return value
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise bad
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return coerce(value, arg, key)
            except ConfigError:
                continue
        raise bad
    if tp is type(None):
        if value is None:
            return None
        raise bad
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise bad
        (item,) = typing.get_args(tp)
        return [coerce(v, item, key) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    raise bad


def build_dataclass(cls: type, values: dict[str, Any], section: str, extra_ok: tuple[str, ...] = ()) -> Any:
    """Instantiate ``cls`` from ``values``, rejecting unknown keys and ill-typed values."""
    if not isinstance(values, dict):
        raise ConfigError(f"Config key '{section}' must be a section (mapping), not {values!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    prefix = f"{section}." if section else ""
    for key in values:
        if key not in names and key not in extra_ok:
            allowed = sorted({*names, *extra_ok})
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
            raise UnknownConfigKey(
                f"Unknown config key '{prefix}{key}'.{hint} Allowed keys in '{section or 'the top level'}': "
                f"{', '.join(allowed) or 'none'}."
            )
    kwargs = {k: coerce(v, hints[k], f"{prefix}{k}") for k, v in values.items() if k in names}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"Config section '{section or 'top level'}' is not valid: {exc}.") from exc


def as_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else {}
