"""Baselines for ARC: configurations from a fixed grid instead of a model, and a run report.

Edit generator ``arc-config`` writes self-edits from the grid of configurations spanned by its
options (every combination of ``augmentations`` x ``strategies`` x ``learning_rates`` x
``epochs``). With the defaults the grid holds one configuration, the domain's default: that is
the fixed-configuration TTT baseline. With a larger grid and ``edits_per_task`` equal to its size,
every configuration is tried on every training task, and the best one per task is the oracle.
Greedy self-edits (for the held-out tasks) are the first configuration.

The report reads a run directory and prints, per round, the held-out solve rates, and for the
sampled self-edits the rejection rate, the share that solved their task, and the share of tasks
that some self-edit solved (the oracle, when the generator enumerates the grid)::

    python -m seal_domains.arc.baselines runs/arc-oracle
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import structlog

from seal_core import EditGenerator, LoadedModel, TaskInstance
from seal_domains.arc.selfedit import DEFAULT, STRATEGIES, EditConfig, config_grid

log = structlog.get_logger(__name__)


@dataclass
class ConfigGridOptions:
    # augmentation sets: flags joined by "+", or "none"
    augmentations: list[str] = field(default_factory=lambda: ["+".join(DEFAULT.augmentations) or "none"])
    strategies: list[str] = field(default_factory=lambda: [DEFAULT.strategy])
    learning_rates: list[float] = field(default_factory=lambda: [DEFAULT.learning_rate])
    epochs: list[int] = field(default_factory=lambda: [DEFAULT.num_train_epochs])

    def __post_init__(self) -> None:
        if not (self.augmentations and self.strategies and self.learning_rates and self.epochs):
            raise ValueError("augmentations, strategies, learning_rates and epochs must each list at least one value")
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad:
            raise ValueError(f"strategies: {bad[0]!r} is not one of {', '.join(STRATEGIES)}")
        config_grid(self.augmentations, self.strategies, self.learning_rates, self.epochs)  # checks the sets


class ConfigGrid(EditGenerator):
    """Self-edits from a fixed grid of configurations; ignores the model."""

    name = "arc-config"
    Options = ConfigGridOptions

    @cached_property
    def configs(self) -> list[EditConfig]:
        o = self.options
        return config_grid(o.augmentations, o.strategies, o.learning_rates, o.epochs)

    def generate(self, model: LoadedModel, prompts: list[str], k: int, *, greedy: bool = False,
                 tasks: list[TaskInstance] | None = None) -> list[list[str]]:
        configs = self.configs
        if not greedy and k != len(configs):
            log.warning("arc-config: edits_per_task differs from the grid size; configurations are "
                        "cycled or left out", k=k, grid=len(configs))
        edits = [configs[0].to_json()] * k if greedy else [configs[i % len(configs)].to_json() for i in range(k)]
        return [list(edits) for _ in prompts]


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def summarize(run_dir: Path) -> list[dict]:
    """One row per round: held-out and training-task solve rates and the rejection rate."""
    rows = []
    evaluations = defaultdict(list)
    for e in _read_jsonl(run_dir / "evaluations.jsonl"):
        evaluations[e["round"]].append(e)
    rollouts = defaultdict(list)
    for r in _read_jsonl(run_dir / "rollouts.jsonl"):
        rollouts[r["round"]].append(r)
    for rnd in sorted(set(evaluations) | set(rollouts)):
        ev, ro = evaluations[rnd], rollouts[rnd]
        row = {"round": rnd, "eval_tasks": len(ev)}
        if ev:
            row["eval_icl"] = sum(e["score_before"] for e in ev) / len(ev)
            row["eval_ttt"] = sum(e["score_after"] for e in ev) / len(ev)
            row["eval_rejected"] = sum(bool(e.get("reason")) for e in ev) / len(ev)
        if ro:
            by_task = defaultdict(list)
            for r in ro:
                by_task[r["task_id"]].append(r)
            row.update({
                "train_tasks": len(by_task),
                "train_edits": len(ro),
                "train_icl": sum(rs[0]["score_before"] for rs in by_task.values()) / len(by_task),
                "train_edit_solved": sum(r["score_after"] for r in ro) / len(ro),
                "train_best_of_k": sum(max(r["score_after"] for r in rs) for rs in by_task.values()) / len(by_task),
                "train_rejected": sum("reason" in r["details"] for r in ro) / len(ro),
            })
        rows.append(row)
    return rows


def best_configs(run_dir: Path) -> dict[str, list[str]]:
    """Per training task (all rounds), the self-edits that scored best."""
    by_task = defaultdict(list)
    for r in _read_jsonl(run_dir / "rollouts.jsonl"):
        by_task[r["task_id"]].append(r)
    out = {}
    for task_id, rs in sorted(by_task.items()):
        best = max(r["score_after"] for r in rs)
        out[task_id] = [f"{best:.0f}", *sorted({r["edit"] for r in rs if r["score_after"] == best and best > 0})]
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m seal_domains.arc.baselines RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(args[0])
    keys = ["round", "eval_tasks", "eval_icl", "eval_ttt", "eval_rejected", "train_tasks", "train_edits",
            "train_icl", "train_edit_solved", "train_best_of_k", "train_rejected"]
    print("| " + " | ".join(keys) + " |")
    print("|" + "|".join("---:" for _ in keys) + "|")
    for row in summarize(run_dir):
        print("| " + " | ".join(f"{row[k]:.3f}" if isinstance(row.get(k), float) else str(row.get(k, "-"))
                                for k in keys) + " |")
    print("\nbest self-edits per training task (score, edits that reached it):")
    for task_id, (score, *edits) in best_configs(run_dir).items():
        print(f"  {task_id}: {score}  {' | '.join(edits) if edits else '(none solved it)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
