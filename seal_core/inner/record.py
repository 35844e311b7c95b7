"""The one record of what an inner updater added to a model, kept on the model object.

An updater keeps its state (initial adapter values, stacked layers, a weight snapshot) in an
:class:`AdapterRecord` on the student itself, so that a second instance of the updater, or a
configured copy, finds it and reuses what is there instead of nesting new adapters inside old
ones. Another updater, or the same one with other settings, is refused: one inner updater per
model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ATTRIBUTE = "_seal_inner"


@dataclass
class AdapterRecord:
    kind: str  # the updater's name: lora, multi-lora, full, ...
    signature: tuple  # the settings the state was made with
    state: Any  # the updater's own


def find_record(model: Any, kind: str, signature: tuple, spec: str) -> AdapterRecord | None:
    """The record ``kind`` left on ``model`` with these settings; None if the model has none.
    Raises if another updater, or ``kind`` with other settings, left one."""
    record = getattr(model, ATTRIBUTE, None)
    if record is None:
        return None
    if record.kind != kind:
        raise RuntimeError(f"{spec} already carries the `{record.kind}` inner updater's state, so `{kind}` cannot "
                           "adapt it: use one inner updater per model")
    if record.signature != signature:
        raise RuntimeError(f"{spec} already carries `{kind}` adapters made with {record.signature}, not {signature}")
    return record


def attach_record(model: Any, record: AdapterRecord) -> AdapterRecord:
    """Keep ``record`` on ``model`` (see :func:`find_record`)."""
    setattr(model, ATTRIBUTE, record)
    return record


def record_of(model: Any) -> AdapterRecord | None:
    """Whatever record ``model`` carries, of any updater."""
    return getattr(model, ATTRIBUTE, None)
