"""Fault injection: each fault a run must survive, tried on real ``seal-run`` processes, and a table.

    .venv/bin/python benchmarks/faults.py                 # every fault, 20 random-moment kills (~20 min)
    .venv/bin/python benchmarks/faults.py --only enospc,point --kills 3

The run: tiny-random, 2 rounds, rest-em updating every round (``algorithm.min_reward=-1``), the
final policy saved. Each faulted run is resumed (``seal-run run --resume``) and compared with an
uninterrupted run of the same config: rollouts, evaluations, metrics (timings aside) and the final
policy's weights. The faults:

- ``sites``: ENOSPC injected at every guarded write of the run in turn (``SEAL_FAIL_WRITE=N`` for
  N = 1, 2, ... until a run passes every write; seal_core/runtime/files.py), then the resume;
- ``enospc``: the run directory on a tmpfs of a given size, from a few KB to tens of MB, so that
  the disk fills at one write site after another (config, log, rows, resume point, results,
  policy); the space comes back (the directory is copied off the tmpfs) and the run resumes.
  Needs ``mount`` (root); skipped otherwise. ``readonly``: a read-only directory is refused before
  any model loads;
- ``point``: the latest resume point's weights cut to 1000 bytes after round 0's update (the run
  killed there); the resume falls back and redoes the update from the saved rollouts;
- ``line``: a damaged line among the unfinished round's rollouts (recomputed), and one among a
  finished round's (the resume stops, naming the line and the choices);
- ``writer``: a second ``--resume`` while the first run still runs (refused at once, naming the
  process), and a resume after the first was SIGKILLed with its lock file left behind;
- ``sigterm``: SIGTERM during collection: the run stops with the resume command;
- ``kill``: SIGKILL at a moment drawn uniformly over the uninterrupted run's duration, ``--kills`` times;
- ``rank``: under ``torchrun`` with 2 gloo ranks, one rank SIGKILLed and one SIGSTOPped, during
  collection and during the outer update (``trainer.collective_timeout=20``): the job stops within
  the bound, and ``--resume`` under the launcher ends equal to an uninterrupted 2-rank run.

Each row: the fault, its trials, how many resumed equal, rows lost, and whether the message named
the path, the error and the resume command (checked by pattern). The last line is the JSON of it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ["model.policy=tiny-random", "rounds=2", "edits_per_task=2", "domain.train_limit=2", "domain.eval_limit=2",
          "generator.max_new_tokens=8", "inner.epochs=1", "algorithm.min_reward=-1", "checkpoint=final"]
FAULTS = ("sites", "enospc", "readonly", "point", "line", "writer", "sigterm", "kill", "rank")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}


def args_for(run_dir: Path, *extra: str) -> list[str]:
    return ["run", "--run-dir", str(run_dir), *[a for s in (*CONFIG, *extra) for a in ("--set", s)]]


def start(args: list[str], launcher: list[str] | None = None, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "seal_core", *args] if not launcher else [*launcher, *args]
    return subprocess.Popen(cmd, env={**ENV, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, start_new_session=True)


def run(args: list[str], launcher: list[str] | None = None, timeout: float = 900,
        env: dict | None = None) -> subprocess.CompletedProcess:
    proc = start(args, launcher, env)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def outcome(run_dir: Path) -> dict:
    """What two runs of one config must share: rows, metrics without timings, the policy's weights."""
    policy = run_dir / "checkpoints" / "policy" / "model.safetensors"
    return {"rollouts": sorted(json.dumps(r, sort_keys=True) for r in rows(run_dir / "rollouts.jsonl")),
            "evaluations": sorted(json.dumps(r, sort_keys=True) for r in rows(run_dir / "evaluations.jsonl")),
            "metrics": [{k: v for k, v in m.items() if k not in ("seconds", "phase_seconds")}
                        for m in rows(run_dir / "metrics.jsonl")],
            "policy": hashlib.sha256(policy.read_bytes()).hexdigest() if policy.is_file() else None}


def compare(run_dir: Path, reference: dict) -> tuple[bool, int]:
    """(equal to the reference, rows lost: the reference's rows the run lacks)."""
    found = outcome(run_dir)
    lost = len(set(reference["rollouts"]) - set(found["rollouts"])) + len(
        set(reference["evaluations"]) - set(found["evaluations"]))
    return found == reference, lost


def names_everything(err: str, path_part: str, run_dir: Path) -> bool:
    """The message names the path, the error and the resume command; no traceback."""
    return (path_part in err and ("No space left" in err or "Read-only" in err)
            and f"seal-run run --resume {run_dir}" in err and "Traceback" not in err)


def wait_for(predicate, proc: subprocess.Popen | None = None, timeout: float = 300, poll: float = 0.05) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(poll)
    return False


def resume_and_compare(run_dir: Path, reference: dict, launcher: list[str] | None = None) -> tuple[bool, int]:
    done = run(["run", "--resume", str(run_dir)], launcher)
    if done.returncode != 0:
        return False, -1
    return compare(run_dir, reference)


class Table:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, fault: str, trials: int, equal: int, lost: int, named: str, note: str = "") -> None:
        self.rows.append({"fault": fault, "trials": trials, "resumed_equal": equal, "lost_rows": lost,
                          "message_names_path_error_resume": named, "note": note})
        print(f"{fault}: {equal}/{trials} resumed equal, {lost} rows lost, message {named}{'; ' + note if note else ''}",
              flush=True)

    def markdown(self) -> str:
        lines = ["| fault | trials | resumed equal | lost rows | message names path, error, resume command | note |",
                 "| --- | ---: | ---: | ---: | --- | --- |"]
        lines += [f"| {r['fault']} | {r['trials']} | {r['resumed_equal']} | {r['lost_rows']} | "
                  f"{r['message_names_path_error_resume']} | {r['note']} |" for r in self.rows]
        return "\n".join(lines)


def mount_tmpfs(target: Path, size: str, readonly: bool = False) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(target)], capture_output=True).returncode == 0


def unmount(target: Path) -> None:
    subprocess.run(["umount", str(target)], capture_output=True)


# -- the faults ----------------------------------------------------------------------------------

SIZES = ("8k", "40k", "200k", "4m", "14m", "24m", "34m", "48m")


def fault_enospc(work: Path, reference: dict, table: Table) -> None:
    trials = equal = lost = named = 0
    sites: set[str] = set()
    for size in SIZES:
        disk = work / f"disk-{size}"
        if not mount_tmpfs(disk, size):
            table.add("enospc", 0, 0, 0, "-", "skipped: mount -t tmpfs is not permitted here")
            return
        try:
            run_dir = disk / "run"
            done = run(args_for(run_dir))
            if done.returncode == 0:
                continue  # this size held the whole run
            trials += 1
            line = [x for x in done.stderr.splitlines() if x.startswith("seal-run: error:")]
            site = line[-1].split("Could not write ", 1)[-1].split(":", 1)[0] if line else "?"
            sites.add(Path(site).name if site != "?" else "?")
            named += done.returncode == 2 and names_everything(done.stderr, "Could not write", run_dir)
            kept = work / f"copied-{size}"
            shutil.copytree(run_dir, kept, dirs_exist_ok=True) if run_dir.exists() else kept.mkdir()
        finally:
            unmount(disk)
        if (kept / "config.yaml").is_file():
            same, gone = resume_and_compare(kept, reference)
            equal += same
            lost += max(gone, 0)
        else:  # refused before anything: the retry is a new run
            same = run(args_for(kept)).returncode == 0 and compare(kept, reference)[0]
            equal += same
    table.add("enospc", trials, equal, lost, f"{named}/{trials}", "sites: " + ", ".join(sorted(sites)))


def leftovers(run_dir: Path) -> list[Path]:
    """Temporary files or folders a failed write left (the lock file aside)."""
    return [p for p in run_dir.rglob(".*") if p.name != ".lock"] if run_dir.is_dir() else []


def fault_sites(work: Path, reference: dict, table: Table) -> None:
    trials = equal = lost = named = left = 0
    for n in range(1, 500):
        run_dir = work / f"site-{n}"
        done = run(args_for(run_dir), env={"SEAL_FAIL_WRITE": str(n)})
        if done.returncode == 0:
            break  # the run made fewer than n guarded writes: every site was tried
        trials += 1
        left += bool(leftovers(run_dir))
        before = {name: rows(run_dir / name) for name in ("rollouts.jsonl", "evaluations.jsonl")}
        if (run_dir / "config.yaml").is_file():
            named += done.returncode == 2 and names_everything(done.stderr, "Could not write", run_dir)
            same, gone = resume_and_compare(run_dir, reference)
        else:  # refused before the run existed: the same command again
            named += done.returncode == 2 and "Nothing has run yet" in done.stderr and "Traceback" not in done.stderr
            same, gone = run(args_for(run_dir)).returncode == 0 and compare(run_dir, reference)[0], 0
        kept = all(row in rows(run_dir / name) for name, found in before.items() for row in found)
        equal += same and kept
        lost += max(gone, 0) + (not kept)
    table.add("ENOSPC at each write site", trials, equal, lost, f"{named}/{trials}",
              f"temporary files left: {left}")


def fault_readonly(work: Path, reference: dict, table: Table) -> None:
    disk = work / "readonly"
    if not mount_tmpfs(disk, "1m", readonly=True):
        table.add("readonly", 0, 0, 0, "-", "skipped: mount -t tmpfs is not permitted here")
        return
    try:
        done = run(args_for(disk / "run"))
        refused = done.returncode == 2 and "Read-only" in done.stderr and "model loaded" not in done.stderr
        table.add("readonly", 1, int(refused), 0, f"{int(refused)}/1", "refused before any model loads")
    finally:
        unmount(disk)


def kill_when(proc: subprocess.Popen, predicate, sig: int = signal.SIGKILL, delay: float = 0.0) -> bool:
    hit = wait_for(predicate, proc)
    if hit:
        time.sleep(delay)
        os.killpg(proc.pid, sig)
    proc.wait(timeout=120)
    return hit


def fault_point(work: Path, reference: dict, table: Table) -> None:
    run_dir = work / "point"
    proc = start(args_for(run_dir))
    record = run_dir / "checkpoints" / "resume.json"
    kill_when(proc, lambda: record.is_file())
    for weights in (run_dir / "checkpoints").glob("resume-*.safetensors"):
        with open(weights, "r+b") as fh:
            fh.truncate(1000)
    done = run(["run", "--resume", str(run_dir)])
    same, gone = compare(run_dir, reference) if done.returncode == 0 else (False, -1)
    said = "resume point missing or damaged" in done.stderr
    table.add("corrupted resume point", 1, int(same), max(gone, 0), "n/a", f"fallback said: {said}")


def fault_line(work: Path, reference: dict, table: Table) -> None:
    run_dir = work / "line"
    proc = start(args_for(run_dir))
    path = run_dir / "rollouts.jsonl"
    kill_when(proc, lambda: sum(r.get("round") == 1 for r in rows(path)) >= 3)
    lines = path.read_text().splitlines(keepends=True)
    first_r1 = next(i for i, line in enumerate(lines) if json.loads(line)["round"] == 1)
    lines[first_r1 + 1] = '{"round": 1, "task_id": "dam\n'  # a damaged line amid round 1's rows
    path.write_text("".join(lines))
    same, gone = resume_and_compare(run_dir, reference)
    table.add("damaged line, unfinished round", 1, int(same), max(gone, 0), "n/a", "recomputed")
    finished = work / "line-finished"
    shutil.copytree(run_dir, finished)
    lines = (finished / "rollouts.jsonl").read_text().splitlines(keepends=True)
    lines[1] = "garbage\n"  # amid round 0's rows, a finished round
    (finished / "rollouts.jsonl").write_text("".join(lines))
    metrics = (finished / "metrics.jsonl").read_text().splitlines(keepends=True)
    (finished / "metrics.jsonl").write_text("".join(metrics[:1]))  # round 0 finished, round 1 not
    done = run(["run", "--resume", str(finished)])
    stopped = done.returncode == 2 and "line 2" in done.stderr and "Choices" in done.stderr and "Traceback" not in done.stderr
    table.add("damaged line, finished round", 1, 0, 0, f"{int(stopped)}/1 (names the line and the choices)",
              "stops: the line cannot be recomputed")


def fault_writer(work: Path, reference: dict, table: Table) -> None:
    run_dir = work / "writer"
    proc = start(args_for(run_dir))
    wait_for(lambda: len(rows(run_dir / "rollouts.jsonl")) >= 1, proc)
    second = run(["run", "--resume", str(run_dir)], timeout=120)
    refused = second.returncode == 2 and f"process {proc.pid}" in second.stderr
    proc.wait(timeout=600)
    same, gone = compare(run_dir, reference)
    table.add("second writer", 1, int(same and proc.returncode == 0), max(gone, 0), f"{int(refused)}/1 (names the process)")
    stale = work / "writer-killed"
    proc = start(args_for(stale))
    kill_when(proc, lambda: len(rows(stale / "rollouts.jsonl")) >= 1)
    left = (stale / ".lock").is_file()
    same, gone = resume_and_compare(stale, reference)
    table.add("lock left by a killed process", 1, int(same), max(gone, 0), "n/a", f"lock file left: {left}")


def fault_sigterm(work: Path, reference: dict, table: Table) -> None:
    run_dir = work / "sigterm"
    proc = start(args_for(run_dir))
    wait_for(lambda: len(rows(run_dir / "rollouts.jsonl")) >= 1, proc)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    said = proc.returncode == 130 and f"seal-run run --resume {run_dir}" in err
    same, gone = resume_and_compare(run_dir, reference)
    table.add("SIGTERM", 1, int(same), max(gone, 0), f"{int(said)}/1 (exit 130, the resume command)")


def fault_kill(work: Path, reference: dict, table: Table, kills: int, duration: float, seed: int) -> None:
    rng = random.Random(seed)
    equal = lost = 0
    for i in range(kills):
        run_dir = work / f"kill-{i}"
        proc = start(args_for(run_dir))
        moment = rng.uniform(0, duration)
        try:
            proc.wait(timeout=moment)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if not (run_dir / "config.yaml").is_file():  # killed before the directory held its config: a new run
            same, gone = run(args_for(run_dir)).returncode == 0 and compare(run_dir, reference)[0], 0
        else:
            same, gone = resume_and_compare(run_dir, reference)
        equal += same
        lost += max(gone, 0)
    table.add("SIGKILL at a random moment", kills, equal, lost, "n/a", f"moments uniform over {duration:.0f} s")


def rank_pids(launcher: subprocess.Popen) -> list[int]:
    """The worker processes torchrun started (its children running seal_core)."""
    out = subprocess.run(["pgrep", "-f", "-P", str(launcher.pid), "seal_core"], capture_output=True, text=True).stdout
    return sorted(int(p) for p in out.split())


def fault_rank(work: Path, table: Table) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "seal_core"]
    extra = ("trainer.collective_timeout=20", "trainer.deepspeed=zero2")
    reference_dir = work / "rank-reference"
    if run(args_for(reference_dir, *extra), launcher).returncode != 0:
        table.add("rank", 0, 0, 0, "-", "the 2-rank reference run failed")
        return
    reference = outcome(reference_dir)
    for sig, when in ((signal.SIGKILL, "collection"), (signal.SIGSTOP, "collection"), (signal.SIGKILL, "update"),
                      (signal.SIGSTOP, "update")):
        run_dir = work / f"rank-{sig.name}-{when}"
        proc = start(args_for(run_dir, *extra), launcher)
        if when == "collection":
            hit = wait_for(lambda: len(rows(run_dir / "rollouts.jsonl")) >= 1, proc)
        else:  # the outer update of round 0: after its last rollout
            hit = wait_for(lambda: len(rows(run_dir / "rollouts.jsonl")) >= 4, proc)
        began = time.time()
        pids = rank_pids(proc)
        if hit and pids:
            os.kill(pids[-1], sig)
        try:
            proc.wait(timeout=180)
            stopped = time.time() - began
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            stopped = None
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        same, gone = resume_and_compare(run_dir, reference, launcher)
        note = f"job stopped {stopped:.0f} s after the signal" if stopped is not None else "the job hung (killed at 180 s)"
        table.add(f"rank {sig.name} during {when}", 1, int(same), max(gone, 0), "n/a", note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated faults (default: all): {', '.join(FAULTS)}")
    parser.add_argument("--kills", type=int, default=20, help="random-moment SIGKILL trials")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    args = parser.parse_args()
    wanted = args.only.split(",") if args.only else list(FAULTS)
    table = Table()
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        work = Path(tmp)
        began = time.time()
        if run(args_for(work / "reference")).returncode != 0:
            raise SystemExit("the uninterrupted reference run failed")
        duration, reference = time.time() - began, outcome(work / "reference")
        for name in wanted:
            if name == "kill":
                fault_kill(work, reference, table, args.kills, duration, args.seed)
            elif name == "rank":
                fault_rank(work, table)
            else:
                globals()[f"fault_{name}"](work, reference, table)
    print("\n" + table.markdown())
    print(json.dumps(table.rows))


if __name__ == "__main__":
    main()
