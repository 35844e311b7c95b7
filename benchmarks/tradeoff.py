"""Score against compute for the inner loop's settings: one ``inner_loop.py`` path run at several
epoch counts, learning rates and adaptive-stop thresholds, each over several seeds, then the mean
score (with a 95% interval over seeds) against seconds per self-edit, beside the reference
pattern's bar, as a table, a plot and one JSON line.

    .venv/bin/python benchmarks/tradeoff.py --data bundled --seeds 0,1,2 \\
        --reference benchmarks/results/2026-11-27-seed-spread/seed_spread_2026-11-27.txt \\
        --plot tradeoff_bundled.png

A *setting* is a list of ``inner_loop.py`` arguments; the defaults are epochs 1, 2, 3, 5 and 10 at
the reference learning rate, 10 epochs at half and twice that rate, and 10 epochs with
``stop_loss`` 0.05 and 0.2 (adaptive training: an adapter leaves the pack after the first epoch
whose mean loss is below the threshold). ``--settings`` replaces them (``;``-separated, each a
space-separated argument list). Every finished run is appended to ``--log`` (JSON lines) and a
rerun skips the (setting, seed) pairs found there, so a stopped sweep resumes. Rows are matched
by the setting's text, which means the defaults of the day it ran: spell out an option whose
default changed (``--inner lr_schedule=constant`` for runs before 2026-12-05). Seconds per
self-edit are only comparable within one quiet machine: run it alone.

The reference pattern's bar: its scores pooled from ``--reference`` files (seed_spread.py
outputs) and from ``--reference-seeds``, which runs the ``reference`` path at its own
hyperparameters (10 epochs) in this sweep. With ``--reference-seeds`` the bar's seconds per
self-edit come from those runs only, so every speedup is a ratio measured on one machine in one
sitting, unless the log already held them: then they are the earlier sweep's, and the printed bar
says so (use a new ``--log`` for a same-sitting ratio). A seed run here replaces the same seed
read from a file.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from seal_core.studies.intervals import t_interval  # noqa: E402
from seed_spread import seed_results  # noqa: E402

DEFAULT_SETTINGS = ["--epochs 1", "--epochs 2", "--epochs 3", "--epochs 5", "--epochs 10",
                    "--epochs 10 --inner learning_rate=5e-4", "--epochs 10 --inner learning_rate=2e-3",
                    "--epochs 10 --inner stop_loss=0.05", "--epochs 10 --inner stop_loss=0.2"]


REFERENCE_SETTING = "--epochs 10"  # the reference pattern at the SEAL code's hyperparameters


def finished(log: Path) -> dict[tuple[str, str, int], dict]:
    """(path, setting, seed) -> its inner_loop.py result, from an earlier sweep's log."""
    out = {}
    if log.is_file():
        for line in log.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                out[(row["path"], row["setting"], row["seed"])] = row
    return out


def run_one(setting: str, seed: int, path: str, common: list[str]) -> dict:
    """One inner_loop.py run of ``path`` with ``setting`` at ``seed``: its final JSON line."""
    cmd = [sys.executable, str(HERE / "inner_loop.py"), "--paths", path, *common, *shlex.split(setting), "--seed", str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"inner_loop.py failed for setting {setting!r} at seed {seed} (exit {proc.returncode})")
    result = json.loads(lines[-1])
    return {"setting": setting, "seed": seed, "path": path, "mean_score": result["mean_score"][path],
            "mean_dense": result["mean_dense"][path], "seconds_per_edit": result["seconds_per_edit"][path],
            "train_seconds": result["train_seconds"][path], "scores": result["scores"][path],
            "ceiling_share": result.get("ceiling_share", {}).get(path), "matmul_gflops": result["matmul_gflops"]}


def reference_bar(files: list[Path] | None, swept: list[dict], timed_now: list[int], log: Path,
                  path: str = "reference") -> dict | None:
    """The reference pattern's mean score and 95% interval over seeds, from seed_spread.py outputs
    and this sweep's reference runs (``swept``, which win for a seed found in both), and its s/edit:
    from ``swept`` when there are any (measured beside the settings), else from the files. A swept
    run is timed now only if its seed is in ``timed_now``; the others were read from ``log``, an
    earlier sweep's (a speedup is a same-sitting ratio only when all were timed now)."""
    runs = [run for file in files or [] for run in seed_results(file).values()]
    from_files = {r["seed"]: (r["mean_score"][path], r["seconds_per_edit"][path]) for r in runs if path in r["mean_score"]}
    here = {r["seed"]: (r["mean_score"], r["seconds_per_edit"]) for r in swept}
    scores = {**from_files, **here}
    if not scores:
        return None
    mean, half = t_interval([score for score, _ in scores.values()])
    timed = here or from_files
    if not here:
        measured = "read from the files"
    elif len(timed_now) == len(here):
        measured = "in this sweep"
    elif timed_now:
        measured = f"timed now for seeds {timed_now}, read from {log.name} for the rest"
    else:
        measured = f"read from {log.name} (an earlier sweep)"
    return {"mean": mean, "ci95": half, "seeds": sorted(scores), "timed_seeds": sorted(timed),
            "seconds_measured": measured, "seconds_per_edit": statistics.fmean(seconds for _, seconds in timed.values())}


def summarise(rows: list[dict], settings: list[str], bar: dict | None) -> dict:
    table = {}
    for setting in settings:
        mine = [r for r in rows if r["setting"] == setting]
        if not mine:
            continue
        mean, half = t_interval([r["mean_score"] for r in mine])
        dense, dense_half = t_interval([r["mean_dense"] for r in mine])
        shares = [r["ceiling_share"] for r in mine if r.get("ceiling_share") is not None]
        table[setting] = {"mean": mean, "ci95": half, "answer_logprob": dense, "answer_logprob_ci95": dense_half,
                          "seeds": [r["seed"] for r in mine],
                          "seconds_per_edit": statistics.fmean(r["seconds_per_edit"] for r in mine),
                          "ceiling_share": statistics.fmean(shares) if shares else None}
        if bar is not None:
            # the definition of equal scores: the mean lies within the reference's interval
            table[setting]["scores_equal"] = abs(mean - bar["mean"]) <= bar["ci95"]
            table[setting]["speedup_vs_reference"] = bar["seconds_per_edit"] / table[setting]["seconds_per_edit"]
    return table


def plot(table: dict, bar: dict | None, path: str, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for setting, row in table.items():
        ax.errorbar(row["seconds_per_edit"], row["mean"], yerr=row["ci95"], fmt="o", capsize=3)
        ax.annotate(setting.replace("--inner ", "").replace("--epochs ", "ep "), (row["seconds_per_edit"], row["mean"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=7)
    if bar is not None:
        ax.axhspan(bar["mean"] - bar["ci95"], bar["mean"] + bar["ci95"], color="grey", alpha=0.2,
                   label=f"reference pattern ({bar['seconds_per_edit']:.1f} s/edit), 95% interval")
        ax.axhline(bar["mean"], color="grey")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("seconds per self-edit (training + scoring)")
    ax.set_ylabel("mean held-out containment")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--path", default="multi-lora-k8-fp32", help="the inner_loop.py path swept")
    parser.add_argument("--data", choices=["auto", "bundled"], default="bundled")
    parser.add_argument("--settings", help="';'-separated inner_loop.py argument lists (default: see the docstring)")
    parser.add_argument("--reference", type=Path, nargs="+",
                        help="seed_spread.py outputs holding the reference path's runs (pooled over their seeds)")
    parser.add_argument("--reference-seeds", default="",
                        help="run the reference path (10 epochs) at these seeds in this sweep, e.g. 5 or 5,6,7: "
                             "the bar's s/edit is then measured here, beside the settings")
    parser.add_argument("--log", type=Path, help="JSON lines of finished runs (default: tradeoff_<data>.jsonl here)")
    parser.add_argument("--plot", type=Path, help="where to write the plot (PNG)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = [s.strip() for s in args.settings.split(";")] if args.settings else DEFAULT_SETTINGS
    log = args.log or HERE / f"tradeoff_{args.data}.jsonl"
    done = finished(log)
    runs = [("reference", REFERENCE_SETTING, int(s)) for s in args.reference_seeds.split(",") if s.strip()]
    runs += [(args.path, setting, seed) for setting in settings for seed in seeds]
    rows, swept_reference, reference_ran = [], [], []
    for path, setting, seed in runs:
        row = done.get((path, setting, seed))
        if row is None:
            row = run_one(setting, seed, path, ["--data", args.data])
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")
            reference_ran += [seed] if path == "reference" else []
        (swept_reference if path == "reference" else rows).append(row)
        share = f", {row['ceiling_share']:.0%} of the matmul ceiling" if row.get("ceiling_share") is not None else ""
        print(f"{path + ' ' + setting:>50} seed {seed}: score {row['mean_score']:.3f}, answer log-prob "
              f"{row['mean_dense']:.3f}, {row['seconds_per_edit']:.1f} s/edit{share}", flush=True)
    bar = reference_bar(args.reference, swept_reference, reference_ran, log)
    table = summarise(rows, settings, bar)
    print(f"\n{args.path} on {args.data} passages, {len(seeds)} seeds; mean score ± 95% t-interval over seeds")
    if bar is not None:
        print(f"{'reference pattern':>40}: {bar['mean']:.3f} ± {bar['ci95']:.3f} ({len(bar['seeds'])} seeds)   "
              f"{bar['seconds_per_edit']:.1f} s/edit ({bar['seconds_measured']}, seeds {bar['timed_seeds']})")
    for setting, row in table.items():
        extra = (f"   {row['speedup_vs_reference']:.2f}x   scores_equal {row['scores_equal']}" if bar is not None else "")
        share = f"   {row['ceiling_share']:.0%} of ceiling" if row["ceiling_share"] is not None else ""
        print(f"{setting:>40}: {row['mean']:.3f} ± {row['ci95']:.3f}   log-prob {row['answer_logprob']:.2f} ± "
              f"{row['answer_logprob_ci95']:.2f}   {row['seconds_per_edit']:.1f} s/edit{extra}{share}")
    if args.plot:
        plot(table, bar, args.path, args.plot, f"{args.path}, {args.data} passages, {len(seeds)} seeds")
    print(json.dumps({"path": args.path, "data": args.data, "seeds": seeds, "reference": bar, "settings": table}))


if __name__ == "__main__":
    main()
