"""Passages for the knowledge domain: SEAL's JSON format, SQuAD-style rows, the bundled set.

SEAL's format is a JSON list of ``{title, context, questions: [{question, answer}]}`` (an
optional ``split`` of ``train``/``eval`` is honoured). SQuAD-style rows (``title``, ``context``,
``question``, ``answers: {text: [...]}``) come from a ``datasets`` hub id, a local dataset
directory, or a .jsonl/.parquet/.csv file, and are grouped into passages by context.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seal_core.api.errors import DataError
from seal_core.runtime.paths import not_found

BUNDLED = Path(__file__).parent / "data" / "passages.json"
SPLITS = ("train", "eval")


@dataclass(frozen=True)
class Passage:
    title: str
    context: str
    questions: tuple[tuple[str, tuple[str, ...]], ...]  # (question, acceptable answers)
    split: str | None = None

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")[:40] or "passage"
        digest = hashlib.sha256(f"{self.title}\n{self.context}".encode()).hexdigest()[:8]
        return f"{slug}-{digest}"


def _fail(source: str, where: str, problem: str) -> DataError:
    return DataError(
        f"{source}: {where}: {problem}. Each record needs a non-empty 'context' string, an "
        "optional 'title' string and a non-empty 'questions' list of {'question': str, "
        "'answer': str or list of str}; fix or remove that record."
    )


def _answers(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str) and value.strip():
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(value)
    return None


def parse_seal_records(records: Any, source: str) -> list[Passage]:
    """Validate SEAL-format records; an error names the file and the record."""
    if not isinstance(records, list):
        raise DataError(f"{source}: expected a JSON list of passages, got {type(records).__name__}.")
    passages = []
    for i, rec in enumerate(records):
        where = f"record {i}"
        if not isinstance(rec, dict):
            raise _fail(source, where, f"is a {type(rec).__name__}, not an object")
        title = rec.get("title", "")
        where = f"record {i} (title {title!r})" if title else where
        context = rec.get("context")
        if not isinstance(title, str):
            raise _fail(source, where, "'title' is not a string")
        if not isinstance(context, str) or not context.strip():
            raise _fail(source, where, "'context' is missing or empty")
        questions = rec.get("questions")
        if not isinstance(questions, list) or not questions:
            raise _fail(source, where, "'questions' is missing or empty")
        parsed = []
        for j, q in enumerate(questions):
            if not isinstance(q, dict) or not isinstance(q.get("question"), str) or not q["question"].strip():
                raise _fail(source, f"{where}, question {j}", "'question' is missing or not a string")
            answers = _answers(q.get("answer"))
            if answers is None:
                raise _fail(source, f"{where}, question {j}", "'answer' is missing or empty")
            parsed.append((q["question"], answers))
        split = rec.get("split")
        if split is not None and split not in SPLITS:
            raise _fail(source, where, f"'split' is {split!r}, not one of {SPLITS}")
        passages.append(Passage(title, context, tuple(parsed), split))
    return passages


def group_squad_rows(rows: Any, source: str) -> list[Passage]:
    """SQuAD-style rows (one question each) -> passages, in order of first appearance."""
    grouped: dict[tuple[str, str], list[tuple[str, tuple[str, ...]]]] = {}
    for i, row in enumerate(rows):
        try:
            context, question = row["context"], row["question"]
            answers = row["answers"]["text"] if isinstance(row["answers"], dict) else row["answers"]
        except (KeyError, TypeError) as exc:
            raise DataError(
                f"{source}: row {i} lacks {exc}. SQuAD-style rows need 'context', 'question' and "
                "'answers' ({'text': [...]}); for SEAL's own format pass a .json file."
            ) from exc
        ans = _answers(list(answers) if not isinstance(answers, str) else answers)
        if not isinstance(context, str) or not context.strip() or ans is None:
            continue  # unanswerable rows (SQuAD 2.0) have no answer to grade
        grouped.setdefault((row.get("title") or "", context), []).append((question, ans))
    return [Passage(t, c, tuple(qs)) for (t, c), qs in grouped.items()]


def read_passages(source: str | None) -> tuple[list[Passage], str]:
    """All passages of ``source`` (None: the bundled set; ``synthetic:N[:SEED]``: N generated
    fictional passages) and a printable name for it."""
    if source is None:
        return read_seal_json(BUNDLED), str(BUNDLED)
    from seal_domains.knowledge.synthetic import parse_source, synthetic_passages  # it builds on Passage

    try:
        synthetic = parse_source(source)
    except ValueError:
        raise DataError(f"domain.source={source!r}: a synthetic source is written synthetic:N or synthetic:N:SEED, "
                        "with N >= 1 passages and SEED a non-negative integer (default 0), e.g. synthetic:200.") from None
    if synthetic:
        return synthetic_passages(*synthetic), source
    problem = not_found(source, "domain.source", "Pass an existing SEAL .json file, a SQuAD-style .jsonl, .parquet "
                        "or .csv file or save_to_disk folder, synthetic:N, or a hub dataset id such as "
                        "squad:validation with HF_HUB_OFFLINE unset.")
    if problem:
        raise DataError(problem)
    path = Path(source).expanduser()
    if path.is_file() and path.suffix == ".json":
        return read_seal_json(path), str(path)
    return read_squad_dataset(source), source


def read_seal_json(path: Path) -> list[Passage]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc}). Re-save the file as UTF-8.") from exc
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON: {exc}. Fix the file (line {exc.lineno}, column {exc.colno}).") from exc
    if isinstance(records, list) and records and isinstance(records[0], dict) and "question" in records[0]:
        return group_squad_rows(records, str(path))
    return parse_seal_records(records, str(path))


def read_squad_dataset(source: str) -> list[Passage]:
    """A ``datasets`` source: a local data file or directory, or a hub id (``name[:split]``)."""
    import datasets

    path = Path(source).expanduser()
    try:
        if path.is_file():
            kind = {".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}.get(path.suffix)
            if kind is None:
                raise DataError(f"{source}: unknown file type; use .json (SEAL format), .jsonl, .parquet or .csv.")
            ds = datasets.load_dataset(kind, data_files=str(path), split="train")
        elif path.is_dir():
            ds = datasets.load_from_disk(str(path))
        else:
            name, _, split = source.partition(":")
            ds = datasets.load_dataset(name, split=split or "validation")
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"Could not load dataset '{source}' (config key domain.source): {exc}. Pass a SEAL-format "
            ".json file, a local dataset, or a hub id such as squad[:validation] with hub access."
        ) from exc
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["validation"] if "validation" in ds else ds[next(iter(ds))]
    return group_squad_rows(ds, source)


def split_of(passage: Passage, eval_fraction: float) -> str:
    """The passage's own split, else a deterministic one from a hash of its text."""
    if passage.split is not None:
        return passage.split
    bucket = int(hashlib.sha256(f"{passage.title}\n{passage.context}".encode()).hexdigest()[:8], 16) % 10_000
    return "eval" if bucket < eval_fraction * 10_000 else "train"
