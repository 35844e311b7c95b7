"""Resume points: the generator's weights after an RL update, checksummed, and the record naming them.

After round r's update the weights (and the RL algorithm's own tensors) are written to
``checkpoints/resume-<r>.safetensors`` (temporary file, fsync, rename), read back to check that
they load and to take their sha256, and only then named by ``checkpoints/resume.json`` (round,
file, sha256, the round's metrics so far, and the point it replaces). Then the previous point's
file goes: two weight files exist only between those steps, so a crash at any moment leaves a
record whose file was verified, or the previous record with its own file.

Reading a point checks its sha256; a missing or damaged file raises :class:`BrokenPoint`, and
:mod:`seal_core.runs.resume` falls back to an older good point (or the run's initial weights) and
redoes the updates in between from the saved rollouts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seal_core.api.errors import SealError
from seal_core.runtime.files import atomic_write_text, sha256_of, writing

#: the resume point's keys of the RL algorithm's state (:meth:`seal_core.RLAlgorithm.state_dict`)
ALGORITHM_PREFIX = "__algorithm__."
LEGACY_FILE = "resume.safetensors"  # one unchecked file, as runs before checksums wrote it


class BrokenPoint(SealError):
    """A resume point whose weights are missing, unreadable or not the bytes its record names."""


def write_weights(tensors: dict[str, Any], path: Path) -> None:
    """``tensors`` as the safetensors file ``path`` (temporary file, fsync, rename)."""
    import os

    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path, tmp):
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def verified(path: Path) -> str:
    """``path``'s sha256, once it is known to load (its header and every tensor); BrokenPoint if not."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            for key in fh.keys():
                fh.get_tensor(key)
    except Exception as exc:  # safetensors' own error type: a short or damaged file
        raise BrokenPoint(f"{path}: the weights do not load ({type(exc).__name__}: {exc}).") from None
    return sha256_of(path)


class ResumePoints:
    """The resume points of one run directory (``folder`` is its ``checkpoints/``)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.record_path = folder / "resume.json"

    def record(self) -> dict[str, Any] | None:
        if not self.record_path.is_file():
            return None
        try:
            return json.loads(self.record_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BrokenPoint(f"{self.record_path}: not a readable record ({exc}).") from None

    def save(self, tensors: dict[str, Any], round: int, metrics: dict[str, Any]) -> None:
        """The point after round ``round``'s update (see the module docstring)."""
        with writing(self.folder):
            self.folder.mkdir(exist_ok=True)
        name = f"resume-{round}.safetensors"
        write_weights(tensors, self.folder / name)
        digest = verified(self.folder / name)
        before = self._record_or_none()
        previous = None if before is None else {k: before.get(k) for k in ("round", "file", "sha256")}
        atomic_write_text(self.record_path, json.dumps({"round": round, "file": name, "sha256": digest,
                                                         "metrics": metrics, "previous": previous}))
        for old in self.weight_files():
            if old.name != name:
                old.unlink(missing_ok=True)

    def _record_or_none(self) -> dict[str, Any] | None:
        try:
            return self.record()
        except BrokenPoint:
            return None

    def weight_files(self) -> list[Path]:
        return sorted(self.folder.glob("resume*.safetensors")) if self.folder.is_dir() else []

    def load(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The tensors of the point ``entry`` names (the record or its ``previous``), checked
        against its sha256; BrokenPoint when they are missing or not those bytes."""
        from safetensors.torch import load_file

        path = self.folder / (entry.get("file") or LEGACY_FILE)
        if not path.is_file():
            raise BrokenPoint(f"{path}: the weights of the resume point after round {entry.get('round')} are missing.")
        digest = verified(path)
        if entry.get("sha256") and digest != entry["sha256"]:
            raise BrokenPoint(f"{path}: sha256 {digest[:12]}... is not the {entry['sha256'][:12]}... its record names: "
                              "the file was damaged after it was written.")
        return load_file(str(path))

    def drop(self) -> None:
        """A finished run needs no resume point (it is as large as the model)."""
        self.record_path.unlink(missing_ok=True)
        for path in self.weight_files():
            path.unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()
