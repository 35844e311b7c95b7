"""The project as a user installs it: from its wheel, not from this checkout.

    python tests/install/wheel_check.py [--venv build/wheel-venv]     # what `make test` runs

1. builds the wheel (``pip wheel --no-deps``) and compares its files with the tracked ``.py`` and
   data files of ``seal_core``, ``seal_plugins`` and ``seal_domains``: any missing or different
   file stops the check, named;
2. installs it without ``-e`` into a fresh virtual environment (its dependencies under
   ``constraints.txt``, as ``make install`` does);
3. from a temporary working directory, with ``python -I`` (no current directory, no
   ``PYTHONPATH``, no user site: the checkout cannot stand in for the wheel), checks that
   ``seal_core`` comes from that environment's site-packages and imports every module of the
   wheel, naming the first that fails;
4. runs a short ``multi-lora`` SEAL run on tiny-random with that environment's ``seal-run``.

``benchmarks/gpu_check.py`` uses the same pieces: ``prepare`` bundles this wheel, and the GPU
machine's preflight imports every module from it the same way (:func:`import_check`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("seal_core", "seal_plugins", "seal_domains")
SHIPPED = (".py", ".json")  # what the wheel carries of each package: code and data

#: run with ``python -I`` in an empty directory: SITE (or "") is put first on sys.path (for a
#: ``pip install --target`` directory, which -I would not see); then seal_core must come from
#: SITE or the interpreter's own site-packages, and every module named must import
_IMPORT_CHECK = r"""
import importlib, json, sys, sysconfig
site, modules = sys.argv[1], sys.argv[2:]
if site:
    sys.path.insert(0, site)
import seal_core
where = seal_core.__file__
expected = site or sysconfig.get_paths()["purelib"]
if not where.startswith(expected):
    sys.exit(f"seal_core was imported from {where}, not from {expected}: the wheel is not what runs")
for name in modules:
    try:
        importlib.import_module(name)
    except Exception as exc:
        sys.exit(f"cannot import {name} from the installed wheel: {type(exc).__name__}: {exc}")
print(json.dumps({"seal_core": where, "modules": len(modules)}))
"""


def build_wheel(out: Path) -> Path:
    """The project's wheel, built into ``out`` (emptied first) from this checkout."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.whl"):
        old.unlink()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(ROOT)], check=True)
    (wheel,) = out.glob("seal_framework-*.whl")
    return wheel


def tracked_files() -> set[str]:
    """The tracked code and data files of the three packages, as paths inside the wheel."""
    listed = subprocess.run(["git", "ls-files", *PACKAGES], cwd=ROOT, capture_output=True, text=True, check=True)
    return {path for path in listed.stdout.split() if path.endswith(SHIPPED)}


def wheel_files(wheel: Path) -> dict[str, bytes]:
    """The wheel's files of the three packages, by path."""
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist() if name.split("/")[0] in PACKAGES}


def differences(wheel: Path) -> list[str]:
    """What the wheel lacks or holds differently from the checkout's tracked files (empty: the
    wheel is this checkout)."""
    inside = wheel_files(wheel)
    problems = [f"missing from the wheel: {path}" for path in sorted(tracked_files() - set(inside))]
    problems += [f"differs from the checkout: {path}" for path in sorted(inside)
                 if (ROOT / path).is_file() and (ROOT / path).read_bytes() != inside[path]]
    return problems


def modules_of(wheel: Path) -> list[str]:
    """Every importable module of the wheel (``seal_core.__main__`` aside: importing it runs the CLI)."""
    names = []
    for path in sorted(wheel_files(wheel)):
        if path.endswith(".py"):
            name = path[:-3].replace("/", ".").removesuffix(".__init__")
            if not name.endswith("__main__"):
                names.append(name)
    return names


def import_check(python: str | Path, modules: list[str], site: Path | None = None) -> str:
    """Import ``modules`` with ``python -I`` from an empty temporary directory, ``seal_core``
    required to come from ``site`` (a ``--target`` directory) or from ``python``'s own
    site-packages. Returns the check's summary, a JSON line; raises ``SystemExit`` naming the
    first module that fails."""
    with tempfile.TemporaryDirectory(prefix="wheel-check-") as empty:
        done = subprocess.run([str(python), "-I", "-c", _IMPORT_CHECK, str(site or ""), *modules], cwd=empty,
                              capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"wheel check: {(done.stderr.strip().splitlines() or ['(no output)'])[-1]}")
    return done.stdout.strip().splitlines()[-1]  # the summary; imported packages may print before it


def fresh_venv(venv: Path, wheel: Path) -> Path:
    """A new virtual environment at ``venv`` with the wheel installed (not editable) and its
    dependencies under constraints.txt; returns its python."""
    subprocess.run(["rm", "-rf", str(venv)], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt")]
    subprocess.run([*pip, "torch"], check=True)  # first, as `make install` does: the pinned CPU build
    subprocess.run([*pip, str(wheel)], check=True, env={**os.environ, "DS_BUILD_OPS": "0"})  # DeepSpeed: no C++ ops
    return python


def smoke_run(venv: Path) -> None:
    """A one-round multi-lora SEAL run on tiny-random with the environment's ``seal-run``, from an
    empty directory."""
    with tempfile.TemporaryDirectory(prefix="wheel-run-") as work:
        sets = ["model.policy=tiny-random", "inner.name=multi-lora", "rounds=1", "edits_per_task=2",
                "domain.train_limit=2", "domain.eval_limit=1", "generator.max_new_tokens=8", "inner.epochs=1",
                "checkpoint=none", "algorithm.min_reward=-1"]
        cmd = [str(venv / "bin" / "seal-run"), "run", "--run-dir", "run", *[a for s in sets for a in ("--set", s)]]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", SEAL_LOG_LEVEL="warning")
        done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=env)
        if done.returncode or not (Path(work) / "run" / "metrics.jsonl").is_file():
            raise SystemExit(f"wheel check: the SEAL run from the installed wheel failed:\n{done.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--venv", default=str(ROOT / "build" / "wheel-venv"), help="the fresh environment (recreated)")
    parser.add_argument("--wheel-dir", default=str(ROOT / "build" / "wheel"), help="where the wheel is built")
    args = parser.parse_args()
    started = time.monotonic()
    wheel = build_wheel(Path(args.wheel_dir))
    problems = differences(wheel)
    if problems:
        raise SystemExit("wheel check: the wheel is not this checkout:\n  " + "\n  ".join(problems))
    venv = Path(args.venv).resolve()  # the checks run from a temporary directory
    python = fresh_venv(venv, wheel)
    summary = import_check(python, modules_of(wheel))
    smoke_run(venv)
    print(f"wheel check: {wheel.name} installed in {args.venv}; {summary}; a multi-lora run finished "
          f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
