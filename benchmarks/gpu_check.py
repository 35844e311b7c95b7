"""The GPU check: every CUDA path of the project in one script that fits a 10-minute GPU lease.

    make gpu-bundle                                  # once, here: wheels + tokenizer into .gpu/
    # on the GPU machine, in the repository root, with .gpu carried:
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/wheels/*.whl
    PYTHONPATH=/tmp/site SEAL_CACHE_DIR=.gpu/cache python3 benchmarks/gpu_check.py --out OUT
    # its CPU form, with tiny shapes (CI runs it from `make test`):
    python benchmarks/gpu_check.py --device cpu --out build/gpu-check-cpu

First the preflight: the bundle's project wheel must be this working tree (file by file, and
the digest ``make gpu-bundle`` recorded of it), and every module of the wheel must import with
``python -I`` from an empty directory, ``seal_core`` coming from the installed wheel, never from
the carried tree (tests/install/wheel_check.py); it stops at once, naming the file or module.
The CPU form builds the wheel from the tree instead of taking the bundle's.

Sections, each in its own process with its own time limit, in this order:

- ``tests``: the ``cuda``-marked tests (tests/unit/test_device.py) on the device: bf16 base weights with
  fp32 adapters and optimizer state, generation, multi-lora's routed scores equal to lora's;
- ``runs``: a one-round SEAL run with ``rest-em`` and one with ``grpo`` (``seal-run run``, the
  ``random:qwen2.5-0.5b`` shape on CUDA), checkpoint included;
- ``deepspeed``: the outer update under DeepSpeed ZeRO-2 and ZeRO-3 in a one-rank group (NCCL on
  CUDA) against the plain one-process update (tests/runs/dist_update_check.py);
- ``inner``: benchmarks/inner_loop.py at the 0.5B and 1.5B shapes: the reference pattern, lora, and
  multi-lora with K = 8 and K = 32: s/edit, peak GPU memory, training TFLOP/s against the GPU's
  measured bf16 matmul rate;
- ``round``: benchmarks/round.py, one SEAL round of ``make run``'s config at the 0.5B shape, timed
  phase by phase, and its rollouts per minute.

The report is written by benchmarks/gpu_report.py.

``--deadline`` bounds the whole script: a section that would start past it is skipped, and each
section's process is stopped at the deadline, so the report always comes back. The report is
``OUT/gpu_check.json`` and ``OUT/gpu_check.md``; every section's output is in ``OUT/gpu_check.log``.
The exit status is 1 when any section failed, timed out or was skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from gpu_report import environment, markdown

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("tests", "runs", "deepspeed", "inner", "round")

#: what each form runs; the CPU form is the same code on tiny shapes, sized for CI (~2 minutes)
FORMS = {
    "cuda": {
        "run_model": "random:qwen2.5-0.5b",
        "ds_model": "random:qwen2.5-0.5b",
        "ds_cases": "grpo:zero2,grpo:zero3,rest-em:zero2,rest-em:zero3",
        "inner_models": ["random:qwen2.5-0.5b", "random:qwen2.5-1.5b"],
        # reference hyperparameters (10 epochs); one batch per multi-lora path (K = 8: 8 self-edits,
        # K = 32: 32), the one-at-a-time paths on 2 self-edits (measured: the reference pattern
        # takes 14 s per self-edit at 0.5B on an H200)
        "inner_args": ["--edits", "32", "--sequential-edits", "2", "--batches", "1"],
        # measured on an H200 (2026-11-27): tests 47 s; each one-round run ~55 s with its
        # checkpoint; one 0.5B update ~26 s while its copy was initialised on the CPU (now
        # built on the GPU); the inner loop's reference path ~40 s per shape
        # one SEAL round of make run's config at the 0.5B shape (random weights: rewards are 0,
        # so min_reward=-1 lets rest-em's update run), at the size its cap was measured at: 3
        # self-edits per passage, one inner run each, batch 8, no sampled held-out edits (make
        # run's recipe scores 5 x 3 inner runs at batch 1: about 5x the inner work)
        "round_model": "random:qwen2.5-0.5b",
        "round_sets": ["algorithm.min_reward=-1", "checkpoint=none", "edits_per_task=3", "inner_runs=1",
                       "inner.batch_size=8", "eval_samples=0"],
        "caps": {"tests": 90, "runs": 200, "deepspeed": 100, "inner": 200, "round": 150},
        "ds_floor": True,
    },
    "cpu": {
        "run_model": "random:qwen2-tiny",
        "ds_model": "tiny-random",
        "ds_cases": "grpo:zero2,grpo:zero3",
        "inner_models": ["random:qwen2-tiny"],
        "inner_args": ["--edits", "32", "--sequential-edits", "2", "--batches", "1", "--epochs", "1", "--max-lines", "4", "--warmup",
                       "--paths", "reference,lora,multi-lora-k8-fp32,multi-lora-k32-fp32"],
        "round_model": "random:qwen2-tiny",
        "round_sets": ["algorithm.min_reward=-1", "checkpoint=none", "domain.train_limit=2", "domain.eval_limit=2",
                       "edits_per_task=2", "generator.max_new_tokens=16", "inner.epochs=1", "inner_runs=1", "eval_samples=0"],
        "caps": {"tests": 400, "runs": 200, "deepspeed": 200, "inner": 500, "round": 200},  # 2-core CPU without AMX: 169, 291 s
        "ds_floor": True,
    },
}
#: packages the GPU image lacks or has at another version: carried as wheels, at this checkout's
#: versions. Not huggingface-hub and tokenizers: the image's (1.33, 0.23) satisfy transformers, and
#: a newer hub would pull packages the image lacks. regex and typing-extensions: transformers and
#: pydantic check their minimum versions at import time.
CARRIED = ["structlog", "trl", "transformers", "peft", "accelerate", "datasets", "dill", "multiprocess", "deepspeed",
           "hjson", "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions", "regex"]
#: imported before any section runs, so that a broken environment costs seconds, not the lease
PREFLIGHT = ["torch", "transformers", "peft", "trl", "accelerate", "datasets", "deepspeed", "structlog", "pluggy"]
PIP_PLATFORM = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
                *[a for tag in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                                "manylinux2014_x86_64", "manylinux1_x86_64") for a in ("--platform", tag)]]


# -- the bundle for the GPU machine ----------------------------------------------------------------

DIGEST_FILE = "wheel-digest"
sys.path.insert(0, str(ROOT / "tests" / "install"))
import wheel_check  # noqa: E402  (tests/install/wheel_check.py: the wheel as a user installs it)


def bundled_wheel(bundle: Path) -> Path:
    """The project's wheel in the bundle (``make gpu-bundle`` puts it there)."""
    found = sorted((bundle / "wheels").glob("seal_framework-*.whl"))
    if not found:
        sys.exit(f"No project wheel in {bundle / 'wheels'}: run `make gpu-bundle` before carrying {bundle}.")
    return found[-1]


def preflight(bundle: Path, built_here: bool = False) -> dict:
    """The preflight (module docstring): stops at once naming a stale file or a module that does
    not import from the wheel. ``built_here`` (the CPU form, run by ``make test`` without a
    bundle): the wheel is built from the tree now."""
    if built_here and not (bundle / "wheels").is_dir():
        bundle = ROOT / "build" / "gpu-check-bundle"
        wheel = wheel_check.build_wheel(bundle / "wheels")
        (bundle / DIGEST_FILE).write_text(hashlib.sha256(wheel.read_bytes()).hexdigest()[:16] + "\n")
    wheel = bundled_wheel(bundle)
    stale = wheel_check.differences(wheel)
    if stale:
        sys.exit(f"{wheel.name} is not this working tree ({'; '.join(stale[:5])}). Run `make gpu-bundle` again "
                 f"before carrying {bundle} to the GPU machine.")
    recorded = (bundle / DIGEST_FILE).read_text().strip() if (bundle / DIGEST_FILE).is_file() else None
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()[:16]
    if recorded != digest:
        sys.exit(f"{wheel} has digest {digest}, the bundle recorded {recorded}: rebuild it with `make gpu-bundle`.")
    site = os.environ.get("PYTHONPATH", "").split(os.pathsep)[0]
    with tempfile.TemporaryDirectory(prefix="gpu-check-site-") as fresh:
        if not site:  # no --target install (the CPU form): install the wheel alone into a fresh one
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", fresh,
                            str(wheel)], check=True)
        summary = wheel_check.import_check(sys.executable, wheel_check.modules_of(wheel) + PREFLIGHT,
                                           Path(site or fresh))
    return {"wheel": wheel.name, "wheel_digest": digest, "imports": json.loads(summary)}


def prepare(bundle: Path) -> None:
    """Collect into ``bundle`` what the GPU machine needs and cannot download: wheels of
    :data:`CARRIED` for CPython 3.12 at this environment's versions, the project's own wheel
    (checked against the tree, its digest recorded), and the tokenizer cache (the random shapes
    use SmolLM2's tokenizer, converted from the 98 MB GGUF, which is too big to carry)."""
    from seal_core.models.loading import ensure_tokenizer_cache

    wheels = bundle / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "-q"]
    for name in CARRIED:
        pin = f"{name}=={importlib.metadata.version(name)}"
        got = subprocess.run([*pip, "download", "--no-deps", *PIP_PLATFORM, "-d", str(wheels), pin],
                             capture_output=True, text=True)
        if got.returncode:  # no binary wheel on the index (DeepSpeed ships an sdist): build one
            print(f"{pin}: no wheel for CPython 3.12 on the index; building one from the sdist")
            subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), pin], check=True,
                           env={**os.environ, "DS_BUILD_OPS": "0"})
    wheel = wheel_check.build_wheel(bundle / "project")
    stale = wheel_check.differences(wheel)
    if stale:
        sys.exit("the project's wheel is not this checkout:\n  " + "\n  ".join(stale))
    shutil.copy2(wheel, wheels / wheel.name)
    shutil.rmtree(bundle / "project")
    (bundle / DIGEST_FILE).write_text(hashlib.sha256(wheel.read_bytes()).hexdigest()[:16] + "\n")
    cache = bundle / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    tokenizer = ensure_tokenizer_cache()
    shutil.copytree(tokenizer, cache / tokenizer.name)
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) / 2**20
    print(f"{bundle}: {len(list(wheels.iterdir()))} wheels and the tokenizer, {size:.1f} MiB")


# -- running a section -----------------------------------------------------------------------------


class Runner:
    """Runs the sections' processes under one deadline, appending their output to one log."""

    def __init__(self, log: Path, deadline: float):
        self.log, self.deadline = log, deadline

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, label: str, cmd: list[str], cap: float, env: dict | None = None) -> dict:
        limit = min(cap, self.left())
        if limit < 10:
            return {"status": "skipped", "why": "out of time (--deadline)"}
        began = time.monotonic()
        with self.log.open("a") as log:
            log.write(f"\n===== {label}: {' '.join(cmd)} (limit {limit:.0f} s)\n")
            log.flush()
            try:
                proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log,
                                      stderr=subprocess.STDOUT, timeout=limit, text=True)
                status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
            except subprocess.TimeoutExpired:
                status = f"timed out after {limit:.0f} s"
            seconds = time.monotonic() - began
            log.write(f"===== {label}: {status} in {seconds:.1f} s\n")
        print(f"{label}: {status} in {seconds:.1f} s", flush=True)
        return {"status": status, "seconds": round(seconds, 1)}


def section_tests(runner: Runner, args, form: dict, work: Path) -> dict:
    junit = work / "junit.xml"
    result = runner.run("tests", [sys.executable, "-m", "pytest", "-m", "cuda", "tests/unit/test_device.py", "-q",
                                  "-p", "no:cacheprovider", f"--junitxml={junit}"], form["caps"]["tests"],
                        env={"SEAL_TEST_DEVICE": args.device})
    if junit.is_file():
        cases = []
        for case in ET.parse(junit).getroot().iter("testcase"):
            outcome = "passed"
            for tag in ("failure", "error", "skipped"):
                found = case.find(tag)
                if found is not None:
                    outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                    cases.append({"name": case.get("name"), "outcome": outcome, "seconds": float(case.get("time", 0)),
                                  "message": (found.get("message") or "")[:500]})
                    break
            else:
                cases.append({"name": case.get("name"), "outcome": outcome, "seconds": float(case.get("time", 0))})
        result["cases"] = cases
        result["passed"] = sum(c["outcome"] == "passed" for c in cases)
        if result["status"] == "ok" and result["passed"] == 0:
            result["status"] = "failed (no test ran: every one was skipped)"
    return result


def section_runs(runner: Runner, args, form: dict, work: Path) -> dict:
    out = {}
    for algorithm in ("rest-em", "grpo"):
        run_dir = work / f"run-{algorithm}"
        sets = {"model.policy": form["run_model"], "model.device": args.device, "rounds": 1, "edits_per_task": 2,
                "domain.train_limit": 2, "domain.eval_limit": 2, "generator.max_new_tokens": 48,
                "inner.epochs": 2, "algorithm.name": algorithm, "checkpoint": "final"}
        if algorithm == "rest-em":
            # random weights answer nothing, so every reward is 0: keep the best edit anyway, so
            # that the M-step (TRL's SFTTrainer on the device) runs. grpo's update is skipped at
            # equal rewards; the deepspeed section runs it, plain and under ZeRO.
            sets["algorithm.min_reward"] = -1
        cmd = [sys.executable, "-m", "seal_core", "run", "--run-dir", str(run_dir)]
        for key, value in sets.items():
            cmd += ["--set", f"{key}={value}"]
        result = runner.run(f"runs/{algorithm}", cmd, form["caps"]["runs"] / 2)
        metrics = run_dir / "metrics.jsonl"
        rollouts = run_dir / "rollouts.jsonl"
        result["metrics_lines"] = len(metrics.read_text().splitlines()) if metrics.is_file() else 0
        result["rollouts"] = len(rollouts.read_text().splitlines()) if rollouts.is_file() else 0
        result["checkpoint"] = any((run_dir / "checkpoints").glob("*")) if (run_dir / "checkpoints").is_dir() else False
        if result["status"] == "ok" and (result["metrics_lines"] != 2 or result["rollouts"] != 4):
            result["status"] = f"failed (expected 2 metrics lines and 4 rollouts, found {result['metrics_lines']} and {result['rollouts']})"
        out[algorithm] = result
    return out


def section_deepspeed(runner: Runner, args, form: dict, work: Path) -> dict:
    found = work / "deepspeed.json"
    result = runner.run("deepspeed", [sys.executable, "tests/runs/dist_update_check.py", str(found), "--device", args.device,
                                      "--model", form["ds_model"], "--cases", form["ds_cases"],
                                      *(["--floor"] if form["ds_floor"] else [])], form["caps"]["deepspeed"])
    if found.is_file():
        result["cases"] = json.loads(found.read_text())
        bad = [case for case, r in result["cases"].items() if not r["finite"] or r["max_abs_change"] == 0]
        if bad and result["status"] == "ok":
            result["status"] = f"failed ({', '.join(bad)}: weights did not move or are not finite)"
    return result


def section_inner(runner: Runner, args, form: dict, work: Path) -> dict:
    out = {}
    for model in form["inner_models"]:
        log_start = runner.log.stat().st_size if runner.log.exists() else 0
        result = runner.run(f"inner/{model}", [sys.executable, "benchmarks/inner_loop.py", "--device", args.device,
                                               "--model", model, "--data", "bundled", *form["inner_args"]],
                            form["caps"]["inner"])
        # the log's size is in bytes and the progress bars write non-ASCII: slice bytes, then decode
        text = runner.log.read_bytes()[log_start:].decode("utf-8", errors="replace")
        summary = [line for line in text.splitlines() if line.startswith("{") and '"seconds_per_edit"' in line]
        if summary:
            result["summary"] = json.loads(summary[-1])
        elif result["status"] == "ok":
            result["status"] = "failed (no summary line)"
        out[model] = result
    return out


def section_round(runner: Runner, args, form: dict, work: Path) -> dict:
    """One SEAL round timed phase by phase (benchmarks/round.py) at the form's shape and config."""
    log_start = runner.log.stat().st_size if runner.log.exists() else 0
    result = runner.run("round", [sys.executable, "benchmarks/round.py", "--model", form["round_model"], "--device",
                                  args.device, *[a for s in form["round_sets"] for a in ("--set", s)]],
                        form["caps"]["round"])
    lines = runner.log.read_bytes()[log_start:].decode("utf-8", errors="replace").splitlines()
    summary = [line for line in lines if line.startswith("{") and '"rollouts_per_minute"' in line]
    if summary:
        result["summary"] = json.loads(summary[-1])
    elif result["status"] == "ok":
        result["status"] = "failed (no summary line)"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs="?", choices=["check", "prepare"], default="check",
                        help="check (default): run the sections; prepare: collect the bundle for the GPU machine")
    parser.add_argument("--device", default="cuda", help="cuda (the real run) or cpu (the tiny CI form)")
    parser.add_argument("--out", default="build/gpu-check", help="folder for gpu_check.json, .md and .log")
    parser.add_argument("--only", help=f"comma-separated sections (default: all): {', '.join(SECTIONS)}")
    parser.add_argument("--deadline", type=float, default=560, help="seconds for the whole check (a GPU call may run 600)")
    parser.add_argument("--bundle", default=str(ROOT / ".gpu"), help="prepare: where to collect (carry it)")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(Path(args.bundle))
        return
    started = time.monotonic()
    form_name = "cuda" if args.device.startswith("cuda") else "cpu"
    form = FORMS[form_name]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "gpu_check.log"
    log.write_text("")
    runner = Runner(log, started + args.deadline)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    wanted = args.only.split(",") if args.only else list(SECTIONS)
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        parser.error(f"--only: unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    report = {"form": form_name, "environment": environment(args.device), "sections": {}}
    report["preflight"] = preflight(Path(args.bundle), built_here=form_name == "cpu")
    functions = {"tests": section_tests, "runs": section_runs, "deepspeed": section_deepspeed, "inner": section_inner,
                 "round": section_round}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        for name in SECTIONS:
            if name in wanted:
                report["sections"][name] = functions[name](runner, args, form, Path(work))
                report["seconds"] = time.monotonic() - started
                (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
                (out / "gpu_check.md").write_text(markdown(report))
    print((out / "gpu_check.md").read_text())
    statuses = [r["status"] for s in report["sections"].values()
                for r in (s.values() if "status" not in s else [s])]
    sys.exit(0 if all(s == "ok" for s in statuses) else 1)


if __name__ == "__main__":
    main()
