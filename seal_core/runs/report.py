"""What a policy wrote and was rewarded for, round by round, from the runs' ``rollouts.jsonl``:

    python -m seal_core.runs.report RUN_DIR [RUN_DIR ...]     # e.g. the seeds of one variant

Per round, pooled over the run directories given: how many self-edits were scored, the reward's
mean, standard deviation and quartiles, the share of rewards above 0 and the share tied with
another self-edit of the same task (a reward that cannot tell two self-edits apart gives the RL
update nothing to prefer), the mean over tasks of each task's best reward (what ReST^EM with
``keep_top=1`` keeps when it is above ``min_reward``), and the self-edits' mean length in words
and lines, all and best-per-task. Then the examples: for the first run's first task of the first
and of the last round, its best- and worst-rewarded self-edit. Markdown, to paste into notes.

A second table, "Collapse per round", comes from each run's ``metrics.jsonl``: per round, the mean
over the runs that logged it of the collapse metrics (:mod:`seal_core.evaluation.collapse`) of the
greedy held-out self-edits and of the sampled training self-edits: character similarity to the
passage, distinct-1 and distinct-2 within a task's self-edits, and non-empty lines and tokens per
self-edit. Runs from before these metrics get one sentence saying so instead.
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from seal_core.evaluation.collapse import COLLAPSE_KEYS, PREFIXES
from seal_core.runtime.files import read_jsonl


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[1], q[2]


def _words(edit: str) -> int:
    return len(edit.split())


def _nonempty_lines(edit: str) -> list[str]:
    return [line.strip() for line in edit.splitlines() if line.strip()]


def _lines(edit: str) -> int:
    return len(_nonempty_lines(edit))


def round_rows(rollouts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary per round of ``rollouts`` (rows of ``rollouts.jsonl``, each tagged with ``run``)."""
    by_round: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rollouts:
        by_round[r["round"]].append(r)
    out = []
    for rnd in sorted(by_round):
        rows = by_round[rnd]
        rewards = [r["reward"] for r in rows]
        tasks: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            tasks[(r["run"], r["task_id"])].append(r)
        best = [max(group, key=lambda r: r["reward"]) for group in tasks.values()]
        tied = [sum(1 for o in group if o["reward"] == r["reward"]) > 1 for group in tasks.values() for r in group]
        q1, median, q3 = _quartiles(rewards)
        out.append({
            "round": rnd, "self_edits": len(rows), "tasks": len(tasks), "mean": statistics.fmean(rewards),
            "sd": statistics.stdev(rewards) if len(rewards) > 1 else 0.0, "q1": q1, "median": median, "q3": q3,
            "above_0": sum(x > 0 for x in rewards) / len(rewards), "tied": sum(tied) / len(tied),
            "best_mean": statistics.fmean(r["reward"] for r in best),
            "words": statistics.fmean(_words(r["edit"]) for r in rows), "lines": statistics.fmean(_lines(r["edit"]) for r in rows),
            "best_words": statistics.fmean(_words(r["edit"]) for r in best),
            "best_lines": statistics.fmean(_lines(r["edit"]) for r in best),
        })
    return out


def collapse_rows(metrics: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per round, the mean of each collapse metric over the runs whose line of that round has it
    (``metrics``: each run's ``metrics.jsonl`` lines); ``runs`` counts the runs with any of them."""
    keys = [f"{prefix}_{key}" for prefix in PREFIXES for key in COLLAPSE_KEYS]
    by_round: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for run in metrics:
        for line in run:
            if any(line.get(k) is not None for k in keys):
                by_round[line["round"]].append(line)
    out = []
    for rnd in sorted(by_round):
        lines = by_round[rnd]
        row: dict[str, Any] = {"round": rnd, "runs": len(lines)}
        for k in keys:
            values = [line[k] for line in lines if line.get(k) is not None]
            row[k] = statistics.fmean(values) if values else None
        out.append(row)
    return out


def _collapse_table(run_dirs: list[Path]) -> list[str]:
    rows = collapse_rows([read_jsonl(d / "metrics.jsonl") for d in run_dirs])
    if not rows:
        return ["", "No collapse table: the runs' metrics.jsonl predate the collapse metrics (collapse_greedy_*, collapse_sampled_*)."]
    titles = {"similarity": "similarity", "distinct_1": "distinct-1", "distinct_2": "distinct-2", "lines": "lines", "tokens": "tokens"}
    head = " | ".join(f"{prefix.removeprefix('collapse_')}: {titles[key]}" for prefix in PREFIXES for key in COLLAPSE_KEYS)
    lines = ["", "Collapse per round (greedy: the held-out self-edits, one per passage; sampled: the training "
             "self-edits; similarity to the passage, 1 = a copy; distinct-n within a task's self-edits, low = repetitive):", "",
             f"| round | runs | {head} |", "|" + "---:|" * (2 + len(PREFIXES) * len(COLLAPSE_KEYS))]
    for row in rows:
        cells = ["-" if row[f"{p}_{k}"] is None else f"{row[f'{p}_{k}']:.{1 if k in ('lines', 'tokens') else 3}f}"
                 for p in PREFIXES for k in COLLAPSE_KEYS]
        lines.append(f"| {row['round']} | {row['runs']} | " + " | ".join(cells) + " |")
    return lines


def report(run_dirs: list[Path]) -> str:
    """The markdown report of the runs in ``run_dirs`` (see the module docstring)."""
    rollouts = [{**r, "run": str(d)} for d in run_dirs for r in read_jsonl(d / "rollouts.jsonl")]
    if not rollouts:
        return f"no rollouts in {', '.join(map(str, run_dirs))}: the runs have not trained yet (rollouts.jsonl is empty)."
    lines = [f"Rollouts of {len(run_dirs)} run(s): {', '.join(map(str, run_dirs))}", "",
             "| round | self-edits | tasks | reward mean ± sd | quartiles | > 0 | tied in task | best per task | words | lines | best: words | best: lines |",
             "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in round_rows(rollouts):
        lines.append(f"| {s['round']} | {s['self_edits']} | {s['tasks']} | {s['mean']:.3f} ± {s['sd']:.3f} | "
                     f"{s['q1']:.3f} / {s['median']:.3f} / {s['q3']:.3f} | {s['above_0']:.2f} | {s['tied']:.2f} | "
                     f"{s['best_mean']:.3f} | {s['words']:.1f} | {s['lines']:.1f} | {s['best_words']:.1f} | {s['best_lines']:.1f} |")
    lines += _collapse_table(run_dirs)
    first_run = [r for r in rollouts if r["run"] == str(run_dirs[0])] or rollouts
    for rnd in sorted({min(r["round"] for r in first_run), max(r["round"] for r in first_run)}):
        in_round = [r for r in first_run if r["round"] == rnd]
        task = in_round[0]["task_id"]
        group = sorted((r for r in in_round if r["task_id"] == task), key=lambda r: r["reward"])
        lines += ["", f"Round {rnd}, task {task} ({len(group)} self-edits):"]
        for label, r in (("best", group[-1]), ("worst", group[0])) if len(group) > 1 else (("only", group[0]),):
            lines.append(f"- {label}, reward {r['reward']:.3f}: " + " / ".join(_nonempty_lines(r["edit"])))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or any(a.startswith("-") for a in args):
        print(__doc__.strip())
        return 0 if args and args[0] in ("-h", "--help") else 2
    missing = [a for a in args if not (Path(a) / "rollouts.jsonl").is_file() and not (Path(a) / "config.yaml").is_file()]
    if missing:
        print(f"{', '.join(missing)}: not a run directory (no config.yaml or rollouts.jsonl); pass the directories that "
              "seal-run run wrote, e.g. runs/learning/seal/seed0.", file=sys.stderr)
        return 2
    print(report([Path(a) for a in args]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
