"""Every command in README.md and docs/*.md works as written.

Each ``bash`` block is split into commands (a ``\\`` joins lines; ``#`` starts a comment). A
``seal-run`` command (also as ``.venv/bin/seal-run`` or ``$(which seal-run)`` under a launcher) is
either run for real or checked with ``--check``, which does everything the command does before it
starts working: the arguments, every config key, the data, the models' specs, the output
directory; nothing is trained. The other commands are listed in :data:`NOT_RUN`, each with why.

The commands of a block run in order, in one environment (an ``export`` line sets a variable
for the block's later commands). What the test substitutes, and nothing else (the convention):

- the working directory is a temporary ``checkout`` folder: ``runs/...`` and ``/tmp/...`` land
  there; the checkout's ``configs/``, ``seal_domains/`` and ``examples/`` are reachable by the
  same relative paths (docs/plugins.md's tutorial is left to tests/docs/test_tutorial.py, which
  follows it from an empty folder), and ``../shared`` is the data folder beside the checkout (a block that
  needs it is skipped where it is absent); a config file the docs name as the reader's own
  (``my.yaml``) is ``configs/quickstart.yaml``;
- model specs that need a hub or a GPU (a hub id, ``model.device=cuda``) become ``tiny-random``
  and ``cpu``; a hub dataset id, or ``passages.json`` in the README's example, becomes the
  bundled passages;
- ``python -c`` one-liners (they write a file a later command reads) run in the workspace;
- commands run for real (:data:`RUN`, and ``plugins`` and ``config``, which start no work) get
  the small settings of tests/tiny.py after their own ``--set`` unless they resume;
- ``--resume DIR`` of a directory no earlier command made (an example name) first gets a tiny
  run of the same command there.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tiny import TINY

# minutes of seal-run commands: out of the default suite (its 20-minute line), `make test` runs them on their own
pytestmark = [pytest.mark.slow, pytest.mark.doc_commands]

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BUNDLED = ROOT / "seal_domains" / "knowledge" / "data" / "passages.json"

#: commands that are not run, by their first word (or two), and why
NOT_RUN = {
    "make": "make run and make test are what CI runs end to end",
    "pip": "installs packages: make install does, and CI installs from scratch",
    "tensorboard": "a viewer that serves until stopped",
    "cat": "shows a file a cluster user writes",
    "python -m build": "builds the tutorial plugin's sdist and wheel (tests/install builds this project's)",
    "python -m twine": "uploads to PyPI (no network here)",
    "mkdir": "the tutorial's folder: tests/docs/test_tutorial.py follows the tutorial from an empty folder",
    "cd": "the tutorial's folder: tests/docs/test_tutorial.py",
    "grep": "reads a finished run's log",
    "python -m seal_domains.arc.baselines": "reports on finished ARC runs of the study in docs/experiments.md",
    "python -m seal_core.runs.report": "reports on finished ARC runs of the study in docs/experiments.md",
    "python -m pytest": "the tutorial plugin's tests: tests/docs/test_tutorial.py runs them",
    "python -m seal_core.studies.power": "reads finished runs of the study in docs/experiments.md (tests/unit/test_power.py tests it)",
}

#: seal-run commands run for real (with the tiny settings), by document and a part of the command
RUN = [
    ("README.md", "seal-run plugins"),
    ("README.md", "seal-run config --set rounds=3"),
    ("README.md", "--name my-run"),
    ("README.md", "--resume runs/my-run"),
    ("README.md", "seal-run adapt"),
    ("README.md", "seal-run ask"),
]


def blocks(doc: Path) -> list[list[str]]:
    """The bash blocks of ``doc``, each as its commands (continuation lines joined, comments dropped)."""
    text = doc.read_text(encoding="utf-8")
    if doc.name == "plugins.md":  # its tutorial runs in tests/docs/test_tutorial.py, from an empty folder
        before, tutorial = text.split("## Tutorial", 1)
        text = before + "\n## " + tutorial.split("\n## ", 1)[1]
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        lines = [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines()]
        found.append([shlex.join(words) for words in lines if words])
    return found


def not_run(words: list[str]) -> str | None:
    for key, why in NOT_RUN.items():
        if words[:len(key.split())] == key.split():
            return why
    return None


def seal_run_words(words: list[str]) -> list[str] | None:
    """The arguments after ``seal-run`` (launchers and ``.venv/bin/`` aside), or None."""
    for i, word in enumerate(words):
        if word in ("seal-run", ".venv/bin/seal-run"):
            return words[i + 1:]
        if word == "$(which":  # torchrun ... $(which seal-run) run ...
            return words[i + 2:]
    return None


def substitute(args: list[str], workspace: Path) -> list[str]:
    """The convention of the module docstring, applied to one seal-run command's arguments."""
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in ("model.policy", "model.teacher", "model.student") and not value.startswith(
                ("runs/", "embedded", "tiny-random", "random:")) and value != "null":
            arg = f"{key}=tiny-random"
        elif arg == "model.device=cuda":
            arg = "model.device=cpu"
        elif sep and key == "domain.source" and (value == "passages.json" or ":" in value):
            arg = f"domain.source={BUNDLED}"
        elif arg == "my.yaml":
            arg = "configs/quickstart.yaml"
        elif arg.startswith("/tmp/"):
            arg = str(workspace / arg.removeprefix("/tmp/"))
        out.append(arg)
    return out


def tiny(args: list[str]) -> list[str]:
    """The small settings after the command's own ``--set`` (a resume takes none; the policy is
    saved as the config says, for the commands that load it)."""
    if args[0] not in ("run", "compare", "baselines", "adapt") or "--resume" in args:
        return args
    return [*args, *[a for s in TINY if not s.startswith("checkpoint=") for a in ("--set", s)]]


def seal_run(args: list[str], workspace: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seal_core", *args], cwd=workspace, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1", **env})


def made_for_resume(args: list[str], workspace: Path, env: dict[str, str]) -> None:
    """A tiny run of ``args``' command in the directory it resumes, when no earlier command made it."""
    target = workspace / args[args.index("--resume") + 1]
    if target.exists():
        return
    extra = ["--algorithms", "rest-em"] if args[0] == "compare" else []
    done = seal_run(tiny([args[0], "--run-dir", str(target), *extra]), workspace, env)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A temporary working directory where the checkout's relative paths still resolve."""
    root = tmp_path_factory.mktemp("docs")
    work = root / "checkout"
    work.mkdir()
    for name in ("configs", "seal_domains", "examples"):
        (work / name).symlink_to(ROOT / name)
    (work / "runs").mkdir()  # a reader's checkout has it after the README's first run (--check makes none)
    if SHARED.is_dir():
        (root / "shared").symlink_to(SHARED)
    return work


def label(doc: Path) -> str:
    return doc.name if doc.parent == ROOT else f"docs/{doc.name}"


CASES = [(label(doc), i, block) for doc in DOCS for i, block in enumerate(blocks(doc))]


@pytest.mark.parametrize(("doc", "index", "block"), CASES, ids=[f"{d}#{i}" for d, i, _ in CASES])
def test_every_command_of_the_block_works_as_written(doc, index, block, workspace):
    if any("../shared" in command for command in block) and not SHARED.is_dir():
        pytest.skip("needs ../shared beside the checkout")
    env: dict[str, str] = {}
    for command in block:
        words = shlex.split(command)
        if words[0] == "export":
            env.update(w.split("=", 1) for w in words[1:] if "=" in w)
            continue
        if words[:2] == ["python", "-c"]:  # a one-line script that writes a file a later command reads
            done = subprocess.run([sys.executable, *words[1:]], cwd=workspace, capture_output=True, text=True)
            assert done.returncode == 0, f"{doc}: `{command}` failed:\n{done.stderr[-3000:]}"
            continue
        args = seal_run_words(words)
        if args is None:
            assert not_run(words), f"{doc}: `{command}` is neither a seal-run command nor listed in NOT_RUN"
            continue
        args = substitute(args, workspace)
        if "--resume" in args:
            made_for_resume(args, workspace, env)
        run = args[0] in ("plugins", "config") or any(d == doc and part in command for d, part in RUN)
        done = seal_run(tiny(args) if run else [*args, "--check"], workspace, env)
        assert done.returncode == 0, f"{doc}: `{command}` failed:\n{done.stderr[-3000:]}"
