"""Is a value a local path or a hub id? One rule for every input that may be either (data sources,
model specs, the model ``seal-run ask`` loads), so that a missing file is named as missing before
anything asks a hub for it:

1. a value that exists on disk is a local path;
2. a value with a path sign that does not exist is a missing local path: it starts with ``/``,
   ``.`` or ``~``, holds two or more ``/`` (``runs/x/checkpoints/policy``), or ends with a file
   suffix (``nope.json``, ``data.csv``);
3. anything else is a hub id (``Qwen/Qwen2.5-7B``, ``squad``); with the hub off
   (``HF_HUB_OFFLINE``) that is said together with the fact that no such local path exists.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

_SUFFIX = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,9}$")  # .json, .jsonl, .csv, .py; not the ".5-7B" of Qwen2.5-7B


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` turns the hub off."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def has_path_sign(value: str) -> bool:
    """Whether ``value`` reads as a local path rather than a hub id (rule 2 of the module docstring)."""
    return value.startswith(("/", ".", "~")) or value.count("/") >= 2 or bool(_SUFFIX.search(value))


def kind_of(value: str) -> Literal["path", "missing", "hub"]:
    """``path`` (it exists), ``missing`` (a path that does not exist) or ``hub`` (a hub id)."""
    if Path(value).expanduser().exists():
        return "path"
    return "missing" if has_path_sign(value) else "hub"


def not_found(value: str, what: str, fix: str) -> str | None:
    """None when ``value`` can be used as far as files go (an existing path, or a hub id while the
    hub is on); else the one-paragraph message for it: ``what`` names the input (``domain.source``),
    ``fix`` says what to pass instead."""
    kind = kind_of(value)
    if kind == "missing":
        return f"{what} = {value!r}: no such file or directory ({Path(value).expanduser().absolute()}). {fix}"
    if kind == "hub" and hub_offline():
        return (f"{what} = {value!r}: no such local file or directory, and as a hub id it cannot be fetched: "
                f"the hub is off (HF_HUB_OFFLINE is set). {fix}")
    return None
