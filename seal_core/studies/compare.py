"""``seal-run compare``: several RL algorithms on one footing.

Each algorithm runs from the same config and seed, so every run starts from the same policy,
samples the same training tasks each round (they are seeded by round, not by what came before)
and scores the same number of self-edits per round. Only the update differs. Each algorithm
gets its own run directory under the comparison directory, which also receives
``comparison.md`` and ``comparison.png``.

With ``--seeds`` every algorithm runs at every seed (``DIR/NAME/seedS``); the table then gives
means over seeds, and a second table each algorithm's last-round score with a 95% interval over
seeds and passages and its paired difference from ``--against`` (default: the first algorithm),
see :mod:`seal_core.studies.variants`.

Overrides: ``--set KEY=VALUE`` applies to every run; ``--set algorithms.NAME.KEY=VALUE`` only to
algorithm NAME's section (e.g. ``--set algorithms.grpo.beta=0.04``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import structlog

from seal_core.loop.config import Config, load_raw, parse_override, resolve
from seal_core.api.errors import ConfigError
from seal_core.runs.results import plot_rounds
from seal_core.runtime.files import atomic_write_text
from seal_core.studies.variants import INTERVALS_NOTE, interval_table, round_intervals, run_variants

log = structlog.get_logger(__name__)


def split_overrides(overrides: list[str], algorithms: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Shared overrides, and per-algorithm ones (``algorithms.NAME.KEY=V`` -> ``algorithm.KEY=V``)."""
    shared: list[str] = []
    per: dict[str, list[str]] = {a: [] for a in algorithms}
    for text in overrides:
        keys, _ = parse_override(text)
        if keys[0] == "algorithm" and len(keys) > 1 and keys[1] == "name":
            raise ConfigError("compare sets algorithm.name itself: list the algorithms with --algorithms.")
        if keys[0] != "algorithms":
            shared.append(text)
            continue
        if len(keys) < 3 or keys[1] not in per:
            raise ConfigError(
                f"--set '{text}': per-algorithm keys are algorithms.NAME.KEY with NAME one of "
                f"{', '.join(algorithms)}."
            )
        per[keys[1]].append("algorithm." + text.split(".", 2)[2])
    return shared, per


def resolve_all(config_file: str | None, overrides: list[str], algorithms: list[str], registry: Any) -> dict[str, Config]:
    """One validated config per algorithm, all checked before anything runs."""
    if not algorithms or len(set(algorithms)) != len(algorithms):
        raise ConfigError(f"--algorithms needs distinct names, e.g. rest-em,grpo,ppo,rloo; got {algorithms}.")
    shared, per = split_overrides(overrides, algorithms)
    base = load_raw(config_file, shared)
    configs = {}
    for name in algorithms:
        raw = copy.deepcopy(base)
        section = dict(raw.get("algorithm") or {})
        if section.get("name") not in (None, name):
            section = {}  # the file's options belong to another algorithm
        raw["algorithm"] = {**section, "name": name}
        for text in per[name]:
            keys, value = parse_override(text)
            raw["algorithm"][keys[1]] = value
        configs[name] = resolve(raw, registry)
    return configs


ROUND_0 = "round 0 (no update)"


def comparison_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per algorithm."""
    rounds = max(len(r["metrics"]) for r in results.values())
    head = ["algorithm", *[f"eval r{i}" for i in range(rounds)], "best round", "mean train reward",
            "seconds", "inner evaluations"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for name, r in results.items():
        evals = [m.get("eval_adapted") for m in r["metrics"]]
        scored = [(v, i) for i, v in enumerate(evals) if v is not None]
        best = max(scored, key=lambda x: (x[0], -x[1]))[1] if scored else None
        rewards = [m["train_reward_mean"] for m in r["metrics"] if m.get("train_reward_mean") is not None]
        cells = [name, *[f"{v:.3f}" if v is not None else "-" for v in evals],
                 "-" if best is None else str(best),
                 f"{sum(rewards) / len(rewards):.3f}" if rewards else "-",
                 f"{r['seconds']:.0f}", str(r["inner_evaluations"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_comparison(out_dir: Path, results: dict[str, dict[str, Any]], title: str, against: str | None = None) -> str:
    table = comparison_table(results)
    seeds = max(len(r["runs"]) for r in results.values())
    intervals = ""
    if seeds > 1:
        reference = against or next(iter(results))
        rows = {name: (r["runs"], "score_after") for name, r in results.items()}
        refs = [reference]
        if max(len(r["metrics"]) for r in results.values()) > 1:
            # round 0 is the same for every algorithm (same policy, seeds and held-out self-edits), so the
            # reference's round 0 pairs with each algorithm: what its updates changed
            rows[ROUND_0] = ((results.get(reference) or next(iter(results.values())))["runs"], "score_after", 0)
            refs.append(ROUND_0)
        intervals = (f"Held-out score after the last round, over seeds and passages:\n\n"
                     f"{interval_table(rows, refs)}\n\n{INTERVALS_NOTE}\n\n")
    text = (
        f"# {title}\n\n{table}\n\n"
        + (f"Each cell is the mean over {seeds} seeds.\n\n" if seeds > 1 else "")
        + "eval rN: held-out score after a greedy self-edit of the policy at round N (round 0 is "
        "before any update, the same for every algorithm). mean train reward: the mean "
        "improvement of the sampled self-edits over all training rounds. seconds: the rounds' own time, "
        "summed over seeds (model loading excluded). inner evaluations: "
        "adapt-and-score operations the run spent (the budget, equal across algorithms).\n\n"
        + intervals + "![eval score per round](comparison.png)\n"
    )
    atomic_write_text(out_dir / "comparison.md", text)
    lines = {name: [(m["round"], m.get("eval_adapted")) for m in r["metrics"]] for name, r in results.items()}
    bars = {name: round_intervals(r["runs"]) for name, r in results.items()} if seeds > 1 else None
    plot_rounds(out_dir / "comparison.png", lines, title, "held-out score (adapted)", bars)
    return table + (f"\n\n{intervals.strip()}" if intervals else "")


def run_compare(configs: dict[str, Config], registry: Any, out_dir: Path, stop: Any,
                seeds: list[int] | None = None, against: str | None = None) -> str:
    """Run every algorithm (at every seed) under ``out_dir`` and write the comparison; return it."""
    first = next(iter(configs.values()))
    where = f"seeds {', '.join(map(str, seeds))}" if seeds else f"seed {first.run.seed}"
    title = f"SEAL {first.components['domain']} · {first.model.policy or first.model.teacher} · {where}"
    results = run_variants(configs, registry, out_dir, stop, lambda r: write_comparison(out_dir, r, title, against),
                           seeds)
    return write_comparison(out_dir, results, title, against)
