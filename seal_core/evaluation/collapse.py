"""Collapse metrics of self-edits: does RL push the policy towards copying its passage?

Per round the engine summarises two groups of self-edits, each under its own key prefix
(:data:`PREFIXES`): ``collapse_greedy`` for the held-out greedy self-edits (one per passage) and
``collapse_sampled`` for the training self-edits (k per passage). The metrics (:data:`COLLAPSE_KEYS`):

- ``similarity``: mean over the self-edits of the character similarity to their passage,
  ``difflib.SequenceMatcher(None, passage, edit).ratio()`` = 2*M/T (M matched characters, T the
  two lengths summed); 1.0 is a verbatim copy.
- ``distinct_1``, ``distinct_2``: distinct-n (unique word n-grams / all word n-grams, words =
  ``text.lower().split()``, n-grams never crossing two texts) of each task's group of edits,
  then the mean over tasks. For k sampled edits of one passage it says how different the samples
  are; for one greedy edit, how little the edit repeats itself. Low values mean collapse.
- ``lines``, ``tokens``: mean non-empty lines and tokens (by the caller's ``count_tokens``) per edit.
- ``edits``: how many self-edits were summarised.
"""

from __future__ import annotations

import difflib
import statistics
from typing import Callable

COLLAPSE_KEYS: tuple[str, ...] = ("similarity", "distinct_1", "distinct_2", "lines", "tokens")
PREFIXES: tuple[str, ...] = ("collapse_greedy", "collapse_sampled")


def similarity(passage: str, edit: str) -> float:
    """Character similarity of ``edit`` to ``passage``, 0 (nothing shared) to 1 (identical)."""
    return difflib.SequenceMatcher(None, passage, edit).ratio()


def distinct_n(texts: list[str], n: int) -> float | None:
    """Unique word n-grams / all word n-grams of ``texts`` pooled; None when there are none."""
    grams = []
    for text in texts:
        words = text.lower().split()
        grams += [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def edit_lines(edit: str) -> int:
    """The number of non-empty lines of ``edit``."""
    return sum(1 for line in edit.splitlines() if line.strip())


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


def collapse_summary(groups: list[tuple[str, list[str]]], count_tokens: Callable[[str], int],
                     prefix: str) -> dict[str, float | None]:
    """The collapse metrics of ``groups`` (one (passage, its self-edits) per task), keyed
    ``f"{prefix}_{metric}"`` plus ``f"{prefix}_edits"``; ``{}`` without groups."""
    if not groups:
        return {}
    pairs = [(passage, edit) for passage, edits in groups for edit in edits]
    edits = [edit for _, edit in pairs]
    return {
        f"{prefix}_similarity": _mean([similarity(p, e) for p, e in pairs]),
        f"{prefix}_distinct_1": _mean([distinct_n(group, 1) for _, group in groups]),
        f"{prefix}_distinct_2": _mean([distinct_n(group, 2) for _, group in groups]),
        f"{prefix}_lines": _mean([float(edit_lines(e)) for e in edits]),
        f"{prefix}_tokens": _mean([float(count_tokens(e)) for e in edits]),
        f"{prefix}_edits": len(edits),
    }
