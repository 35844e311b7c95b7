"""Documents for ``seal-run adapt``: plain text, Markdown, or JSON/JSONL records with a text field.

A path is a file or a folder of files (read in name order, not recursively). A ``.txt`` or
``.md`` file is one document, titled by its first Markdown heading or its file name. A ``.json``
file holds one record or a list of them, a ``.jsonl`` file one record per line; a record's text is
its ``text`` field (or ``context``, as in SEAL's passage files, so the bundled passages work as
they are) and its title its ``title``. Each document gets a name that is safe as a file name and
unique within the set.

Nothing unreadable stops the others: a file that cannot be decoded, a malformed JSON line, a
record without a text field, a file of another type are returned as ``(name, why)`` to report.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUFFIXES = (".txt", ".md", ".json", ".jsonl")
TEXT_FIELDS = ("text", "context")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Document:
    """One document to learn: ``name`` (unique, file-name safe), ``title`` and ``text``."""

    name: str
    title: str
    text: str


def safe_name(text: str, fallback: str = "document") -> str:
    """``text`` as a file name: letters, digits, ``.``, ``_`` and ``-``, at most 80 characters."""
    name = _UNSAFE.sub("-", text).strip("-.")[:80].strip("-.")
    return name or fallback


def _record(rec: Any, where: str, default_title: str) -> tuple[str, str]:
    """(title, text) of one JSON record; ValueError saying what is wrong."""
    if not isinstance(rec, dict):
        raise ValueError(f"{where} is a {type(rec).__name__}, not an object with a 'text' field")
    text = next((rec[f] for f in TEXT_FIELDS if isinstance(rec.get(f), str) and rec[f].strip()), None)
    if text is None:
        raise ValueError(f"{where} has no non-empty 'text' (or 'context') string field")
    title = rec.get("title") if isinstance(rec.get("title"), str) and rec["title"].strip() else default_title
    return title.strip(), text.strip()


def _read_file(path: Path) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """([(name, title, text)], [(name, why)]) of one file."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [(path.name, f"cannot be read as UTF-8 text ({exc})")]
    if path.suffix in (".txt", ".md"):
        if not raw.strip():
            return [], [(path.name, "is empty")]
        heading = next((line.lstrip("#").strip() for line in raw.splitlines() if line.startswith("# ")), None)
        return [(path.stem, heading or path.stem, raw.strip())], []
    if path.suffix == ".jsonl":
        lines = [(i, line) for i, line in enumerate(raw.splitlines(), 1) if line.strip()]
        records = []
        bad = []
        for i, line in lines:
            try:
                records.append((f"{path.stem}-{i}", f"{path.name} line {i}", json.loads(line)))
            except json.JSONDecodeError as exc:
                bad.append((f"{path.name} line {i}", f"is not valid JSON ({exc.msg})"))
    else:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            return [], [(path.name, f"is not valid JSON ({exc.msg} at line {exc.lineno})")]
        items = data if isinstance(data, list) else [data]
        records = [(f"{path.stem}-{i}" if isinstance(data, list) else path.stem,
                    f"{path.name} record {i}" if isinstance(data, list) else path.name, rec)
                   for i, rec in enumerate(items)]
        bad = []
    docs = []
    for default, where, rec in records:
        try:
            title, text = _record(rec, where, default)
        except ValueError as exc:
            bad.append((where, str(exc).removeprefix(f"{where} ")))
            continue
        docs.append((title, title, text))  # named by its title (the default title: file and index)
    return docs, bad


def read_documents(path: Path) -> tuple[list[Document], list[tuple[str, str]]]:
    """The documents at ``path`` (a file or a folder) and the ``(name, why)`` of those skipped.

    A path that does not exist, or a folder without one readable document, is the caller's to
    report (the list is empty).
    """
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    docs: list[Document] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    for file in files:
        if file.name.startswith("."):
            continue
        if file.suffix not in SUFFIXES:
            skipped.append((file.name, f"is not a {', '.join(SUFFIXES)} file"))
            continue
        found, bad = _read_file(file)
        skipped.extend(bad)
        for base, title, text in found:
            name = safe_name(base)
            unique, n = name, 2
            while unique in seen:
                unique, n = f"{name}-{n}", n + 1
            seen.add(unique)
            docs.append(Document(unique, title, text))
    return docs, skipped
