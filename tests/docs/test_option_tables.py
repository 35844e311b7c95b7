"""Option tables in the docs are tested against the ``Options`` dataclasses they describe: every
field is in the table, every knob in the table is a field, and each default is the field's."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| (`[^|]+`) \| ([^|]*) \|")
HEADING = re.compile(r"^##+ `([\w-]+)`")


def option_tables(doc: Path) -> dict[str, dict[str, str]]:
    """{component name from the section heading: {knob: default as written}} for each
    ``| knob | default | meaning |`` table under a heading that names a component."""
    tables: dict[str, dict[str, str]] = {}
    section, in_table = None, False
    for line in doc.read_text(encoding="utf-8").splitlines():
        heading = HEADING.match(line)
        if heading:
            section, in_table = heading.group(1), False
        elif line.startswith("| knob | default |"):
            in_table = section is not None
        elif in_table and (row := ROW.match(line)):
            names = [n.strip().strip("`") for n in row.group(1).split(",")]
            defaults = [d.strip() for d in row.group(2).split(",")] if len(names) > 1 else [row.group(2).strip()]
            for name, default in zip(names, defaults):
                tables.setdefault(section, {})[name] = default
        elif in_table and not line.startswith("|"):
            in_table = False
    return tables


def as_written(value) -> str:
    """A field default in the tables' spelling."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"`{value}`"
    return repr(value)


def same(written: str, value) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(written) == float(value)
        except ValueError:
            return False
    return written == as_written(value)


ALGORITHM_TABLES = option_tables(ROOT / "docs" / "algorithms.md")


def test_the_algorithm_tables_are_found():
    assert set(ALGORITHM_TABLES) == {"grpo", "ppo", "rest-em"}


@pytest.mark.parametrize("name", sorted(ALGORITHM_TABLES))
def test_algorithm_table_matches_its_options(name, registry):
    options = registry.get("algorithm", name).Options()
    fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    table = ALGORITHM_TABLES[name]
    assert set(table) == set(fields), f"docs/algorithms.md, `{name}`: table and {type(options).__name__} differ"
    wrong = {k: (table[k], fields[k]) for k in table if not same(table[k], fields[k])}
    assert not wrong, f"docs/algorithms.md, `{name}`: defaults differ (table, code): {wrong}"


def test_a_wrong_default_is_caught():
    assert not same("1e-4", 1e-5) and not same("false", True) and same("1e-5", 1e-05) and same("`grpo`", "grpo")


def test_the_readme_shows_the_results_table_as_runs_write_it():
    """The README's header of the results table is the one seal_core/runs/results.py writes for
    ``make run`` (whose config scores sampled self-edits on the held-out set)."""
    from seal_core.runs.results import results_table

    head = results_table([{"round": 0, "eval_sampled": 0.2}]).splitlines()[0]
    assert head in (ROOT / "README.md").read_text(encoding="utf-8")
