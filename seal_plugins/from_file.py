"""Edit generator ``from-file``: self-edits read from a JSON file instead of written by a model.

The file is in SEAL's format with a ``completions`` list per passage, e.g. the paper's GPT-4.1
self-edits (``../shared/data/squad/gpt4_1_val_self_edits.json``)::

    [{"title": ..., "context": ..., "completions": ["self-edit 1", "self-edit 2", ...]}, ...]

Passages are matched by title and context. ``k`` self-edits are the first ``k`` completions (a
passage with fewer is cycled, with a warning); greedy means the first completion. A task with
no entry in the file is an error naming the passage: the run stops rather than score an empty
self-edit as if it were the file's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import structlog

from seal_core import EditGenerator, LoadedModel, TaskInstance, hookimpl
from seal_core.api.errors import DataError

log = structlog.get_logger(__name__)


@dataclass
class FromFileOptions:
    path: str = ""  # the JSON file (required)
    field: str = "completions"  # the list of self-edits in each record

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("path is required: set generator.path=FILE.json (SEAL format with completions)")
        if not Path(self.path).expanduser().is_file():
            raise ValueError(f"path {self.path!r} is not a file")


def load_completions(path: Path, field: str) -> dict[tuple[str, str], list[str]]:
    """(title, context) -> self-edits, validated; errors name the file and the record."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a valid UTF-8 JSON file ({exc}); fix the file given as generator.path.") from exc
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of passages with '{field}', got {type(records).__name__}.")
    table: dict[tuple[str, str], list[str]] = {}
    for i, rec in enumerate(records):
        edits = rec.get(field) if isinstance(rec, dict) else None
        if not isinstance(rec, dict) or not isinstance(rec.get("context"), str):
            raise DataError(f"{path}: record {i} has no 'context' string; each record needs title, context and {field}.")
        if not isinstance(edits, list) or not edits or not all(isinstance(e, str) for e in edits):
            raise DataError(f"{path}: record {i} (title {rec.get('title', '')!r}) has no non-empty '{field}' list of strings.")
        table[(rec.get("title") or "", rec["context"])] = edits
    return table


class FromFile(EditGenerator):
    name = "from-file"
    Options = FromFileOptions

    @cached_property
    def table(self) -> dict[tuple[str, str], list[str]]:
        return load_completions(Path(self.options.path).expanduser(), self.options.field)

    def generate(self, model: LoadedModel, prompts: list[str], k: int, *, greedy: bool = False,
                 tasks: list[TaskInstance] | None = None) -> list[list[str]]:
        if tasks is None or len(tasks) != len(prompts):
            raise ValueError("from-file needs the tasks the prompts were made from")
        out = []
        for task in tasks:
            key = (task.evaluation.get("title") or "", task.context)
            edits = self.table.get(key)
            if edits is None:
                raise DataError(
                    f"{self.options.path}: no self-edits for passage {key[0]!r} (task {task.id}). Use the "
                    "same file as domain.source, or add that passage with its completions."
                )
            if greedy:
                out.append([edits[0]] * k)
                continue
            if len(edits) < k:
                log.warning("from-file: fewer self-edits than edits_per_task; cycling", task_id=task.id,
                            available=len(edits), k=k)
            out.append([edits[i % len(edits)] for i in range(k)])
        return out


@hookimpl
def seal_register_edit_generators(register):
    register(FromFile())
