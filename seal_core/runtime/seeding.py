"""Seeds derived from the run seed and a name, so each step's randomness is fixed on its own.

Deriving per step (not drawing from one stream) keeps a step's samples the same whatever ran
before it, which is what resuming a run and comparing algorithms on one footing need.
"""

from __future__ import annotations

import hashlib
import json
import random

import torch


def derive_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed from the run seed and any labels (round, task id, edit index...)."""
    text = json.dumps([seed, *[str(p) for p in parts]])
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def seed_all(seed: int) -> None:
    """Seed Python's and torch's generators (all devices)."""
    random.seed(seed)
    torch.manual_seed(seed)
