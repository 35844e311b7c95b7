"""Reward over several inner runs (``inner_runs``): R inner seeds per self-edit, R differently
trained adapters, the mean as the score, runs packed into the updater's batches."""

from __future__ import annotations

import pytest
import torch

from seal_core.api.components import Evaluator
from seal_core.api.types import EditItem, Score
from seal_core.loop.config import load_raw, resolve
from seal_core.loop.scoring import Scorer
from seal_core.loop.workbench import Workbench
from seal_core.models.loading import load_model
from seal_core.runtime.interrupt import StopFlag

EDITS = ["The bell is named Old Margery.\nThe well is 31 metres deep.", "Doors are plum.\nGeese: Ada, Bea and Cy."]


class LogitEvaluator(Evaluator):
    """A score that moves with every weight: one logit of the adapted model on a fixed text (tiny
    random models answer no question, so a QA score would be 0 in every run)."""

    name = "logit"

    def score(self, model, tokenizer, task):
        enc = tokenizer(["The bell of Thrushby"], return_tensors="pt")
        with torch.no_grad():
            return float(model(**enc).logits[0, -1, :8].sum())

    def evaluate_routed(self, model, tokenizer, tasks, route):
        return None  # one adapter at a time, through batch.use


def scorer(registry, *overrides: str) -> Scorer:
    raw = load_raw(None, ["model.policy=tiny-random", "inner.epochs=2", "inner.r=8", "inner.learning_rate=0.05",
                          *overrides])
    return Scorer(LogitEvaluator(), Workbench(resolve(raw, registry), registry), StopFlag())


def spy_batches(monkeypatch, updater) -> list[dict]:
    """Each adapt_batch call: its seeds and each slot's trained lora_B of the first layer."""
    calls: list[dict] = []
    original = updater.adapt_batch

    def adapt_batch(student, datas, seeds):
        batch = original(student, datas, seeds)
        layer = student.model._seal_inner.state.layers[0]
        calls.append({"seeds": list(seeds), "lora_b": [layer.lora_B[j].clone() for j in range(len(datas))]})
        return batch

    monkeypatch.setattr(updater, "adapt_batch", adapt_batch)
    return calls


def test_runs_train_with_distinct_seeds_and_the_score_is_their_mean(registry, fresh_tiny, monkeypatch):
    one = scorer(registry, "inner.max_adapters=8")
    items = [EditItem(task, i, edit) for i, (task, edit) in enumerate(zip(one.workbench.load_tasks()[0], EDITS))]
    calls = spy_batches(monkeypatch, one.updater)
    scored = list(one.score_edits(0, items, fresh_tiny, runs=3))
    assert len(calls) == 1 and len(calls[0]["seeds"]) == 6  # 2 edits x 3 runs in one batch of 8
    seeds = calls[0]["seeds"]
    for n, item in enumerate(items):
        mine = seeds[3 * n:3 * n + 3]
        assert len(set(mine)) == 3  # R distinct inner seeds
        assert mine == [one.inner_seed(0, item, run) for run in range(3)]
        assert mine[0] == one.inner_seed(0, item)  # run 0 is the one-run seed: R = 1 scores as before
        adapters = calls[0]["lora_b"][3 * n:3 * n + 3]
        assert all(not torch.equal(adapters[a], adapters[b]) for a, b in ((0, 1), (0, 2), (1, 2)))
    for got in scored:
        runs = got.score.details["inner_runs"]
        assert len(runs) == 3 and len(set(runs)) == 3
        assert got.score.value == pytest.approx((runs[0] + runs[1] + runs[2]) / 3, abs=1e-9)  # the mean, by hand
        assert got.trained["steps"] == 2  # 2 epochs of one step (3 texts, batch 8), counted in every run
        assert got.trained["tokens"] > 0
    # each run's score is that run trained alone, with its own seed
    for n, item in enumerate(items):
        for run in range(3):
            (alone,) = one.score_batch(0, [(item, run)], fresh_tiny)
            assert alone.score.value == pytest.approx(scored[n].score.details["inner_runs"][run], rel=1e-4, abs=1e-4)


def test_runs_beyond_max_adapters_train_in_several_packs(registry, fresh_tiny, monkeypatch):
    small = scorer(registry, "inner.max_adapters=2")
    items = [EditItem(task, i, edit) for i, (task, edit) in enumerate(zip(small.workbench.load_tasks()[0], EDITS))]
    calls = spy_batches(monkeypatch, small.updater)
    scored = list(small.score_edits(0, items, fresh_tiny, runs=3))
    assert [len(c["seeds"]) for c in calls] == [2, 2, 2]  # 6 runs in packs of 2
    packed = [seed for c in calls for seed in c["seeds"]]
    assert packed == [small.inner_seed(0, item, run) for item in items for run in range(3)]
    wide = scorer(registry, "inner.max_adapters=8")
    together = list(wide.score_edits(0, items, load_model("tiny-random"), runs=3))  # a model of its own: K differs
    for a, b in zip(scored, together, strict=True):  # the packing does not change the scores
        assert a.score.details["inner_runs"] == pytest.approx(b.score.details["inner_runs"], rel=1e-4, abs=1e-4)


def test_one_run_keeps_the_score_as_it_was(registry, fresh_tiny):
    one = scorer(registry, "inner.max_adapters=8")
    item = EditItem(one.workbench.load_tasks()[0][0], 0, EDITS[0])
    (single,) = one.score_edits(0, [item], fresh_tiny)
    assert "inner_runs" not in single.score.details and isinstance(single.score, Score)
    (first,) = one.score_batch(0, [(item, 0)], fresh_tiny)
    assert single.score.value == pytest.approx(first.score.value, abs=1e-6)


def test_sequential_updater_counts_its_steps_and_tokens(registry, fresh_tiny):
    lora = scorer(registry, "inner.name=lora", "inner.batch_size=1")
    item = EditItem(lora.workbench.load_tasks()[0][0], 0, EDITS[0])
    (got,) = lora.score_edits(0, [item], fresh_tiny, runs=2)
    data = lora.workbench.training_set(item.task, item.edit)
    assert got.trained["steps"] == 2 * len(data.examples)  # 2 epochs, batch 1
    tokens = sum(len(fresh_tiny.tokenizer(t + fresh_tiny.tokenizer.eos_token, add_special_tokens=False)["input_ids"]) - 1
                 for t in data.texts)
    assert got.trained["tokens"] == 2 * tokens  # every token but the first is predicted, each epoch
    assert len(got.score.details["inner_runs"]) == 2


def test_batches_are_filled_longest_training_first(registry, fresh_tiny, monkeypatch):
    """multi-lora gets the (item, run) pairs ordered by planned steps, so a batch trains for
    similar step counts; the scores are each item's own, whatever batch it lands in."""
    small = scorer(registry, "inner.max_adapters=2", "inner.batch_size=1", "inner.learning_rate=0.01")
    tasks = small.workbench.load_tasks()[0]
    edits = ["One line.", "First line.\nSecond line.\nThird line.\nFourth line.", "One.\nTwo."]
    items = [EditItem(tasks[i % len(tasks)], i, edit) for i, edit in enumerate(edits)]
    steps = [small.updater.planned_steps(small.workbench.training_set(item.task, item.edit)) for item in items]
    assert len(set(steps)) == 3  # three different lengths
    datas, _ = small.workbench.training_sets([(item.task, item.edit) for item in items])
    assert small.longest_first(datas) == sorted(range(3), key=lambda i: -steps[i])
    calls = spy_batches(monkeypatch, small.updater)
    scored = list(small.score_edits(0, items, fresh_tiny, runs=2))
    packed = [seed for c in calls for seed in c["seeds"]]
    longest = sorted(items, key=lambda item: -steps[item.index])
    assert packed == [small.inner_seed(0, item, run) for item in longest for run in range(2)]
    assert [s.item for s in scored] == longest  # yielded in the order they were trained
    for got in scored:  # each run's score is that run trained alone
        alone = [small.score_batch(0, [(got.item, run)], fresh_tiny)[0].score.value for run in range(2)]
        assert got.score.details["inner_runs"] == pytest.approx(alone, rel=1e-4, abs=1e-4)
