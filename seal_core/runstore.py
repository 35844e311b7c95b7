"""The run directory: what a run writes, and how (append + fsync, or temp file + rename).

    config.yaml        the resolved config
    rollouts.jsonl     one scored self-edit per line, appended as each is scored
    evaluations.jsonl  one held-out task per line and round: base and adapted scores
    metrics.jsonl      one line per round (round 0: before any RL update)
    log.jsonl          structlog events
    results.md         the metrics table; plot.png: eval scores per round
    checkpoints/       policy weights as safetensors
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from seal_core.errors import SealError
from seal_core.types import Rollout


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line and make it durable before returning."""
    drop_torn_tail(path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def drop_torn_tail(path: Path) -> None:
    """Cut a last line that a crash left without its newline, so the next row starts clean."""
    if not path.is_file() or not path.stat().st_size:
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return
        fh.truncate(data.rfind(b"\n") + 1)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a torn last line (a crash mid-write) is dropped."""
    if not path.is_file():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise SealError(f"{path}: line {i + 1} is not valid JSON; the file was edited or damaged.")
    return rows


def default_run_dir(domain: str, algorithm: str, parent: Path = Path("runs")) -> Path:
    return parent / f"{time.strftime('%Y%m%d-%H%M%S')}-{domain}-{algorithm}"


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)

    @classmethod
    def create(cls, run_dir: Path) -> "RunStore":
        run_dir = Path(run_dir)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise SealError(
                f"Run directory '{run_dir}' already holds files. Pass a new --run-dir, or remove "
                "that directory if you no longer need it."
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        return cls(run_dir)

    # paths
    @property
    def config_path(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def rollouts_path(self) -> Path:
        return self.dir / "rollouts.jsonl"

    @property
    def evaluations_path(self) -> Path:
        return self.dir / "evaluations.jsonl"

    @property
    def metrics_path(self) -> Path:
        return self.dir / "metrics.jsonl"

    @property
    def log_path(self) -> Path:
        return self.dir / "log.jsonl"

    # writing
    def write_config(self, yaml_text: str) -> None:
        atomic_write_text(self.config_path, yaml_text)

    def append_rollout(self, rollout: Rollout) -> None:
        append_jsonl(self.rollouts_path, rollout.to_json())

    def append_evaluation(self, row: dict[str, Any]) -> None:
        append_jsonl(self.evaluations_path, row)

    def append_metrics(self, metrics: dict[str, Any]) -> None:
        append_jsonl(self.metrics_path, metrics)

    def save_checkpoint(self, model: Any, name: str) -> Path:
        """Base weights of ``model`` (adapters excluded) as ``checkpoints/NAME.safetensors``."""
        from safetensors.torch import save_file

        from seal_core.models import plain_state_dict

        out = self.dir / "checkpoints"
        out.mkdir(exist_ok=True)
        tensors, seen = {}, set()
        for key, value in plain_state_dict(model).items():
            if value.data_ptr() in seen:  # tied weights (embeddings / lm_head): stored once
                continue
            seen.add(value.data_ptr())
            tensors[key] = value.detach().contiguous().cpu()
        path = out / f"{name}.safetensors"
        tmp = out / f".{name}.safetensors.tmp"
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, path)
        return path

    # reading
    def rollouts(self) -> list[Rollout]:
        return [Rollout.from_json(r) for r in read_jsonl(self.rollouts_path)]

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)
