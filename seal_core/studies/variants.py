"""Several variants of one config, each at one or more seeds: the runs behind ``seal-run compare``
and ``seal-run baselines``, and the intervals their tables report.

With one seed (no ``--seeds``) variant NAME runs into ``OUT/NAME``; with ``--seeds`` every variant
runs at every seed into ``OUT/NAME/seedS``, each an ordinary run directory (``seal-run run
--resume`` continues one). Running again into the same ``OUT`` (``--resume OUT``) skips the runs
that finished and resumes the ones that did not, so a killed multi-seed command loses at most the
round in progress.

The interval table (:func:`interval_table`) gives each variant's held-out score at its last
round as the mean over seeds and passages with a 95% interval that covers both the seeds and the
sampling of passages (:mod:`seal_core.studies.intervals`), and each variant's paired difference from a
named reference variant (same seeds, same passages), and says on how many seeds, passages and
questions each number rests.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from seal_core.loop.config import Config
from seal_core.studies.intervals import Table, bootstrap_interval, paired_interval
from seal_core.runs.store import RunStore
from seal_core.runtime.files import read_jsonl

log = structlog.get_logger(__name__)


def parse_seeds(text: str | None) -> list[int] | None:
    """``--seeds``: a count N (seeds 0..N-1) or a comma-separated list; None when not given."""
    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if len(seeds) == 1 and "," not in text:
        seeds = list(range(seeds[0]))
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        from seal_core.api.errors import SealError

        raise SealError(f"--seeds {text!r}: give a count (--seeds 3: seeds 0, 1, 2) or distinct non-negative "
                        "seeds separated by commas (--seeds 0,7,11).")
    return seeds


def with_seed(config: Config, seed: int) -> Config:
    """``config`` at another run seed (``run.seed`` and the resolved dict alike)."""
    return dataclasses.replace(config, run=dataclasses.replace(config.run, seed=seed), raw={**config.raw, "seed": seed})


def run_dir_of(out_dir: Path, name: str, seed: int | None) -> Path:
    return out_dir / name if seed is None else out_dir / name / f"seed{seed}"


def rounds_logged(run_dir: Path) -> int:
    """How many rounds ``run_dir`` has logged (round 0 included): its lines of metrics.jsonl."""
    return len(read_jsonl(run_dir / "metrics.jsonl"))


def finished(run_dir: Path, config: Config) -> bool:
    """Whether ``run_dir`` holds a run that completed all of ``config``'s rounds."""
    return rounds_logged(run_dir) == config.run.rounds + 1 and not (run_dir / "checkpoints" / "resume.json").is_file()


def run_one(config: Config, registry: Any, run_dir: Path, stop: Any, log_path: Path) -> list[dict[str, Any]]:
    """Run ``config`` into ``run_dir``: skipped when finished there, resumed when started there."""
    from seal_core.runtime import logs
    from seal_core.loop.experiments import make_engine
    from seal_core.loop.workbench import Workbench

    if finished(run_dir, config):
        log.info("variant already finished; skipped", run_dir=str(run_dir))
        return read_jsonl(run_dir / "metrics.jsonl")
    resume = (run_dir / "config.yaml").is_file()
    workbench = Workbench(config, registry)
    workbench.load_tasks()  # data errors before the run directory is made
    store = RunStore.existing(run_dir) if resume else RunStore.create(run_dir, config.to_yaml())
    logs.configure(store.log_path)
    log.info("variant resumed" if resume else "variant started", run_dir=str(run_dir), seed=config.run.seed)
    try:
        return make_engine(workbench, store, stop).run(resume=resume)
    finally:
        logs.configure(log_path)


def mean_metrics(per_seed: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Round by round, the mean of each numeric metric over the seeds that reached the round."""
    out = []
    for rnd in range(max(len(m) for m in per_seed)):
        rows = [m[rnd] for m in per_seed if len(m) > rnd]
        merged: dict[str, Any] = {"round": rnd}
        for key in rows[0]:
            values = [r.get(key) for r in rows]
            if key != "round" and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                merged[key] = statistics.fmean(values)
        out.append(merged)
    return out


def run_variants(configs: dict[str, Config], registry: Any, out_dir: Path, stop: Any,
                 on_result: Callable[[dict[str, dict[str, Any]]], None],
                 seeds: list[int] | None = None) -> dict[str, dict[str, Any]]:
    """Run each config (at each seed) under ``out_dir``; after each run, ``on_result(results)`` so
    partial results show. ``results[name]``: ``metrics`` (the mean over its seeds, round by
    round), ``seconds``, ``inner_evaluations`` (sums) and ``runs`` ({seed: run directory})."""
    results: dict[str, dict[str, Any]] = {}
    for name, config in configs.items():
        per_seed, runs, seconds = [], {}, 0.0
        for seed in seeds or [None]:
            run_dir = run_dir_of(out_dir, name, seed)
            metrics = run_one(config if seed is None else with_seed(config, seed), registry, run_dir, stop,
                              out_dir / "log.jsonl")
            per_seed.append(metrics)
            # the rounds' own timings: a run finished by an earlier invocation keeps its time
            seconds += sum(m.get("seconds", 0.0) for m in metrics)
            runs[config.run.seed if seed is None else seed] = run_dir
            results[name] = {"metrics": mean_metrics(per_seed), "seconds": seconds, "runs": dict(runs),
                             "inner_evaluations": sum(inner_evaluations(d) for d in runs.values())}
            on_result(results)
    return results


def inner_evaluations(run_dir: Path) -> int:
    """Inner-loop evaluations (adapt + score) a run spent: rollouts plus held-out evaluations."""
    return len(read_jsonl(run_dir / "rollouts.jsonl")) + len(read_jsonl(run_dir / "evaluations.jsonl"))


def score_table(runs: dict[int, Path], field: str = "score_after", rnd: int | None = None) -> tuple[Table, int]:
    """{seed: {passage: held-out score}} at round ``rnd`` (default: each run's last), and the
    number of questions per seed (from the evaluator's details where it reports them)."""
    table: Table = {}
    questions = 0
    for seed, run_dir in runs.items():
        rows = read_jsonl(run_dir / "evaluations.jsonl")
        last = rnd if rnd is not None else max(r["round"] for r in rows)
        chosen = [r for r in rows if r["round"] == last]
        table[seed] = {r["task_id"]: r[field] for r in chosen}
        questions = sum(len(r["details"].get("predictions", [])) for r in chosen)
    return table, questions


def common_rounds(runs: dict[int, Path]) -> list[int]:
    """The rounds whose held-out evaluations every run has written."""
    rows = {seed: read_jsonl(d / "evaluations.jsonl") for seed, d in runs.items()}
    return sorted(set.intersection(*({r["round"] for r in rs} for rs in rows.values()))) if rows else []


def round_intervals(runs: dict[int, Path]) -> list[tuple[int, float, float]]:
    """(round, low, high) of the held-out score's 95% interval at every round all seeds reached
    (the error bars of the plots)."""
    out = []
    for rnd in common_rounds(runs):
        table, _ = score_table(runs, rnd=rnd)
        if len(table) > 1:
            found = bootstrap_interval(table)
            out.append((rnd, found.low, found.high))
    return out


def interval_table(rows: dict[str, tuple], against: str | list[str]) -> str:
    """Markdown: per row (label -> ``(runs, field)``, or ``(runs, field, round)`` for a round
    other than each run's last), the mean held-out score with its 95% interval, the paired
    difference from each row named in ``against``, and what each rests on."""
    refs = [against] if isinstance(against, str) else list(against)
    tables = {label: score_table(*row) for label, row in rows.items()}
    common = set.intersection(*(set(t) for t, _ in tables.values()))  # seeds every row has finished
    tables = {label: ({s: t[s] for s in sorted(common)}, q) for label, (t, q) in tables.items()}
    head = "| variant | score, mean [95% CI] | " + "".join(f"minus {r} [95% CI] | beyond noise | " for r in refs)
    lines = [head + "seeds × passages (questions) |", "|---|---:|" + "---:|:---:|" * len(refs) + "---|"]
    for label, (table, questions) in tables.items():
        if not table:
            continue
        score = bootstrap_interval(table)
        diff_cells = []
        for ref_label in refs:
            ref = tables.get(ref_label, ({}, 0))[0]
            if label != ref_label and ref:
                diff = paired_interval(table, ref)
                diff_cells += [str(diff), "yes" if diff.excludes_zero else "no"]
            else:
                diff_cells += ["—", "—"]
        rests = f"{score.seeds} × {score.passages}" + (f" ({questions} per seed)" if questions else "")
        lines.append("| " + " | ".join([label, str(score), *diff_cells, rests]) + " |")
    return "\n".join(lines)


INTERVALS_NOTE = (
    "Intervals: 95%, from a two-level bootstrap that redraws both the seeds and the held-out passages "
    "(seal_core/studies/intervals.py), so they cover seed-to-seed noise and the sampling of passages; the "
    "difference is paired (the same seeds and passages for both variants in every replicate). "
    "'beyond noise': the difference's interval excludes 0. Only seeds that every variant finished are counted."
)
