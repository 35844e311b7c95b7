"""benchmarks/seed_spread.py --pool: per-seed results of earlier outputs pooled into one table."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "seed_spread.py"


def output(path: Path, runs: dict[int, dict[str, float]]) -> Path:
    """A seed_spread.py output: a progress line and an inner_loop.py result line per seed."""
    lines = []
    for seed, means in runs.items():
        lines.append(f"seed {seed}: ...")
        lines.append(json.dumps({"seed": seed, "source": "bundled passages", "epochs": 10, "mean_score": means,
                                 "seconds_per_edit": {p: 10.0 for p in means}, "scores": {p: [m] * 8 for p, m in means.items()}}))
    path.write_text("\n".join(lines) + "\n")
    return path


def pool(*files: Path, seeds: str | None = None) -> tuple[dict, str]:
    cmd = [sys.executable, str(SCRIPT), "--pool", *map(str, files)] + (["--seeds", seeds] if seeds else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout


def test_pooled_seeds_give_the_paired_difference_over_all_of_them(tmp_path):
    first = output(tmp_path / "a.txt", {0: {"reference": 0.6, "k8": 0.5, "lora": 0.4}, 1: {"reference": 0.5, "k8": 0.5, "lora": 0.5}})
    later = output(tmp_path / "b.txt", {2: {"reference": 0.7, "k8": 0.4}, 3: {"reference": 0.4, "k8": 0.4}})
    table, text = pool(first, later)
    assert table["seeds"] == [0, 1, 2, 3]
    assert set(table["paths"]) == {"reference", "k8"}  # lora is not measured at seeds 2 and 3
    assert "left out (not measured at every pooled seed): lora" in text
    assert abs(table["paths"]["k8"]["minus_reference"] - (-0.1 + 0.0 - 0.3 + 0.0) / 4) < 1e-9
    assert table["paths"]["k8"]["per_seed"] == [0.5, 0.5, 0.4, 0.4]


def test_a_later_file_adds_paths_to_a_seed_and_seeds_narrow_the_pool(tmp_path):
    first = output(tmp_path / "a.txt", {0: {"reference": 0.6}, 1: {"reference": 0.5}})
    later = output(tmp_path / "b.txt", {0: {"k8": 0.2}, 1: {"k8": 0.3}})
    table, _ = pool(first, later, seeds="1")
    assert table["seeds"] == [1]
    assert table["paths"]["k8"]["per_seed"] == [0.3] and table["paths"]["reference"]["per_seed"] == [0.5]


def test_reuse_joins_every_per_path_key_and_the_printed_line_pools_alone(tmp_path, monkeypatch, capsys):
    """--reuse: a path measured earlier at a seed joins the new run with all its per-path keys
    (the answer log-prob too), and the line printed for the seed carries it, so the output pools
    without the file it reused."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import seed_spread

    earlier = tmp_path / "old.txt"
    lines = []
    for seed, mean in ((3, 0.6), (4, 0.4)):
        lines += [f"seed {seed}: ...", json.dumps({"seed": seed, "mean_score": {"reference": mean}, "seconds_per_edit": {"reference": 30.0},
                                                   "scores": {"reference": [mean] * 8}, "mean_dense": {"reference": -5.5}})]
    earlier.write_text("\n".join(lines) + "\n")

    def inner_loop(cmd, **_):
        seed = int(cmd[-1])
        fresh = {"seed": seed, "source": "bundled passages", "epochs": 10, "mean_score": {"k8": 0.5},
                 "seconds_per_edit": {"k8": 4.0}, "scores": {"k8": [0.5] * 8}, "mean_dense": {"k8": -5.0}}
        return subprocess.CompletedProcess(cmd, 0, stdout=json.dumps(fresh) + "\n", stderr="")

    monkeypatch.setattr(seed_spread.subprocess, "run", inner_loop)
    runs = seed_spread.run_seeds([3, 4], earlier, [])
    assert runs[0]["mean_score"] == {"k8": 0.5, "reference": 0.6}
    assert runs[1]["mean_dense"] == {"k8": -5.0, "reference": -5.5}
    monkeypatch.undo()  # seed_spread.subprocess is the subprocess module pool() runs the script with
    (tmp_path / "new.txt").write_text(capsys.readouterr().out)
    table, _ = pool(tmp_path / "new.txt")
    assert table["paths"]["k8"]["per_seed"] == [0.5, 0.5] and table["paths"]["reference"]["per_seed"] == [0.6, 0.4]
    assert abs(table["paths"]["k8"]["answer_logprob"] - (-5.0)) < 1e-9
