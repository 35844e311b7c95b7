"""ARC grids: every transform is invertible, the text form round-trips, voting picks the majority."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seal_domains.arc.evaluator import vote
from seal_domains.arc.grids import ALL_TRANSFORMS, AUGMENTATIONS, GEOMETRIC, as_grid, parse_text, to_text


@st.composite
def grids(draw, max_side: int = 12):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    return tuple(tuple(draw(st.lists(st.integers(0, 9), min_size=w, max_size=w))) for _ in range(h))


@pytest.mark.parametrize("name", sorted(ALL_TRANSFORMS))
@settings(max_examples=30, deadline=None)
@given(grid=grids())
def test_every_transform_is_invertible(name, grid):
    t = ALL_TRANSFORMS[name]
    moved = t(grid)
    assert as_grid(moved) is not None  # still a rectangular grid
    assert t.inverse(moved) == grid


@settings(max_examples=40, deadline=None)
@given(grid=grids(max_side=30))
def test_text_round_trip(grid):
    assert parse_text(to_text(grid)) == grid
    assert parse_text("\n" + to_text(grid) + "\nthen some words") == grid


def test_geometric_transforms_are_the_eight_distinct_symmetries():
    grid = ((1, 2, 3), (4, 5, 6))
    images = {t(grid) for t in GEOMETRIC.values()}
    assert len(GEOMETRIC) == 8 and len(images) == 8
    assert GEOMETRIC["rot90"](grid) == ((4, 1), (5, 2), (6, 3))  # clockwise
    assert GEOMETRIC["flip_cols"](grid) == ((3, 2, 1), (6, 5, 4))


def test_augmentation_flags_and_sizes():
    assert set(AUGMENTATIONS) == {"basic", "size", "chain", "repeat"}
    grid = ((1, 2), (3, 4))
    assert AUGMENTATIONS["size"][0](grid) == ((1, 1, 2, 2), (1, 1, 2, 2), (3, 3, 4, 4), (3, 3, 4, 4))
    assert AUGMENTATIONS["repeat"][0](grid) == ((1, 2, 1, 2), (3, 4, 3, 4), (1, 2, 1, 2), (3, 4, 3, 4))
    big = tuple((0,) * 16 for _ in range(3))
    assert not AUGMENTATIONS["size"][0].fits(big) and GEOMETRIC["rot90"].fits(big)


@pytest.mark.parametrize("text", ["", "no grid", "12\n123", "1a2\n", "１２"])
def test_parse_rejects_non_grids(text):
    assert parse_text(text) is None


def test_as_grid_validates():
    assert as_grid([[0, 9]]) == ((0, 9),)
    for bad in ([], [[]], [[1], [1, 2]], [[10]], [[-1]], [[True]], [[1.0]], "12", [[0] * 31]):
        assert as_grid(bad) is None, bad


def test_vote_majority_then_first_seen():
    a, b, c = ((1,),), ((2,),), ((3,),)
    assert vote([a, b, b, None, c, c], 2) == [b, c]  # b and c tie on 2: b was seen first
    assert vote([None, c, a, a], 2) == [a, c]
    assert vote([a, None], 2) == [a]
    assert vote([None, None], 2) == []
    assert vote([c, b, a], 1) == [c]
