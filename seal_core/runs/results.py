"""A run's round metrics from its rows (held-out evaluations, training rollouts), and results.md
and plot.png from the metrics lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seal_core.evaluation.collapse import PREFIXES
from seal_core.runtime.files import atomic_write_text, save_figure

COLUMNS = [
    ("round", "round"),
    ("eval_base", "eval base"),
    ("eval_adapted", "eval adapted"),
    ("eval_sampled", "eval sampled"),
    ("eval_adapted_f1", "adapted F1"),
    ("train_reward_mean", "train reward"),
    ("train_score_after_mean", "train adapted"),
    ("n_kept", "kept edits"),
    ("collapse_greedy_similarity", "greedy sim."),
    ("collapse_sampled_distinct_2", "sampled distinct-2"),
    ("generator_sha", "generator"),
    ("seconds", "seconds"),
]


def _cell(value: Any, key: str = "") -> str:
    if value is None:
        return "-"
    if key == "seconds":
        return f"{value:.0f}"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3f}"
    return str(value)


def shown(key: str, metrics: list[dict[str, Any]]) -> bool:
    """Whether the table and the plot show ``key``: always, except ``eval_sampled``, which only
    runs that score sampled held-out self-edits (``eval_samples`` > 0) have."""
    return key != "eval_sampled" or any(m.get(key) is not None for m in metrics)


def results_table(metrics: list[dict[str, Any]]) -> str:
    """A Markdown table, one row per round; ``eval sampled`` only for runs that score sampled
    self-edits on the held-out set (``eval_samples`` > 0)."""
    columns = [(key, title) for key, title in COLUMNS if shown(key, metrics)]
    head = "| " + " | ".join(title for _, title in columns) + " |"
    rule = "|" + "|".join("---:" for _ in columns) + "|"
    rows = ["| " + " | ".join(_cell(m.get(key), key) for key, _ in columns) + " |" for m in metrics]
    return "\n".join([head, rule, *rows])


def write_results(run_dir: Path, metrics: list[dict[str, Any]], title: str) -> str:
    """Write results.md and plot.png; return the table."""
    table = results_table(metrics)
    text = (
        f"# {title}\n\n{table}\n\n"
        "eval base: held-out score of the student without adaptation. eval adapted: after "
        "training on a greedy self-edit of the current policy (eval sampled, when the run scores them: "
        "the mean over sampled self-edits, the distribution RL trains). train reward: mean improvement "
        "of the sampled self-edits over the student (what the RL algorithm learns from). "
        "greedy sim.: mean character similarity of the greedy self-edits to their passages (1 = a "
        "copy), sampled distinct-2: the share of unique word bigrams among a passage's sampled "
        "self-edits (low = the samples repeat each other); both signs of collapse. "
        "Round 0 is before any RL update.\n\n![eval scores per round](plot.png)\n"
    )
    atomic_write_text(run_dir / "results.md", text)
    write_plot(run_dir / "plot.png", metrics, title)
    return table


#: the collapse metrics write_plot draws in its right panel: (metric key, label)
COLLAPSE_LINES = [(f"{prefix}_{key}", f"{prefix.removeprefix('collapse_')} {label}")
                  for key, label in (("similarity", "similarity to passage"), ("distinct_2", "distinct-2"))
                  for prefix in PREFIXES]


def write_plot(path: Path, metrics: list[dict[str, Any]], title: str) -> None:
    """plot.png: the held-out scores with and without adaptation, per round; when the metrics
    carry collapse metrics, a right panel with the self-edits' similarity and distinct-2."""
    lines = {label: [(m["round"], m.get(key)) for m in metrics]
             for key, label in (("eval_adapted", "adapted (greedy self-edit)"), ("eval_base", "no adaptation"),
                                ("eval_sampled", "adapted (mean of sampled self-edits)"))
             if shown(key, metrics)}
    collapse = {label: [(m["round"], m.get(key)) for m in metrics] for key, label in COLLAPSE_LINES
                if any(m.get(key) is not None for m in metrics)}
    if not collapse:  # runs from before the collapse metrics
        plot_rounds(path, lines, title, "held-out score")
        return
    fig, (left, right) = _figure(2)
    draw_rounds(left, lines, title, "held-out score")
    draw_rounds(right, collapse, "collapse of the self-edits", "similarity / distinct-2")
    right.set_ylim(0, 1)
    fig.tight_layout()
    save_figure(fig, path)


def _figure(panels: int) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, panels, figsize=(6 * panels, 4), dpi=100)


def plot_rounds(path: Path, lines: dict[str, list[tuple[int, Any]]], title: str, ylabel: str,
                intervals: dict[str, list[tuple[int, float, float]]] | None = None) -> None:
    """A PNG with one line per label of (round, value) points, written through a rename;
    ``intervals`` adds error bars, (round, low, high) per label."""
    fig, ax = _figure(1)
    draw_rounds(ax, lines, title, ylabel, intervals)
    fig.tight_layout()
    save_figure(fig, path)


def draw_rounds(ax: Any, lines: dict[str, list[tuple[int, Any]]], title: str, ylabel: str,
                intervals: dict[str, list[tuple[int, float, float]]] | None = None) -> None:
    """:func:`plot_rounds` onto the matplotlib axes ``ax``."""
    for label, points in lines.items():
        (line,) = ax.plot([r for r, _ in points], [v for _, v in points], marker="o", label=label)
        values = dict(points)
        bars = [(r, lo, hi) for r, lo, hi in (intervals or {}).get(label, []) if values.get(r) is not None]
        if bars:
            ax.errorbar([r for r, _, _ in bars], [values[r] for r, _, _ in bars], capsize=3, fmt="none",
                        ecolor=line.get_color(), yerr=[[values[r] - lo for r, lo, _ in bars],
                                                      [hi - values[r] for r, _, hi in bars]])
    ax.set_xlabel("round (0 = before any RL update)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.set_xticks(sorted({r for points in lines.values() for r, _ in points}))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def eval_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The metrics of a round's held-out evaluation rows (one per task, in task order)."""
    return {
        "eval_base": _mean([r["score_before"] for r in rows]),
        "eval_adapted": _mean([r["score_after"] for r in rows]),
        "eval_base_f1": _mean([r["details_before"]["f1"] for r in rows if "f1" in r["details_before"]]),
        "eval_adapted_f1": _mean([r["details"]["f1"] for r in rows if "f1" in r["details"]]),
        "eval_rejected": _mean([float(bool(r.get("reason"))) for r in rows]),
        "eval_tasks": len(rows),
        # the mean over eval_samples sampled self-edits per task, where the run scores them
        "eval_sampled": _mean([r["sampled_score_after"] for r in rows if "sampled_score_after" in r]),
        # what the inner loop trained on per task (optimizer steps, tokens under the loss), where it counts
        "eval_inner_steps": _mean([r["inner_steps"] for r in rows if "inner_steps" in r]),
        "eval_inner_tokens": _mean([r["inner_tokens"] for r in rows if "inner_tokens" in r]),
    }


def train_summary(rollouts: list[Any]) -> dict[str, Any]:
    """The metrics of a round's training rollouts (:class:`seal_core.api.types.Rollout`)."""
    return {
        "train_inner_steps": _mean([r.details["inner_steps"] for r in rollouts if "inner_steps" in r.details]),
        "train_reward_mean": _mean([r.reward for r in rollouts]),
        "train_score_after_mean": _mean([r.score_after for r in rollouts]),
        "train_rejected": _mean([float("reason" in r.details) for r in rollouts]),
    }
