"""Confidence intervals for scores measured over seeds and passages.

A variant's score at one seed is the mean over the same held-out passages of a per-passage score.
Two sources of noise move it: the seed (sampling, data order, adapter initialisation) and which
passages happen to be in the held-out set. :func:`bootstrap_interval` covers both with a
two-level bootstrap: each replicate draws the seeds with replacement and, independently, the
passages with replacement, and takes the mean over the drawn cells; the interval is the 2.5th
and 97.5th percentiles of the replicates. :func:`paired_interval` does the same for the
difference of two variants measured at the same seeds on the same passages, drawing one set of
seeds and passages per replicate for both (paired), which is far tighter than comparing two
separate intervals when the variants share most of their noise. :func:`t_interval` is Student's
t over per-seed means (seeds only), for comparison with older tables.

Scores are given as ``{seed: {passage id: score}}``; every seed must hold the same passages.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass

Table = dict[int, dict[str, float]]  # seed -> passage id -> score

# two-sided 95% quantiles of Student's t by degrees of freedom (1..30); beyond 30, 1.96
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
       2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
       2.045, 2.042]
REPLICATES = 4000


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% interval [low, high], and what it rests on."""

    mean: float
    low: float
    high: float
    seeds: int
    passages: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def t_interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the two-sided 95% Student t interval); the half-width is nan for one value."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    t = T95[len(values) - 2] if len(values) - 1 <= len(T95) else 1.96
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def cells(table: Table) -> tuple[list[int], list[str]]:
    """The table's seeds and passages, sorted; a ValueError where the seeds hold different passages."""
    seeds = sorted(table)
    if not seeds:
        raise ValueError("no seeds to take an interval over")
    passages = sorted(table[seeds[0]])
    for seed in seeds:
        if sorted(table[seed]) != passages:
            raise ValueError(f"seed {seed} holds other passages than seed {seeds[0]}: an interval over passages needs the same ones")
    if not passages:
        raise ValueError("no passages to take an interval over")
    return seeds, passages


def _bootstrap(value: dict[tuple[int, str], float], seeds: list[int], passages: list[str], replicates: int,
               rng_seed: int) -> Interval:
    def mean_of(s: list[int], p: list[str]) -> float:
        return statistics.fmean(value[(a, b)] for a in s for b in p)

    rng = random.Random(rng_seed)
    draws = sorted(mean_of(rng.choices(seeds, k=len(seeds)), rng.choices(passages, k=len(passages)))
                   for _ in range(replicates))
    low, high = draws[int(0.025 * (replicates - 1))], draws[math.ceil(0.975 * (replicates - 1))]
    return Interval(mean_of(seeds, passages), low, high, len(seeds), len(passages))


def bootstrap_interval(table: Table, replicates: int = REPLICATES, rng_seed: int = 0) -> Interval:
    """The mean over seeds and passages with a 95% interval covering both (two-level bootstrap)."""
    seeds, passages = cells(table)
    return _bootstrap({(s, p): table[s][p] for s in seeds for p in passages}, seeds, passages, replicates, rng_seed)


def paired_interval(table: Table, against: Table, replicates: int = REPLICATES, rng_seed: int = 0) -> Interval:
    """``table`` minus ``against`` (same seeds, same passages), paired, with its 95% interval."""
    seeds, passages = cells(table)
    if cells(against) != (seeds, passages):
        raise ValueError("a paired difference needs the same seeds and passages in both variants")
    return _bootstrap({(s, p): table[s][p] - against[s][p] for s in seeds for p in passages}, seeds, passages,
                      replicates, rng_seed)
