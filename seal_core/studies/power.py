"""The smallest paired difference a seeds x passages design can detect, from a pilot's differences.

A paired difference measured at S seeds on P held-out passages has, under the two-way model
``x[s, p] = mean + seed[s] + passage[p] + residual``, the variance

    var = var_seed / S + var_passage / P + var_residual / (S x P)

whose three components a pilot table estimates by the two-way analysis of variance without
replication (each component floored at 0). The minimum detectable difference at two-sided level
5% and power 80% is (1.96 + 0.84) x sqrt(var): a true difference that large has an 80% chance of
a 95% interval that excludes 0. Run it on a pilot before sizing an experiment::

    python -m seal_core.studies.power RUN_A [RUN_A ...] --against RUN_B [RUN_B ...] \\
        [--round R] [--against-round R0] [--field score_after] --seeds 3 --passages 24

(one run directory per seed on each side, in the same seed order; by default both sides' last
round). It prints the paired difference with its 95% interval (the two-level bootstrap of
:mod:`seal_core.studies.intervals`), the pilot's components and the detectable difference of the
design asked for: with ``--round 1 --against-round 0`` on the same runs, an RL gain and its power.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from seal_core.studies.intervals import Table, bootstrap_interval, cells

Z_POWER = 1.959964 + 0.841621  # two-sided 5% level, 80% power


@dataclass(frozen=True)
class Components:
    """Variance components of a seeds x passages table of paired differences."""

    mean: float
    seed: float
    passage: float
    residual: float

    def standard_error(self, seeds: int, passages: int) -> float:
        return math.sqrt(self.seed / seeds + self.passage / passages + self.residual / (seeds * passages))

    def detectable(self, seeds: int, passages: int) -> float:
        """The difference detected with 80% power at the 5% level by ``seeds`` x ``passages``."""
        return Z_POWER * self.standard_error(seeds, passages)


def components(table: Table) -> Components:
    """The two-way ANOVA estimates of ``table`` (at least 2 seeds and 2 passages)."""
    seeds, passages = cells(table)
    S, P = len(seeds), len(passages)
    if S < 2 or P < 2:
        raise ValueError(f"a pilot needs at least 2 seeds and 2 passages, got {S} x {P}")
    grand = statistics.fmean(table[s][p] for s in seeds for p in passages)
    by_seed = {s: statistics.fmean(table[s][p] for p in passages) for s in seeds}
    by_passage = {p: statistics.fmean(table[s][p] for s in seeds) for p in passages}
    ms_seed = P * sum((m - grand) ** 2 for m in by_seed.values()) / (S - 1)
    ms_passage = S * sum((m - grand) ** 2 for m in by_passage.values()) / (P - 1)
    ms_residual = sum((table[s][p] - by_seed[s] - by_passage[p] + grand) ** 2
                      for s in seeds for p in passages) / ((S - 1) * (P - 1))
    return Components(grand, max(0.0, (ms_seed - ms_residual) / P), max(0.0, (ms_passage - ms_residual) / S),
                      ms_residual)


def difference_table(runs: list[Path], against: list[Path], rnd: int | None, against_round: int | None,
                     field: str) -> Table:
    """{seed position: {passage: runs' score - against's score}} over the passages both scored."""
    from seal_core.studies.variants import score_table

    mine, _ = score_table(dict(enumerate(runs)), field, rnd)
    theirs, _ = score_table(dict(enumerate(against)), field, against_round)
    return {s: {p: mine[s][p] - theirs[s][p] for p in mine[s] if p in theirs[s]} for s in mine}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seal_core.studies.power", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories, one per seed")
    parser.add_argument("--against", nargs="+", type=Path, required=True, help="the other side, same seed order")
    parser.add_argument("--round", type=int, help="the runs' round (default: each run's last)")
    parser.add_argument("--against-round", type=int, help="the other side's round (default: each run's last)")
    parser.add_argument("--field", default="score_after", help="the evaluations.jsonl field (e.g. sampled_score_after)")
    parser.add_argument("--seeds", type=int, required=True, help="seeds of the design to size")
    parser.add_argument("--passages", type=int, required=True, help="held-out passages of the design to size")
    args = parser.parse_args(argv)
    if len(args.runs) != len(args.against):
        parser.error(f"{len(args.runs)} runs against {len(args.against)}: give one directory per seed on each side")
    table = difference_table(args.runs, args.against, args.round, args.against_round, args.field)
    pilot = components(table)
    S, P = len(table), len(next(iter(table.values())))
    print(f"difference ({args.field}): {bootstrap_interval(table)} over {S} seeds x {P} passages")
    print(f"pilot: {S} seeds x {P} passages, mean difference {pilot.mean:+.3f}; variance components: seed "
          f"{pilot.seed:.4f}, passage {pilot.passage:.4f}, residual {pilot.residual:.4f}")
    print(f"pilot's own detectable difference: {pilot.detectable(S, P):.3f}")
    print(f"design {args.seeds} seeds x {args.passages} passages: standard error "
          f"{pilot.standard_error(args.seeds, args.passages):.3f}, detectable difference (80% power, 5% two-sided) "
          f"{pilot.detectable(args.seeds, args.passages):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
