"""Domain ``lexicon``: learn the words of Vellish, an invented language, from glossary entries.

A task is one glossary entry (the context) with short-answer questions about it (the
evaluation). The model writes sentences that use the word (the self-edit); the inner loop
trains on them and on the entry itself; the ``exact-match`` evaluator then asks the questions
without showing the entry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from seal_core import DataError, Domain, TaskInstance

BUNDLED = Path(__file__).parent / "data" / "lexicon.json"
SPLITS = ("train", "eval")

PROMPT = (
    "Here is an entry from a glossary of Vellish, an invented language. Write sentences that "
    "use the word and state its facts exactly, one sentence per line.\n\nEntry: {entry}"
)


@dataclass
class LexiconOptions:
    """The keys this domain adds to ``domain.*`` (next to name, source, train_limit, eval_limit)."""

    include_entry: bool = True  # train on the glossary entry too, not only on the self-edit
    max_edit_lines: int = 16  # lines of a self-edit used for training; the rest is dropped
    eval_fraction: float = 0.25  # share of eval tasks, for entries without a "split"

    def __post_init__(self) -> None:
        if self.max_edit_lines < 1:
            raise ValueError(f"max_edit_lines must be >= 1, got {self.max_edit_lines}")
        if not 0 < self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")


ENTRY_FORMAT = (
    "{'word': str, 'entry': str, 'questions': [{'question': str, 'answer': str}, ...], "
    "'split': 'train' or 'eval' (optional)}"
)


def is_entry(rec: object) -> bool:
    """Whether ``rec`` is one glossary entry in the format of ``ENTRY_FORMAT``."""
    if not isinstance(rec, dict) or rec.get("split") not in (None, *SPLITS):
        return False
    questions = rec.get("questions")
    return (
        isinstance(rec.get("word"), str) and isinstance(rec.get("entry"), str)
        and isinstance(questions, list) and len(questions) > 0
        and all(isinstance(q, dict) and isinstance(q.get("question"), str)
                and isinstance(q.get("answer"), str) for q in questions)
    )


def read_entries(path: Path) -> list[dict]:
    """The glossary entries of a JSON file; a malformed one is reported with its index."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read glossary entries ({exc}). Point domain.source at "
                        f"a JSON list of entries {ENTRY_FORMAT}.") from exc
    if not isinstance(records, list):
        raise DataError(f"{path}: holds a {type(records).__name__}, not a JSON list of entries "
                        f"{ENTRY_FORMAT}.")
    for i, rec in enumerate(records):
        if not is_entry(rec):
            raise DataError(f"{path}: record {i} is not a glossary entry {ENTRY_FORMAT}; fix or "
                            "remove that record.")
    return records


def split_of(record: dict, eval_fraction: float) -> str:
    """The entry's own split, else a deterministic one from a hash of its word."""
    if record.get("split"):
        return record["split"]
    bucket = int(hashlib.sha256(record["word"].encode()).hexdigest()[:8], 16) % 10_000
    return "eval" if bucket < eval_fraction * 10_000 else "train"


class LexiconDomain(Domain):
    name = "lexicon"
    evaluator = "exact-match"  # used when the config names no evaluator
    Options = LexiconOptions

    def load_tasks(self, split: str, source: str | None = None) -> list[TaskInstance]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        records = read_entries(Path(source) if source else BUNDLED)
        return [
            TaskInstance(
                id=f"vellish-{rec['word']}",
                context=rec["entry"],
                evaluation={"word": rec["word"], "questions": rec["questions"]},
            )
            for rec in records
            if split_of(rec, self.options.eval_fraction) == split
        ]

    def edit_prompt(self, task: TaskInstance) -> str:
        return PROMPT.format(entry=task.context)

    def training_texts(self, task: TaskInstance, edit: str) -> list[str]:
        texts = [line.strip() for line in edit.splitlines() if line.strip()]
        texts = texts[: self.options.max_edit_lines]
        if self.options.include_entry:
            texts.append(task.context)
        return texts
