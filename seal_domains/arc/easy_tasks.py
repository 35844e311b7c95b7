"""The bundled easy tasks (``data/easy_tasks.json``), written for this project.

Eight rule families on 2 x 2 to 4 x 4 grids, three tasks each (different colours and grids):
two in the train split, one in eval. Three demonstrations and one test input per task. Small
enough that SmolLM2-135M can learn a rule from its demonstrations by test-time training on a
CPU; real ARC tasks are far beyond it. Regenerate the file (deterministic) with::

    python -m seal_domains.arc.easy_tasks
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from seal_domains.arc.grids import GEOMETRIC, Grid

OUT = Path(__file__).parent / "data" / "easy_tasks.json"


def _recolor(a: int, b: int) -> Callable[[Grid], Grid]:
    return lambda g: tuple(tuple(b if c == a else c for c in r) for r in g)


def _swap(a: int, b: int) -> Callable[[Grid], Grid]:
    return lambda g: tuple(tuple(b if c == a else a if c == b else c for c in r) for r in g)


def _mask(colour: int) -> Callable[[Grid], Grid]:
    return lambda g: tuple(tuple(colour if c else 0 for c in r) for r in g)


def _tile_cols(g: Grid) -> Grid:
    return tuple(r + r for r in g)


#: family -> (rule from the task's colours (a, b), colours of the input grids)
FAMILIES: dict[str, Callable[[int, int], tuple[Callable[[Grid], Grid], tuple[int, ...]]]] = {
    "recolor": lambda a, b: (_recolor(a, b), (0, a)),
    "fill-background": lambda a, b: (_recolor(0, b), (0, a)),
    "swap-colours": lambda a, b: (_swap(a, b), (a, b)),
    "mask": lambda a, b: (_mask(b), (0, a, (a % 9) + 1)),
    "mirror": lambda a, b: (GEOMETRIC["flip_cols"].forward, (0, a, b)),
    "upside-down": lambda a, b: (GEOMETRIC["flip_rows"].forward, (0, a, b)),
    "transpose": lambda a, b: (GEOMETRIC["transpose"].forward, (0, a, b)),
    "tile-sideways": lambda a, b: (_tile_cols, (0, a, b)),
}
COLOURS = [(1, 2), (3, 4), (6, 8)]  # (a, b) of the three tasks of a family; the third is eval


def _grid(rng: random.Random, colours: tuple[int, ...]) -> Grid:
    h, w = rng.randint(2, 4), rng.randint(2, 4)
    while True:
        g = tuple(tuple(rng.choice(colours) for _ in range(w)) for _ in range(h))
        if len({c for r in g for c in r}) > 1:  # a one-colour grid shows no rule
            return g


def build() -> dict[str, dict]:
    tasks = {}
    for family, make in FAMILIES.items():
        for n, (a, b) in enumerate(COLOURS):
            rng = random.Random(f"{family}-{n}")
            rule, colours = make(a, b)
            grids = [_grid(rng, colours) for _ in range(4)]
            pairs = [{"input": [list(r) for r in g], "output": [list(r) for r in rule(g)]} for g in grids]
            tasks[f"{family}-{n + 1}"] = {"train": pairs[:3], "test": pairs[3:],
                                          "split": "eval" if n == 2 else "train"}
    return tasks


def dump(tasks: dict[str, dict]) -> str:
    """One grid per line: compact, and still easy to read."""
    lines = ["{"]
    for i, (tid, task) in enumerate(tasks.items()):
        lines.append(f'  "{tid}": {{"split": "{task["split"]}",')
        for part in ("train", "test"):
            items = ",\n".join(f'      {{"input": {json.dumps(p["input"])}, "output": {json.dumps(p["output"])}}}'
                               for p in task[part])
            lines.append(f'    "{part}": [\n{items}\n    ]' + ("," if part == "train" else ""))
        lines.append("  }" + ("," if i < len(tasks) - 1 else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    OUT.write_text(dump(build()), encoding="utf-8")
    print(f"wrote {OUT}")
