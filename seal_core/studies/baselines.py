"""``seal-run baselines``: the paper's knowledge-incorporation table in one command.

    seal-run baselines --config configs/quickstart.yaml [--set KEY=VALUE]... \\
        [--edits-file FILE.json] [--seal-rounds N | --seal-run RUN_DIR] [--run-dir DIR | --name NAME]

Every row is scored on the same held-out passages (``domain.eval_limit`` of the eval split),
from the same config and seed, in the experiment the config chooses (``experiment=single``,
``cpt`` or ``continual``). Each variant is an ordinary run in its own directory under the output
directory (``seal-run run --config DIR/VARIANT/config.yaml`` repeats it):

| row | variant | how |
| --- | --- | --- |
| no adaptation | ``passage-only`` | its ``eval base`` (the student as loaded) |
| passage only | ``passage-only`` | generator ``empty``: the passage is the only training text |
| passage + own self-edits | ``self-edits`` | the config's generator, ``rounds=0`` (no RL); with ``--seal-rounds``, the ``seal`` run's round 0 (the same computation) |
| passage + edits from a file | ``from-file`` | generator ``from-file`` on ``--edits-file`` (e.g. GPT-4.1's) |
| SEAL after N rounds | ``seal`` | the config with ``rounds=N`` (``--seal-rounds``), or a finished run (``--seal-run``) |
| passage as lines (``--controls``) | ``passage-lines`` | generator ``passage-lines``: the passage's sentences one per line, trained like a self-edit's lines plus the passage |
| passage, repeated to the self-edit's steps (``--controls``) | ``passage-repeated`` | generator ``empty`` with ``match_steps`` on the own self-edits run: per passage, the passage alone for exactly the optimizer steps that row trained |

``--controls`` adds the two step-matched controls: a self-edit trains on a dozen lines for the
same epochs where the passage alone is one text, so part of its gain over "passage only" may be
more gradient steps on the same facts. Every row reports the optimizer steps and tokens its
inner loop counted (per passage, mean over the held-out passages).

The baselines use ``algorithm.name=none`` and ``rounds=0`` (no RL, nothing saved). The table,
with the paper's figures beside it, goes to ``baselines.md``. With ``--seeds`` every variant runs
at every seed (``DIR/VARIANT/seedS``): the table gives means over seeds, and a second table each
row's score with a 95% interval over seeds and passages and its paired difference from
``--against`` (default ``passage-only``; the rows are ``no-adaptation``, ``passage-only``, ``passage-lines``, ``passage-repeated``,
``self-edits``, ``from-file``, ``seal``), see :mod:`seal_core.studies.variants`.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from seal_core.loop.config import Config, load_raw, resolve
from seal_core.api.errors import SealError
from seal_core.runtime.files import atomic_write_text, read_jsonl
from seal_core.studies.variants import INTERVALS_NOTE, common_rounds, interval_table, rounds_logged, run_variants

#: the SEAL paper's SQuAD figures (Qwen2.5-7B, % of questions judged correct by GPT-4.1), per experiment:
#: no adaptation, passage only, passage + own synthetic, passage + GPT-4.1 synthetic, SEAL
PAPER = {
    "single": ("single passage, LoRA", [32.7, 33.5, 39.7, 46.3, 47.0]),
    "cpt": ("continued pretraining, n = 200, full fine-tuning", [32.7, 36.0, 50.6, 59.4, 58.2]),
}
ROWS = ["no adaptation", "passage only", "passage + own self-edits (no RL)", "passage + self-edits from file",
        "SEAL"]
#: the step-matched controls (``--controls``): variant -> row
CONTROLS = {"passage-lines": "control: passage as lines", "passage-repeated": "control: passage repeated to the self-edit's steps"}


#: where a control's ``match_steps`` points until :func:`point_controls` knows the output directory
UNPOINTED = "<the own self-edits run>"


def baseline_configs(config_file: str | None, overrides: list[str], registry: Any, edits_file: str | None,
                     seal_rounds: int | None, controls: bool = False) -> dict[str, Config]:
    """One validated config per variant, all checked before anything runs (the controls' step
    source is set by :func:`point_controls` once the output directory is known)."""
    base = load_raw(config_file, overrides)
    fixed = {"rounds": 0, "checkpoint": "none", "algorithm": {"name": "none"}}
    raws = {
        "passage-only": {**copy.deepcopy(base), **fixed, "generator": {"name": "empty"}},
    }
    if not seal_rounds:  # else the self-edits row is the seal run's round 0: the same seed, self-edits and adaptations
        raws["self-edits"] = {**copy.deepcopy(base), **fixed}
    if edits_file:
        raws["from-file"] = {**copy.deepcopy(base), **fixed, "generator": {"name": "from-file", "path": edits_file}}
    if seal_rounds:
        raws["seal"] = {**copy.deepcopy(base), "rounds": seal_rounds}
    if controls:  # after the run whose steps the repeated passage matches
        raws["passage-lines"] = {**copy.deepcopy(base), **fixed, "generator": {"name": "passage-lines"}}
        raws["passage-repeated"] = {**copy.deepcopy(base), **fixed, "generator": {"name": "empty"},
                                    "match_steps": UNPOINTED}
    return {name: resolve(raw, registry) for name, raw in raws.items()}


def point_controls(configs: dict[str, Config], out_dir: Path, seeds: list[int] | None) -> dict[str, Config]:
    """The repeated-passage control pointed at the own self-edits run under ``out_dir`` (at each
    seed: ``{seed}`` in the path)."""
    if "passage-repeated" not in configs:
        return configs
    own = "seal" if "seal" in configs else "self-edits"
    where = str(out_dir / own / ("seed{seed}" if seeds else ""))
    control = configs["passage-repeated"]
    configs = dict(configs)
    configs["passage-repeated"] = dataclasses.replace(control, run=dataclasses.replace(control.run, match_steps=where),
                                                      raw={**control.raw, "match_steps": where})
    return configs


def _eval_ids(run_dir: Path, rnd: int) -> list[str]:
    return [r["task_id"] for r in read_jsonl(run_dir / "evaluations.jsonl") if r["round"] == rnd]


def finished_seal_run(run_dir: Path) -> dict[str, Any]:
    """The last round of a finished run, for ``--seal-run``."""
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    if not metrics:
        raise SealError(f"--seal-run {run_dir}: no metrics.jsonl lines; pass the directory of a finished seal-run run.")
    return {"metrics": metrics, "run_dir": run_dir, "eval_ids": _eval_ids(run_dir, metrics[-1]["round"])}


def own_edits_variant(results: dict[str, dict[str, Any]]) -> str | None:
    """The variant whose round 0 is the "passage + own self-edits" row: ``self-edits`` (a run with
    ``rounds=0``), or with ``--seal-rounds`` the ``seal`` run, whose round 0 is the same computation
    (same seed, self-edits and adaptations); None when neither ran."""
    return next((name for name in ("self-edits", "seal") if name in results), None)


def _cells(metric: dict[str, Any] | None, prefix: str) -> list[str]:
    """score, F1, and (adapted rows) the inner loop's optimizer steps and tokens per passage."""
    if metric is None:
        return ["-"] * 4
    value, f1 = metric.get(f"eval_{prefix}"), metric.get(f"eval_{prefix}_f1")
    steps, tokens = (metric.get("eval_inner_steps"), metric.get("eval_inner_tokens")) if prefix == "adapted" else (0, 0)
    return [f"{value:.3f}" if value is not None else "-", f"{f1:.3f}" if f1 is not None else "-",
            f"{steps:.1f}" if steps is not None else "-", f"{tokens:.0f}" if tokens is not None else "-"]


def baselines_table(results: dict[str, dict[str, Any]], experiment: str, out_dir: Path,
                    seal: dict[str, Any] | None) -> tuple[str, list[str]]:
    """The Markdown table and its footnotes."""
    paper_title, paper = PAPER.get(experiment, ("", [None] * 5))
    first = lambda name: results[name]["metrics"][0] if name in results else None  # noqa: E731
    seal_metrics = seal["metrics"][-1] if seal else None
    own = own_edits_variant(results)
    dir_if_run = lambda name: out_dir / name if name in results else None  # noqa: E731
    where = {"passage-only": dir_if_run("passage-only"), "self-edits": dir_if_run(own) if own else None,
             "from-file": dir_if_run("from-file"), "seal": seal["run_dir"] if seal else None,
             "passage-lines": dir_if_run("passage-lines"), "passage-repeated": dir_if_run("passage-repeated")}
    rows = [("no adaptation", _cells(first("passage-only"), "base"), "passage-only"),
            ("passage only", _cells(first("passage-only"), "adapted"), "passage-only"),
            ("passage + own self-edits (no RL)", _cells(first(own), "adapted"), "self-edits"),
            ("passage + self-edits from file", _cells(first("from-file"), "adapted"), "from-file"),
            (f"SEAL after {seal_metrics['round']} round{'' if seal_metrics['round'] == 1 else 's'}" if seal_metrics else "SEAL", _cells(seal_metrics, "adapted"), "seal")]
    rows += [(label, _cells(first(name), "adapted"), name) for name, label in CONTROLS.items() if name in results]
    paper = [*paper, *[None] * (len(rows) - len(paper))]
    head = (f"| baseline | paper ({paper_title}) | score | F1 | steps | tokens | run |" if paper_title
            else "| baseline | score | F1 | steps | tokens | run |")
    lines = [head, "|---|" + "---:|" * (head.count("|") - 3) + "---|"]
    for (label, cells, variant), ref in zip(rows, paper):
        run = where[variant]
        run_cell = f"`{run}`" + (" (round 0)" if variant == "self-edits" and own == "seal" else "") if run is not None else "not run"
        paper_cell = [f"{ref:.1f}%" if ref is not None else "-"] if paper_title else []
        lines.append("| " + " | ".join([label, *paper_cell, *cells, run_cell]) + " |")
    notes = []
    if "from-file" not in results:
        notes.append("passage + self-edits from file: not run; pass --edits-file FILE.json (e.g. the paper's "
                     "GPT-4.1 data, ../shared/data/squad/gpt4_1_val_self_edits.json, with that file as domain.source).")
    if seal is None:
        notes.append("SEAL: not run; pass --seal-rounds N to run it, or --seal-run RUN_DIR for a finished run.")
    elif "passage-only" in results and seal["eval_ids"] != _eval_ids(next(iter(results["passage-only"]["runs"].values())), 0):
        notes.append(f"SEAL: {seal['run_dir']} was evaluated on other passages than the baselines; compare with care.")
    return "\n".join(lines), notes


def seed_intervals(results: dict[str, dict[str, Any]], against: str | list[str]) -> str:
    """The interval table of the rows every seed of which has run (empty with one seed)."""
    if max(len(r["runs"]) for r in results.values()) < 2:
        return ""
    rows = {}
    if "passage-only" in results:
        rows["no-adaptation"] = (results["passage-only"]["runs"], "score_before")
    rows |= {name: (r["runs"], "score_after") for name, r in results.items() if name != "seal"}
    if own_edits_variant(results) == "seal":
        rows["self-edits"] = (results["seal"]["runs"], "score_after", 0)
    if "seal" in results:
        rows["seal"] = (results["seal"]["runs"], "score_after")
    refs = [against] if isinstance(against, str) else list(against)
    text = (f"Each score above is the mean over {max(len(r['runs']) for r in results.values())} seeds. Over "
            f"seeds and passages:\n\n{interval_table(rows, [r for r in refs if r in rows])}\n\n{INTERVALS_NOTE}\n\n")
    reached = {s: rounds_logged(d) for s, d in results.get("seal", {}).get("runs", {}).items()}
    runs = {s: results["seal"]["runs"][s] for s, n in reached.items() if n == max(reached.values())}  # seeds at the last round
    seal_rounds = common_rounds(runs) if len(runs) > 1 else []
    if len(seal_rounds) > 1:
        by_round = {f"seal round {r}": (runs, "score_after", r) for r in seal_rounds}
        others = [r for r in refs if r in rows]
        text += (f"SEAL round by round (round 0: its own self-edits before any RL update), each against its round 0"
                 f"{''.join(' and ' + r for r in others)}:\n\n"
                 f"{interval_table({**by_round, **{a: rows[a] for a in others}}, ['seal round 0', *others])}\n\n")
    return text


def write_baselines(out_dir: Path, results: dict[str, dict[str, Any]], config: Config, seal: dict[str, Any] | None,
                    argv: str, against: str | list[str] = "passage-only") -> str:
    table, notes = baselines_table(results, config.run.experiment, out_dir, seal)
    intervals = seed_intervals(results, against)
    commands = [f"seal-run {argv}"] + [f"seal-run run --config {out_dir / name}/config.yaml  # {name}" for name in results]
    text = (
        f"# Knowledge-incorporation baselines · {config.components['domain']} · {config.model.policy or config.model.teacher} · "
        f"experiment={config.run.experiment}\n\n{table}\n\n"
        "score: the evaluator's score on the held-out passages (`domain.eval_limit` of them), the "
        "same passages in every row; F1: SQuAD token F1 where the evaluator reports it; steps and tokens: "
        "the optimizer steps and the tokens under the loss the inner loop counted per passage (mean over "
        "passages and seeds). The paper "
        "column is the SEAL paper's SQuAD result on Qwen2.5-7B, graded by GPT-4.1: a reference "
        "point, not a like-for-like comparison.\n\n"
        + "".join(f"- {n}\n" for n in notes) + ("\n" if notes else "") + intervals
        + "Commands (each variant's config.yaml repeats that row exactly):\n\n```bash\n" + "\n".join(commands) + "\n```\n"
    )
    atomic_write_text(out_dir / "baselines.md", text)
    return table + (f"\n\n{intervals.strip()}" if intervals else "")


def run_baselines(configs: dict[str, Config], registry: Any, out_dir: Path, stop: Any,
                  seal_run: Path | None, argv: str, seeds: list[int] | None = None,
                  against: str | list[str] = "passage-only") -> str:
    """Run every variant (at every seed) under ``out_dir`` and write ``baselines.md``; return the table."""
    first = next(iter(configs.values()))
    seal_holder: dict[str, Any] = {"seal": finished_seal_run(seal_run) if seal_run else None}

    def on_result(results: dict[str, dict[str, Any]]) -> None:
        if "seal" in results:
            seal_dir = next(iter(results["seal"]["runs"].values()))
            seal_holder["seal"] = {"metrics": results["seal"]["metrics"], "run_dir": seal_dir.parent if seeds else seal_dir,
                                   "eval_ids": _eval_ids(seal_dir, results["seal"]["metrics"][-1]["round"])}
        write_baselines(out_dir, results, first, seal_holder["seal"], argv, against)

    results = run_variants(configs, registry, out_dir, stop, on_result, seeds)
    return write_baselines(out_dir, results, first, seal_holder["seal"], argv, against)
