"""One SEAL round, timed phase by phase: where a round's time goes, and how many self-edits it scores
per minute.

    .venv/bin/python benchmarks/round.py                          # make run's config (configs/quickstart.yaml)
    .venv/bin/python benchmarks/round.py --set generator.batch_size=1   # one passage per generate call
    .venv/bin/python benchmarks/round.py --model random:qwen2.5-0.5b --device cuda   # on a GPU

Runs rounds 0 and 1 of the config through the engine, as ``seal-run run`` does, into a temporary
run directory (``--run-dir`` keeps it), and stops after round 1. Round 0 warms up (compilation,
caches, the first adapter injection); round 1 is the measured round. Each phase's seconds are the
engine's own (``phase_seconds`` in the metrics line; ``phase finished`` in log.jsonl):

    eval_edits   held-out greedy self-edits        train_edits  sampled self-edits (+ their log-probs)
    eval_base    the student's held-out scores     train_base   the student's scores on the training tasks
    eval_adapt   held-out adapt + score            train_adapt  inner updates and scoring of the rollouts
    update       the RL update                     checkpoint   the resume point (and policy) saved

Prints a table of seconds and shares for round 1 (and round 0, the first round), then as its last
line one JSON object: ``rollouts_per_minute`` (self-edits scored in round 1, sampled and held-out,
per minute of its wall time), ``round_seconds``, ``phases`` (round 1's seconds per phase),
``first_round_seconds`` and ``first_round_phases`` (round 0's: the difference to round 1 is
compilation and warm-up), ``scored``, and with ``--against RUN_DIR`` (a directory an earlier
``--run-dir`` kept) ``identical_greedy_edits``: the share of round 0's held-out self-edits equal
to that run's (the same initial policy wrote both, so only the generation path differs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from seal_core import hookimpl  # noqa: E402
from seal_core.loop import engine  # noqa: E402
from seal_core.runtime.files import read_jsonl  # noqa: E402

PHASES = getattr(engine, "PHASES", ())  # an engine before phase timing (a checkout to compare) reports none

MEASURED = 1  # the round reported: the first one after round 0's warm-up


class StopAfter:
    """A plugin that asks the run to stop once round ``MEASURED`` has finished."""

    def __init__(self, stop):
        self.stop = stop

    @hookimpl
    def seal_round_finished(self, round):
        if round >= MEASURED:
            self.stop.requested = True


def run_rounds(args: argparse.Namespace, run_dir: Path) -> list[dict]:
    """Rounds 0 and 1 of the configured run into ``run_dir``; their metrics lines."""
    from seal_core.hooks.registry import Registry
    from seal_core.loop.config import load_raw, resolve
    from seal_core.loop.experiments import make_engine
    from seal_core.loop.workbench import Workbench
    from seal_core.runs.store import RunStore
    from seal_core.runtime import logs
    from seal_core.runtime.interrupt import Interrupted, StopFlag

    overrides = [*args.set, f"rounds={max(MEASURED + 1, 2)}"]
    overrides += [f"model.policy={args.model}"] if args.model else []
    overrides += [f"model.device={args.device}"] if args.device else []
    registry = Registry(args.plugins)
    config = resolve(load_raw(args.config, overrides), registry)
    stop = StopFlag()
    registry.pm.register(StopAfter(stop), name="round-benchmark")
    workbench = Workbench(config, registry)
    workbench.load_tasks()
    store = RunStore.create(run_dir, config.to_yaml())
    logs.configure(store.log_path)
    try:
        make_engine(workbench, store, stop, command="benchmarks/round.py").run()
    except Interrupted:
        pass  # stopped after the measured round, as asked
    finally:
        logs.configure()
    return store.metrics()


def identical_greedy_edits(run_dir: Path, other: Path) -> dict:
    """Round 0's held-out self-edits of two runs of the same config: how many are the same."""
    mine = {r["task_id"]: r["edit"] for r in read_jsonl(run_dir / "evaluations.jsonl") if r["round"] == 0}
    theirs = {r["task_id"]: r["edit"] for r in read_jsonl(other / "evaluations.jsonl") if r["round"] == 0}
    common = sorted(set(mine) & set(theirs))
    same = sum(mine[t] == theirs[t] for t in common)
    return {"same": same, "of": len(common), "share": same / len(common) if common else None}


def table(metrics: dict, scored: int) -> str:
    phases = metrics.get("phase_seconds", {})
    total = metrics["seconds"]
    lines = [f"round {metrics['round']}: {total:.1f} s, {scored} self-edits scored", "",
             "| phase | seconds | share |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {phases[name]:.1f} | {phases[name] / total:.0%} |" for name in PHASES if name in phases]
    rest = total - sum(phases.values())
    lines.append(f"| (between phases) | {rest:.1f} | {rest / total:.0%} |")
    return "\n".join(lines)


def cpu_name() -> str:
    try:
        names = [l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                 if l.startswith("model name")]
        return names[0] if names else platform.processor()
    except OSError:
        return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"), help="the run's config (default: make run's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    parser.add_argument("--model", help="model.policy, e.g. embedded, tiny-random, random:qwen2.5-0.5b")
    parser.add_argument("--device", help="model.device: cpu, cuda, auto")
    parser.add_argument("--plugins", action="append", default=[], metavar="X", help="extra plugin (repeatable)")
    parser.add_argument("--run-dir", help="keep the run here (default: a temporary directory)")
    parser.add_argument("--against", metavar="RUN_DIR", help="a kept run of the same config: report the share of "
                        "round 0's held-out self-edits that are identical")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="round-bench-") as tmp:
        run_dir = Path(args.run_dir) if args.run_dir else Path(tmp) / "run"
        started = time.perf_counter()
        metrics = run_rounds(args, run_dir)
        wall = time.perf_counter() - started
        if len(metrics) <= MEASURED:
            raise SystemExit(f"round {MEASURED} did not finish; see {run_dir / 'log.jsonl'}")
        measured, first = metrics[MEASURED], metrics[0]
        rows = read_jsonl(run_dir / "rollouts.jsonl") + read_jsonl(run_dir / "evaluations.jsonl")
        scored_in = {rnd: sum(1 for r in rows if r["round"] == rnd) for rnd in (0, MEASURED)}
        scored = scored_in[MEASURED]
        result = {
            "rollouts_per_minute": round(scored / (measured["seconds"] / 60), 2),
            "round_seconds": measured["seconds"], "phases": measured.get("phase_seconds", {}), "scored": scored,
            "first_round_seconds": first["seconds"], "first_round_phases": first.get("phase_seconds", {}),
            "eval_adapted": measured.get("eval_adapted"), "wall_seconds": round(wall, 1),
            "config": args.config, "set": args.set, "model": args.model, "device": args.device, "cpu": cpu_name(),
        }
        if args.against:
            result["identical_greedy_edits"] = identical_greedy_edits(run_dir, Path(args.against))
        print(table(first, scored_in[0]) + "\n\n" + table(measured, scored))
        print(json.dumps(result))


if __name__ == "__main__":
    main()
