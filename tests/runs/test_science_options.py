"""The options of the "is it the self-edit or the extra steps?" experiment, end to end on
tiny-random: rewards over several inner runs, sampled held-out self-edits, the collapse metrics of
every round, the step-matched controls of ``seal-run baselines``, ReST^EM from the base weights."""

from __future__ import annotations

import pytest

from seal_core.evaluation.collapse import collapse_summary
from seal_core.models.loading import load_model, weights_sha
from tiny import rows


def test_rewards_over_inner_runs_and_sampled_held_out_edits(tiny_run):
    run = tiny_run("inner_runs=3", "eval_samples=2", "edits_per_task=2", "inner.max_adapters=4")
    rollouts = rows(run / "rollouts.jsonl")
    assert len(rollouts) == 4  # 2 tasks x 2 edits, each scored over 3 runs (packs of 4 adapters)
    for r in rollouts:
        runs = r["details"]["inner_runs"]
        assert len(runs) == 3
        assert r["score_after"] == pytest.approx(sum(runs) / 3)
        assert r["reward"] == pytest.approx(sum(runs) / 3 - r["score_before"])
        assert r["details"]["inner_steps"] >= 1 and r["details"]["inner_tokens"] >= 1
    evaluations = rows(run / "evaluations.jsonl")
    for e in evaluations:
        assert len(e["sampled_edits"]) == len(e["sampled_scores"]) == 2
        assert e["sampled_score_after"] == pytest.approx(sum(e["sampled_scores"]) / 2)
        assert "inner_runs" not in e["details"]  # eval_inner_runs defaults to 1
    metrics = rows(run / "metrics.jsonl")
    for m in metrics:
        chosen = [e for e in evaluations if e["round"] == m["round"]]
        assert m["eval_sampled"] == pytest.approx(sum(e["sampled_score_after"] for e in chosen) / len(chosen))


def test_every_round_logs_the_collapse_metrics_of_its_edits(tiny_run, registry):
    run = tiny_run("rounds=2", "algorithm.min_reward=-1")
    metrics, evaluations, rollouts = rows(run / "metrics.jsonl"), rows(run / "evaluations.jsonl"), rows(run / "rollouts.jsonl")
    tokenizer = load_model("tiny-random").tokenizer
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    from seal_core.loop.config import load_raw, resolve
    from seal_core.loop.workbench import Workbench
    from tiny import TINY

    train, evals = Workbench(resolve(load_raw(None, list(TINY)), registry), registry).load_tasks()
    passage = {t.id: t.context for t in [*train, *evals]}
    for m in metrics:
        greedy = [(passage[e["task_id"]], [e["edit"]]) for e in evaluations if e["round"] == m["round"]]
        assert {k: m[k] for k in collapse_summary(greedy, count, "collapse_greedy")} == pytest.approx(
            collapse_summary(greedy, count, "collapse_greedy"))
        sampled = {}
        for r in rollouts:
            if r["round"] == m["round"]:
                sampled.setdefault(r["task_id"], []).append(r["edit"])
        if m["round"] < 2:  # the last round writes no training self-edits
            expected = collapse_summary([(passage[t], e) for t, e in sampled.items()], count, "collapse_sampled")
            assert {k: m[k] for k in expected} == pytest.approx(expected)
            assert m["collapse_sampled_edits"] == 4
        assert m["collapse_greedy_edits"] == 1
    assert "greedy sim." in (run / "results.md").read_text()


def test_step_matched_controls_train_the_stated_steps(tiny_run):
    out = tiny_run("rounds=0", "domain.eval_limit=2", "inner.epochs=2", "generator.max_new_tokens=24",
                   command="baselines", name="b", extra=("--controls",))
    own = {e["task_id"]: e for e in rows(out / "self-edits" / "evaluations.jsonl")}
    repeated = {e["task_id"]: e for e in rows(out / "passage-repeated" / "evaluations.jsonl")}
    lines = {e["task_id"]: e for e in rows(out / "passage-lines" / "evaluations.jsonl")}
    only = {e["task_id"]: e for e in rows(out / "passage-only" / "evaluations.jsonl")}
    assert set(own) == set(repeated) == set(lines) and len(own) == 2
    for task, row in own.items():
        assert repeated[task]["inner_steps"] == row["inner_steps"]  # the passage alone, for the self-edit's steps
        assert repeated[task]["edit"] == "" and only[task]["inner_steps"] == 2  # passage only: 1 text x 2 epochs
        # the passage's tokens each step: the repeated control's tokens are its steps x one passage's
        assert repeated[task]["inner_tokens"] == row["inner_steps"] * only[task]["inner_tokens"] / 2
        assert lines[task]["edit"].count("\n") >= 1  # the passage's sentences, one per line
        assert lines[task]["inner_steps"] == 2  # trained like a self-edit: its lines plus the passage, 2 epochs, batch 8
    table = (out / "baselines.md").read_text()
    assert "| control: passage as lines |" in table and "| control: passage repeated to the self-edit's steps |" in table
    assert f"match_steps: {out / 'self-edits'}" in (out / "passage-repeated" / "config.yaml").read_text()


def test_restart_from_base_starts_every_round_from_the_initial_weights(tiny_run, monkeypatch):
    from seal_plugins.rest_em import RestEM

    started: list[str] = []
    original = RestEM._sft

    def spy(self, work, kept, context):
        started.append(weights_sha(work.model))
        return original(self, work, kept, context)

    monkeypatch.setattr(RestEM, "_sft", spy)
    initial = weights_sha(load_model("tiny-random").model)
    run = tiny_run("rounds=3", "algorithm.min_reward=-1", "algorithm.restart_from_base=true", name="from-base")
    shas = [m["generator_sha"] for m in rows(run / "metrics.jsonl")]
    assert shas[0] == initial and all(sha != initial for sha in shas[1:])  # each round's policy is updated
    assert started == [initial] * 3  # yet every round's M-step starts from the initial weights
    started.clear()
    run = tiny_run("rounds=2", "algorithm.min_reward=-1", name="continued")
    shas = [m["generator_sha"] for m in rows(run / "metrics.jsonl")]
    assert started == [initial, shas[1]] and shas[1] != initial  # the default continues from the last round


def test_passage_lines_puts_each_sentence_on_its_own_line():
    from seal_plugins.passage_lines import sentence_lines

    text = 'The ship sailed in 1802. It was named "Aster." Why?  Nobody knows! Dr. Ames met J. R. Holt. End'
    assert sentence_lines(text).splitlines() == ["The ship sailed in 1802.", 'It was named "Aster."', "Why?",
                                                 "Nobody knows!", "Dr. Ames met J. R. Holt.", "End"]
    # a full stop inside a sentence (a decimal, a lower-case word after it) ends nothing
    assert sentence_lines("It cost 3.5 crowns. approx. twice the fare.") == "It cost 3.5 crowns. approx. twice the fare."


def test_held_out_options_are_refused_where_no_passage_is_adapted_alone(registry):
    from seal_core.api.errors import ConfigError
    from seal_core.loop.config import load_raw, resolve

    for key, off in (("eval_samples=2", "eval_samples=0"), ("eval_inner_runs=3", "eval_inner_runs=1"),
                     ("match_steps=runs/x", "match_steps=null")):
        with pytest.raises(ConfigError, match=f"--set {off}"):
            resolve(load_raw(None, ["experiment=cpt", key]), registry)
        assert resolve(load_raw(None, ["experiment=cpt", key, off]), registry).run.experiment == "cpt"
    assert resolve(load_raw(None, ["eval_samples=2", "inner_runs=3"]), registry).run.eval_samples == 2


def test_held_out_rows_keep_the_greedy_edit_first_whatever_order_the_edits_finish(tiny_run, monkeypatch):
    """multi-lora's batches are filled longest training first, so a task's sampled self-edits can
    finish before its greedy one: the row is the same as when the greedy one finishes first."""
    from seal_core.loop.scoring import Scorer

    overrides = ("eval_samples=2", "rounds=1", "inner.max_adapters=2")
    as_usual = rows(tiny_run(*overrides, name="usual") / "evaluations.jsonl")
    ordered = Scorer.longest_first
    monkeypatch.setattr(Scorer, "longest_first", lambda self, datas: ordered(self, datas)[::-1])
    reversed_ = rows(tiny_run(*overrides, name="reversed") / "evaluations.jsonl")
    keys = ("round", "task_id", "edit", "score_after", "sampled_edits", "sampled_scores")
    assert [{k: e[k] for k in keys} for e in reversed_] == [{k: e[k] for k in keys} for e in as_usual]
    assert any(e["edit"] not in e["sampled_edits"] for e in as_usual)  # the greedy edit is told apart
