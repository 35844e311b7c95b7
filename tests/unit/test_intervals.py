"""seal_core.studies.intervals: the interval arithmetic against hand-worked values."""

from __future__ import annotations

import math

import pytest

from seal_core.studies.intervals import bootstrap_interval, paired_interval, t_interval


def test_t_interval_by_hand():
    # mean 2, sample sd 1, n 3: half-width t(0.975, 2) * 1 / sqrt(3) = 4.303 / 1.732 = 2.484
    mean, half = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 / math.sqrt(3), abs=1e-9)
    # n 5, values 0.4..0.8: sd 0.1581, t(0.975, 4) = 2.776 -> 0.1963
    assert t_interval([0.4, 0.5, 0.6, 0.7, 0.8])[1] == pytest.approx(2.776 * 0.158114 / math.sqrt(5), abs=1e-5)
    assert math.isnan(t_interval([0.5])[1])


def test_bootstrap_by_hand():
    """One seed, two passages scoring 0 and 1: a replicate's mean is 0 (1/4), 0.5 (1/2) or 1 (1/4),
    so the 2.5th and 97.5th percentiles are 0 and 1 and the mean is 0.5."""
    found = bootstrap_interval({0: {"a": 0.0, "b": 1.0}})
    assert (found.mean, found.low, found.high) == (0.5, 0.0, 1.0)
    assert (found.seeds, found.passages) == (1, 2)
    # no variation anywhere: a zero-width interval
    flat = bootstrap_interval({s: {"a": 0.4, "b": 0.4} for s in range(3)})
    assert flat.low == flat.high == pytest.approx(0.4)


def test_seeds_are_a_source_of_noise_too():
    """Passages agree within a seed, seeds differ: only redrawing seeds can widen the interval."""
    table = {0: {"a": 0.2, "b": 0.2}, 1: {"a": 0.6, "b": 0.6}, 2: {"a": 0.4, "b": 0.4}}
    found = bootstrap_interval(table)
    assert found.mean == pytest.approx(0.4) and found.low < 0.3 and found.high > 0.5


def test_paired_difference_cancels_shared_noise():
    """Variant b = variant a + 0.1 on every cell, a itself noisy: the paired interval is exactly
    0.1 wide zero, while the separate intervals overlap."""
    a = {0: {"p": 0.1, "q": 0.9}, 1: {"p": 0.3, "q": 0.7}}
    b = {s: {k: v + 0.1 for k, v in row.items()} for s, row in a.items()}
    diff = paired_interval(b, a)
    assert diff.mean == pytest.approx(0.1) and diff.low == pytest.approx(0.1) and diff.high == pytest.approx(0.1)
    assert diff.excludes_zero
    assert bootstrap_interval(b).low < bootstrap_interval(a).high  # unpaired, they overlap


def test_mismatched_cells_are_refused():
    with pytest.raises(ValueError, match="other passages"):
        bootstrap_interval({0: {"a": 1.0}, 1: {"b": 1.0}})
    with pytest.raises(ValueError, match="same seeds and passages"):
        paired_interval({0: {"a": 1.0}}, {1: {"a": 1.0}})
