"""The one record of what an inner updater added to a model, kept on the model object.

An updater keeps its state (initial adapter values, stacked layers, a weight snapshot) in an
:class:`AdapterRecord` on the student itself, so that a second instance of the updater, or a
configured copy, finds it and reuses what is there instead of nesting new adapters inside old
ones. Another updater, or the same one with other settings, is refused: one inner updater per
model.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

ATTRIBUTE = "_seal_inner"


@dataclass
class AdapterRecord:
    kind: str  # the updater's name: lora, multi-lora, full, ...
    signature: tuple  # the settings the state was made with
    state: Any  # the updater's own


def adapter_state(model: Any, kind: str, signature: tuple, spec: str, make: Callable[[], Any]) -> Any:
    """The state updater ``kind`` keeps on ``model`` for these settings: the one recorded there, or
    ``make()``'s on first use (then recorded). Raises if another updater, or ``kind`` with other
    settings, left a record."""
    record = getattr(model, ATTRIBUTE, None)
    if record is None:
        record = AdapterRecord(kind, signature, make())
        setattr(model, ATTRIBUTE, record)
    elif record.kind != kind:
        raise RuntimeError(f"{spec} already carries the `{record.kind}` inner updater's state, so `{kind}` cannot "
                           "adapt it: use one inner updater per model")
    elif record.signature != signature:
        raise RuntimeError(f"{spec} already carries `{kind}` adapters made with {record.signature}, not {signature}")
    return record.state


def record_of(model: Any) -> AdapterRecord | None:
    """Whatever record ``model`` carries, of any updater."""
    return getattr(model, ATTRIBUTE, None)
