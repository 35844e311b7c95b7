"""The spread of the inner loop's scores over data orders: ``inner_loop.py`` once per seed, then each
path's mean score with a 95% interval over seeds, and each path's paired difference from a
reference path (same seed, same passages) with its interval.

    .venv/bin/python benchmarks/seed_spread.py --seeds 0,1,2,3,4 --data bundled \\
        --paths reference,lora,multi-lora-k8-fp32        # ~10 min per seed on a 2-core CPU

Every other option goes to ``inner_loop.py`` unchanged. A seed changes each self-edit's data order
(the order of its texts in each epoch), the reference Trainer's seed, and (with
``adapter_init: per-edit``, the default) each edit's initial LoRA A. The interval is Student's t
over the per-seed means (the seeds are the replicates); it does not cover the sampling of
passages and questions, which stay fixed. Each seed's full JSON line is kept in the output, and
the last line printed is one JSON object with the table. ``scores_equal`` (per path): its mean
score lies within the reference's 95% interval over the seeds (the issue's definition of equal
scores); ``paired_interval_contains_0`` is the stricter paired check. ``--reuse`` takes the
per-seed results of paths not run now from an earlier output (same workload, same seeds).
``--pool`` runs nothing: it pools the per-seed results of earlier outputs (a seed found in several
files takes each path from the last file that has it) and prints the table over the seeds that
have every path pooled (``--seeds`` narrows them):

    .venv/bin/python benchmarks/seed_spread.py --pool \\
        benchmarks/results/2026-11-28-fresh-seeds/seed_spread_fresh_seeds_2026-11-28.txt \\
        benchmarks/results/2026-12-05-seed-spread-16-seeds/seed_spread_seeds8-15_2026-12-05.txt
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from seal_core.studies.intervals import t_interval as interval  # noqa: E402  (mean, half-width of the 95% t-interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", help="comma-separated run seeds (default: 0,1,2,3,4; with --pool: every seed found)")
    parser.add_argument("--against", default="reference", help="the path the paired differences are taken from")
    parser.add_argument("--reuse", type=Path, help="an earlier output of this script: its per-seed results of paths "
                                                    "not run now join the table (e.g. --paths lora --reuse old.txt "
                                                    "compares a changed lora with the reference measured then)")
    parser.add_argument("--pool", type=Path, nargs="+", metavar="OUTPUT",
                        help="run nothing: pool the per-seed results of these earlier outputs and print the table")
    args, rest = parser.parse_known_args()
    wanted = None if args.seeds is None else [int(s) for s in args.seeds.split(",")]
    runs = pooled(args.pool, wanted) if args.pool else run_seeds(wanted or [0, 1, 2, 3, 4], args.reuse, rest)
    summarise(runs, args.against)


PER_PATH = ("mean_score", "seconds_per_edit", "scores", "mean_dense")  # the per-path keys of a seed's result


def join_paths(run: dict, other: dict, paths: set[str] | None = None) -> None:
    """Copy ``other``'s per-path results (every key of PER_PATH) into ``run``, all of its paths or
    only ``paths``; a path already in ``run`` is overwritten."""
    for key in PER_PATH:
        for path, value in other.get(key, {}).items():
            if paths is None or path in paths:
                run.setdefault(key, {})[path] = value


def seed_results(output: Path) -> dict[int, dict]:
    """{seed: inner_loop.py result} from an output of this script."""
    results = {}
    for line in output.read_text().splitlines():
        if line.startswith("{") and '"seed"' in line and '"mean_score"' in line:
            run = json.loads(line)
            results[run["seed"]] = run
    return results


def pooled(outputs: list[Path], wanted: list[int] | None) -> list[dict]:
    """The per-seed results of earlier outputs, merged per seed (the last file with a path wins),
    restricted to the seeds that have every path found (and to ``wanted``)."""
    merged: dict[int, dict] = {}
    for output in outputs:
        for seed, run in seed_results(output).items():
            if seed not in merged:
                merged[seed] = run  # parsed afresh from its file: nothing else holds it
                continue
            join_paths(merged[seed], run)
    if wanted is not None:
        missing = sorted(set(wanted) - set(merged))
        if missing:
            raise SystemExit(f"--seeds {missing} are in none of the --pool outputs ({', '.join(map(str, outputs))})")
        merged = {seed: merged[seed] for seed in wanted}
    if not merged:
        raise SystemExit(f"no per-seed results in {', '.join(map(str, outputs))}: pass outputs of seed_spread.py")
    every = set.intersection(*(set(r["mean_score"]) for r in merged.values()))
    left_out = sorted(set.union(*(set(r["mean_score"]) for r in merged.values())) - every)
    if left_out:
        print(f"left out (not measured at every pooled seed): {', '.join(left_out)}", flush=True)
    for run in merged.values():
        for key in PER_PATH:
            run[key] = {p: v for p, v in run.get(key, {}).items() if p in every}
        print(f"seed {run['seed']}: " + ", ".join(f"{p} {v:.3f}" for p, v in run["mean_score"].items()), flush=True)
    return [merged[seed] for seed in sorted(merged)]


def run_seeds(seeds: list[int], reuse: Path | None, rest: list[str]) -> list[dict]:
    """inner_loop.py once per seed (each seed's line printed as it finishes)."""
    earlier = seed_results(reuse) if reuse else {}
    runs = []
    for seed in seeds:
        proc = subprocess.run([sys.executable, str(HERE / "inner_loop.py"), *rest, "--seed", str(seed)],
                              capture_output=True, text=True)
        lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
        if proc.returncode or not lines:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
            raise SystemExit(f"inner_loop.py failed at seed {seed} (exit {proc.returncode})")
        run = json.loads(lines[-1])
        if seed in earlier:  # paths measured earlier at this seed and not now
            join_paths(run, earlier[seed], set(earlier[seed]["mean_score"]) - set(run["mean_score"]))
        runs.append(run)
        print(f"seed {seed}: " + ", ".join(f"{p} {v:.3f}" for p, v in run["mean_score"].items()), flush=True)
        print(json.dumps(run), flush=True)  # with the reused paths, so this output pools on its own
    return runs


def summarise(runs: list[dict], against: str) -> None:
    """Print each path's mean with its interval over the seeds and its paired difference from
    ``against``, then the same as one JSON line."""
    seeds = [r["seed"] for r in runs]
    paths = list(runs[0]["mean_score"])
    passages = len(runs[0]["scores"][paths[0]])  # one score per passage: the mean over its questions
    table = {}
    for path in paths:
        mean, half = interval([r["mean_score"][path] for r in runs])
        row = {"mean": mean, "ci95": half, "per_seed": [r["mean_score"][path] for r in runs],
               "seconds_per_edit": statistics.fmean(r["seconds_per_edit"][path] for r in runs)}
        if any(r.get("mean_dense", {}).get(path) is not None for r in runs):
            dense = [r["mean_dense"][path] for r in runs if r.get("mean_dense", {}).get(path) is not None]
            row["answer_logprob"], row["answer_logprob_ci95"] = interval(dense)
        if against in paths and path != against:
            diff, dhalf = interval([r["mean_score"][path] - r["mean_score"][against] for r in runs])
            ref_mean, ref_half = interval([r["mean_score"][against] for r in runs])
            # scores_equal: this path's mean lies within the reference's 95% interval over seeds
            row |= {f"minus_{against}": diff, f"minus_{against}_ci95": dhalf,
                    "scores_equal": abs(mean - ref_mean) <= ref_half,
                    "paired_interval_contains_0": abs(diff) <= dhalf}
        table[path] = row
    print(f"\n{len(seeds)} seeds x {passages} passages ({runs[0]['source']}), {runs[0]['epochs']} epochs; "
          f"mean score with 95% t-interval over seeds; paired difference from {against}:")
    for path, row in table.items():
        diff = (f"   {row[f'minus_{against}']:+.3f} ± {row[f'minus_{against}_ci95']:.3f}"
                if f"minus_{against}" in row else "")
        equal = f"   scores_equal {row['scores_equal']}" if "scores_equal" in row else ""
        print(f"{path:>22}: {row['mean']:.3f} ± {row['ci95']:.3f}{diff}   ({row['seconds_per_edit']:.1f} s/edit){equal}")
    print(json.dumps({"seeds": seeds, "passages": passages, "source": runs[0]["source"], "epochs": runs[0]["epochs"],
                      "against": against, "paths": table}))


if __name__ == "__main__":
    main()
