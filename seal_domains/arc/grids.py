"""ARC grids: validation, the text form the model reads and writes, and invertible transforms.

A grid is a tuple of equal-length rows of colours 0-9 (at most 30 x 30, as in ARC). Its text
form is one line per row with one digit per cell and no separators::

    ((0, 1), (2, 3))  <->  "01\\n23"

SmolLM2's tokenizer splits digit runs into single digits, so a cell is one token and a row
break one more: a 3 x 3 grid costs 11 tokens, a 30 x 30 grid 929 (``tests/unit/test_arc_grids.py``
checks the count). Separators between cells would double that.

Every transform here is a bijection from grids onto its image, with an inverse: geometric ones
(the dihedral group of the square: rotations, flips, transposes) on every grid, ``scale``/
``tile`` ones on grids that they produced. Augmentations apply one transform to every grid of a
task (the rule of the transformed task is the conjugated rule); the evaluator predicts under
geometric transforms and maps the predictions back with the inverse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Grid = tuple[tuple[int, ...], ...]

MAX_SIDE = 30


def as_grid(value: Any) -> Grid | None:
    """``value`` as a grid when it is a non-empty rectangular list of lists of colours 0-9."""
    if not isinstance(value, (list, tuple)) or not value or len(value) > MAX_SIDE:
        return None
    rows = []
    for row in value:
        if not isinstance(row, (list, tuple)) or not row or len(row) > MAX_SIDE:
            return None
        if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 9 for c in row):
            return None
        rows.append(tuple(row))
    if len({len(r) for r in rows}) != 1:
        return None
    return tuple(rows)


def to_text(grid: Grid) -> str:
    """One line per row, one digit per cell."""
    return "\n".join("".join(str(c) for c in row) for row in grid)


def parse_text(text: str) -> Grid | None:
    """The grid at the start of ``text`` (leading blank lines skipped); ``None`` if there is none.

    The grid is the run of lines made only of digits; it ends at the first other line. Rows of
    unequal length make it ``None``: a ragged answer is wrong, not repaired.
    """
    rows: list[tuple[int, ...]] = []
    for line in text.strip().splitlines():
        line = line.strip()
        if not line or not line.isdigit() or not line.isascii():
            break
        rows.append(tuple(int(c) for c in line))
    return as_grid(rows) if rows else None


# --- transforms -------------------------------------------------------------------------------


def _transpose(g: Grid) -> Grid:
    return tuple(zip(*g))


def _flip_rows(g: Grid) -> Grid:  # upside down
    return tuple(reversed(g))


def _flip_cols(g: Grid) -> Grid:  # mirror left-right
    return tuple(tuple(reversed(r)) for r in g)


def _rot90(g: Grid) -> Grid:  # clockwise
    return _flip_cols(_transpose(g))


def _rot180(g: Grid) -> Grid:
    return _flip_rows(_flip_cols(g))


def _rot270(g: Grid) -> Grid:
    return _transpose(_flip_cols(g))


def _anti_transpose(g: Grid) -> Grid:
    return _rot180(_transpose(g))


def _scale(rows: int, cols: int) -> Callable[[Grid], Grid]:
    def forward(g: Grid) -> Grid:
        return tuple(tuple(c for c in r for _ in range(cols)) for r in g for _ in range(rows))
    return forward


def _unscale(rows: int, cols: int) -> Callable[[Grid], Grid]:
    def inverse(g: Grid) -> Grid:
        return tuple(tuple(r[::cols]) for r in g[::rows])
    return inverse


def _tile(rows: int, cols: int) -> Callable[[Grid], Grid]:
    def forward(g: Grid) -> Grid:
        return tuple(tuple(r) * cols for r in g) * rows
    return forward


def _untile(rows: int, cols: int) -> Callable[[Grid], Grid]:
    def inverse(g: Grid) -> Grid:
        h, w = len(g) // rows, len(g[0]) // cols
        return tuple(tuple(r[:w]) for r in g[:h])
    return inverse


@dataclass(frozen=True)
class Transform:
    """A named invertible map on grids: ``inverse(forward(g)) == g`` for every grid ``g``."""

    name: str
    forward: Callable[[Grid], Grid]
    inverse: Callable[[Grid], Grid]
    factor: tuple[int, int] = (1, 1)  # how much it multiplies (rows, cols); 1 for geometric ones

    def __call__(self, grid: Grid) -> Grid:
        return self.forward(grid)

    def fits(self, grid: Grid) -> bool:
        """Whether the transformed grid stays within ARC's 30 x 30."""
        # a chained rotation may swap the sides: bound both by the larger one
        return max(len(grid), len(grid[0])) * max(self.factor) <= MAX_SIDE

    def then(self, other: "Transform") -> "Transform":
        """``other`` applied after this one."""
        return Transform(f"{self.name}+{other.name}", lambda g: other.forward(self.forward(g)),
                         lambda g: self.inverse(other.inverse(g)),
                         (self.factor[0] * other.factor[0], self.factor[1] * other.factor[1]))


IDENTITY = Transform("identity", lambda g: g, lambda g: g)

#: the dihedral group of the square, identity first: what the evaluator votes over
GEOMETRIC: dict[str, Transform] = {t.name: t for t in (
    IDENTITY,
    Transform("rot90", _rot90, _rot270),
    Transform("rot180", _rot180, _rot180),
    Transform("rot270", _rot270, _rot90),
    Transform("flip_rows", _flip_rows, _flip_rows),
    Transform("flip_cols", _flip_cols, _flip_cols),
    Transform("transpose", _transpose, _transpose),
    Transform("anti_transpose", _anti_transpose, _anti_transpose),
)}

_BASIC = [GEOMETRIC[n] for n in ("rot90", "rot180", "rot270", "flip_rows", "flip_cols", "transpose")]
_SIZE = [Transform("scale2", _scale(2, 2), _unscale(2, 2), (2, 2)),
         Transform("scale2_rows", _scale(2, 1), _unscale(2, 1), (2, 1)),
         Transform("scale2_cols", _scale(1, 2), _unscale(1, 2), (1, 2))]
_REPEAT = [Transform("tile2", _tile(2, 2), _untile(2, 2), (2, 2)),
           Transform("tile2_rows", _tile(2, 1), _untile(2, 1), (2, 1)),
           Transform("tile2_cols", _tile(1, 2), _untile(1, 2), (1, 2))]

#: the self-edit's augmentation flags -> the transforms each one adds to the training data
AUGMENTATIONS: dict[str, list[Transform]] = {
    "basic": _BASIC,  # rotations, flips, transpose
    "size": _SIZE,  # every cell becomes a 2 x 2 (or 2 x 1, 1 x 2) block
    "chain": [t.then(_SIZE[0]) for t in _BASIC],  # a basic transform, then scale2
    "repeat": _REPEAT,  # the grid tiled twice along rows, columns, or both
}

ALL_TRANSFORMS: dict[str, Transform] = {t.name: t for ts in [GEOMETRIC.values(), *AUGMENTATIONS.values()] for t in ts}
