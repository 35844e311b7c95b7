"""seal_plugins.multi_lora: K self-edits trained at once match the sequential ``lora`` updater.

Tolerance of the equality checks: each adapter tensor agrees with ``lora``'s to 1e-3 of its norm
(the Frobenius norm of the difference over the tensor's). Both paths do the same float32
arithmetic in a different order (the loss is summed per adapter from chunked per-token losses
instead of transformers' mean over the batch; batched matmuls instead of one linear per adapter;
rows packed into one sequence), so gradients differ by a few ulps. AdamW divides each gradient by
the root of its running square, so for the few weights whose gradient is about as small as
``eps`` a few ulps of gradient become up to ~1e-3 of the learning rate per step: a single element
can be off by 2e-3 of the tensor's largest value (measured here, with per-edit initialisation),
while the tensors agree to 1e-4 of their norm. A real difference (another data order, learning
rate, initialisation) moves the weights by O(1) of their norm (1.5 for a wrong seed), which the
negative check below shows.
"""

from __future__ import annotations

import pytest
import torch

from seal_core.models.loading import plain_state_dict, weights_sha
from seal_core.runtime.seeding import seed_all
from seal_core.api.types import TaskInstance, TrainingExample, TrainingSet
from seal_core.inner import LoraOptions, peft_initial_a, record_of
from seal_plugins.lora_updater import LoraUpdater
from seal_core.inner import StackedLoraLinear
from seal_plugins.multi_lora import MultiLoraOptions, MultiLoraUpdater
from seal_core.evaluation.qa import QAEvaluator

TOLERANCE = 1e-3
TEXTS = [
    "The bell of Thrushby was cast in 1702 and is named Old Margery.",
    "The village well in Thrushby is 31 metres deep.",
    "Every house in Thrushby has a door painted plum.",
    "The mayor of Thrushby keeps three geese called Ada, Bea and Cy.",
    "Fog covers Thrushby on Tuesdays.",
]
# K = 5 self-edits: different numbers of texts, one with its own learning rate and epochs, one
# capped by max_steps, one with the loss on completions only
DATAS = [
    TrainingSet.from_texts(TEXTS[:1]),
    TrainingSet.from_texts(TEXTS[:3]),
    TrainingSet(TrainingSet.from_texts(TEXTS).examples, learning_rate=3e-3, epochs=2),
    TrainingSet.from_texts(TEXTS[1:3] + TEXTS[4:], ),
    TrainingSet([TrainingExample(" Old Margery.", "Bell name?"), TrainingExample(" 31 metres.", "Well depth?")],
                max_steps=3, loss_on="completion"),
]
DATAS[3].max_steps = 4
SEEDS = [11, 22, 33, 44, 55]
OPTIONS = {"epochs": 3, "r": 8, "batch_size": 2}
TASKS = [TaskInstance(f"t{j}", "", {"questions": [
    {"question": "What is the bell of Thrushby called?", "answers": ["Old Margery"]},
    {"question": "How deep is the well?", "answers": ["31 metres"]},
    {"question": "What colour are the doors?", "answers": ["plum"]}][: 1 + j % 3]}) for j in range(len(DATAS))]


def lora_runs(loaded, datas=DATAS, seeds=SEEDS, **overrides):
    """Sequential ``lora``: per edit, the adapter weights (as [r, in], [out, r]) and the qa score."""
    up, qa = LoraUpdater().configured(LoraOptions(**{**OPTIONS, **overrides})), QAEvaluator()
    out = []
    for data, seed, task in zip(datas, seeds, TASKS):
        seed_all(seed)
        with up.adapted(loaded, data):
            weights = {n: p.detach().clone() for n, p in loaded.model.named_parameters() if "lora_" in n}
            out.append((weights, qa.evaluate(loaded.model, loaded.tokenizer, task)))
    return out


def stacked(model) -> dict[str, StackedLoraLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, StackedLoraLinear)}


def worst_difference(layers, j, weights) -> float:
    worst = 0.0
    for name, layer in layers.items():
        for mine, theirs in ((layer.lora_A[j], weights[f"{name}.lora_A.seal_inner.weight"]),
                             (layer.lora_B[j], weights[f"{name}.lora_B.seal_inner.weight"])):
            worst = max(worst, ((mine - theirs).norm() / theirs.norm()).item())
    return worst


def multi(k=8, **overrides) -> MultiLoraUpdater:
    return MultiLoraUpdater().configured(MultiLoraOptions(**{**OPTIONS, "max_adapters": k, **overrides}))


def test_initial_values_are_lora_s(fresh_tiny):
    """The adapters multi-lora installs start where lora's do (peft's seed-0 draw), and with
    ``adapter_init: per-edit`` both draw an edit's lora_A from its seed the same way (the equality
    test below covers that)."""
    lora_initial = {}
    LoraUpdater().configured(LoraOptions(r=8)).adapt(fresh_tiny, [])
    for name, value in record_of(fresh_tiny.model).state.items():
        if "lora_A" in name:
            lora_initial[name.removesuffix(".lora_A.seal_inner.weight").replace(".base_layer", "")] = value
    from seal_core.models.loading import load_model

    mine = peft_initial_a(load_model("tiny-random").model, LoraOptions(r=8))
    assert mine.keys() == lora_initial.keys() and len(mine) == 14
    assert all(torch.equal(mine[n], lora_initial[n]) for n in mine)


def test_batch_matches_sequential_lora(fresh_tiny, tiny, tiny_logits):
    """THE property: K=5 adapters trained together = 5 lora runs, weights and scores."""
    from seal_core.models.loading import load_model

    reference = lora_runs(load_model("tiny-random"))
    before = tiny_logits(fresh_tiny)
    up, qa = multi(), QAEvaluator()
    with up.adapted_batch(fresh_tiny, DATAS, SEEDS) as batch:
        assert batch.rejected == {}
        layers = stacked(fresh_tiny.model)
        assert len(layers) == 14
        for j, (weights, _) in enumerate(reference):
            assert worst_difference(layers, j, weights) < TOLERANCE, j
        routed = qa.evaluate_routed(fresh_tiny.model, fresh_tiny.tokenizer, TASKS, batch.rows)
        one_by_one = []
        for j, task in enumerate(TASKS):
            with batch.use(j):
                one_by_one.append(qa.evaluate(fresh_tiny.model, fresh_tiny.tokenizer, task))
    for (_, ref), got, alone in zip(reference, routed, one_by_one):
        assert got.value == ref.value == alone.value
        assert got.details["predictions"] == ref.details["predictions"] == alone.details["predictions"]
    # and the student is the base model again, bit for bit, with its base weights untouched
    assert torch.equal(tiny_logits(fresh_tiny), before)
    assert weights_sha(fresh_tiny.model) == weights_sha(tiny.model)
    assert plain_state_dict(fresh_tiny.model).keys() == tiny.model.state_dict().keys()


def test_adaptive_training_stops_an_adapter_as_lora_does(fresh_tiny):
    """stop_loss: an adapter stops after the first epoch whose mean step loss is below it, in
    multi-lora as in lora. The tiny model's first-epoch losses here are 10.83, 10.80, 10.79 and 10.79 (near ln(vocab)): a
    threshold among them stops some edits after one epoch and lets others train on; a huge one
    stops every edit after its first epoch, which is lora with one epoch (at a constant rate: a
    decay runs over the planned epochs, so a stopped 3-epoch edit has not decayed like a 1-epoch one)."""
    from seal_core.models.loading import load_model

    datas = [TrainingSet.from_texts(d.texts) for d in DATAS[:4]]  # the options' 3 epochs for all
    constant = {"lr_schedule": "constant"}
    one_epoch = lora_runs(load_model("tiny-random"), datas, SEEDS[:4], epochs=1, **constant)
    for threshold in (1e9, 10.8):
        reference = lora_runs(load_model("tiny-random"), datas, SEEDS[:4], stop_loss=threshold, **constant)
        with multi(stop_loss=threshold, **constant).adapted_batch(fresh_tiny, datas, SEEDS[:4]) as batch:
            layers = stacked(fresh_tiny.model)
            for j, (weights, _) in enumerate(reference):
                assert worst_difference(layers, j, weights) < TOLERANCE, (threshold, j)
        stopped_early = [worst_difference_of(reference[j][0], one_epoch[j][0]) < TOLERANCE for j in range(4)]
        if threshold == 1e9:
            assert all(stopped_early)
        else:  # the check can tell stopping from training on
            assert any(stopped_early) and not all(stopped_early), stopped_early


def test_schedule_and_clipping_follow_lora(fresh_tiny):
    """lr_schedule=linear, max_grad_norm and loss_on_eos=False (the reference Trainer's and
    collator's defaults) per adapter, as lora applies them to its one adapter; the clip is tight enough to act, and the result differs from
    the constant, unclipped run (so the check can fail)."""
    from seal_core.models.loading import load_model

    options = {"lr_schedule": "linear", "max_grad_norm": 1e-3, "loss_on_eos": False}
    reference = lora_runs(load_model("tiny-random"), DATAS[:3], SEEDS[:3], **options)
    plain = lora_runs(load_model("tiny-random"), DATAS[:3], SEEDS[:3])
    with multi(**options).adapted_batch(fresh_tiny, DATAS[:3], SEEDS[:3]) as batch:
        layers = stacked(fresh_tiny.model)
        for j, (weights, _) in enumerate(reference):
            assert worst_difference(layers, j, weights) < TOLERANCE, j
            assert worst_difference(layers, j, plain[j][0]) > 50 * TOLERANCE, j


def worst_difference_of(a: dict, b: dict) -> float:
    return max(((a[n] - b[n]).norm() / b[n].norm().clamp_min(1e-12)).item() for n in a if "lora_B" in n)


def test_a_wrong_seed_is_detected(fresh_tiny):
    """The tolerance is tight enough to see another data order (so the test above can fail)."""
    from seal_core.models.loading import load_model

    reference = lora_runs(load_model("tiny-random"), DATAS[1:2], SEEDS[1:2])
    up = multi(batch_size=1)
    up.options.batch_size = 2
    with up.adapted_batch(fresh_tiny, DATAS[1:2], [SEEDS[1] + 1]):
        assert worst_difference(stacked(fresh_tiny.model), 0, reference[0][0]) > 50 * TOLERANCE


def test_a_diverging_edit_is_rejected_alone(fresh_tiny):
    from seal_core.models.loading import load_model

    datas = [DATAS[0], TrainingSet(DATAS[1].examples, learning_rate=1e30), DATAS[2]]
    reference = lora_runs(load_model("tiny-random"), [DATAS[0], DATAS[2]], [SEEDS[0], SEEDS[2]])
    with multi(k=4).adapted_batch(fresh_tiny, datas, SEEDS[:3]) as batch:
        assert list(batch.rejected) == [1] and "loss became" in batch.rejected[1]
        layers = stacked(fresh_tiny.model)
        assert worst_difference(layers, 0, reference[0][0]) < TOLERANCE
        assert worst_difference(layers, 2, reference[1][0]) < TOLERANCE


def test_single_adapt_and_reset(fresh_tiny, tiny_logits):
    """The one-edit API (third-party engines, sequential fallbacks): like lora, exactly reset."""
    before = tiny_logits(fresh_tiny)
    up = multi(k=2)
    seed_all(3)
    up.adapt(fresh_tiny, TEXTS)
    assert (tiny_logits(fresh_tiny) - before).abs().max() > 1e-4
    up.reset(fresh_tiny)
    assert torch.equal(tiny_logits(fresh_tiny), before)
    trainable = [n for n, p in fresh_tiny.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert fresh_tiny.model.training is False
    with pytest.raises(RuntimeError, match="already carries"):
        multi(k=3).adapt(fresh_tiny, TEXTS[:1])


def test_a_failed_training_leaves_the_model_as_it_was(fresh_tiny, tiny_logits, monkeypatch):
    """Everything training switches on (packed attention, train mode, gradients, token routing)
    is switched off in one place, also when a step raises; reset then restores the base model."""
    model = fresh_tiny.model
    before, attention = tiny_logits(fresh_tiny), model.config._attn_implementation
    updater = multi()

    def broken_step(self, *args, **kwargs):
        assert model.training and model.config._attn_implementation != attention  # inside training
        raise RuntimeError("a step failed")

    monkeypatch.setattr(MultiLoraUpdater, "_step", broken_step)
    with pytest.raises(RuntimeError, match="a step failed"):
        updater.adapt_batch(fresh_tiny, DATAS[:2], SEEDS[:2])
    assert model.config._attn_implementation == attention and not model.training
    layers = stacked(model).values()
    assert all(layer.lora_A.grad is None and layer.lora_B.grad is None for layer in layers)
    updater.reset(fresh_tiny)
    assert not next(iter(layers)).routing.active
    assert torch.equal(tiny_logits(fresh_tiny), before)


def test_merge_folds_the_adapter_into_the_base_weights(fresh_tiny, tiny_logits):
    before, sha = tiny_logits(fresh_tiny), weights_sha(fresh_tiny.model)
    up = multi(k=2)
    up.adapt(fresh_tiny, TEXTS)
    adapted = tiny_logits(fresh_tiny)
    up.merge(fresh_tiny)  # adapters reset and routed off: the change now lives in the base weights
    merged = tiny_logits(fresh_tiny)
    assert up.can_merge and weights_sha(fresh_tiny.model) != sha
    assert torch.allclose(merged, adapted, atol=1e-4)
    assert not torch.allclose(merged, before, atol=1e-4)


def test_bf16_base_trains_close_to_fp32(fresh_tiny, tiny_logits):
    before = tiny_logits(fresh_tiny)
    from seal_core.models.loading import load_model

    other = load_model("tiny-random")
    with multi(k=2).adapted_batch(other, DATAS[:2], SEEDS[:2]):
        fp32 = {n: (m.lora_A[:2].clone(), m.lora_B[:2].clone()) for n, m in stacked(other.model).items()}
    with multi(k=2, precision="bf16").adapted_batch(fresh_tiny, DATAS[:2], SEEDS[:2]) as batch:
        assert batch.rejected == {}
        for name, layer in stacked(fresh_tiny.model).items():
            assert layer.lora_A.dtype == torch.float32
            b = fp32[name][1]  # bf16 rounding moves a few small-gradient weights by ~lr (AdamW)
            assert torch.linalg.norm(layer.lora_B[:2] - b) < 0.2 * torch.linalg.norm(b)
    assert torch.equal(tiny_logits(fresh_tiny), before)  # fp32 base again, exactly
    assert all(m.bf16_weight is None for m in stacked(fresh_tiny.model).values())


def test_options_are_a_superset_of_lora_s():
    from dataclasses import fields

    assert {f.name for f in fields(LoraOptions)} < {f.name for f in fields(MultiLoraOptions)}
    assert MultiLoraOptions(autocast_bf16=True).precision == "bf16"
    with pytest.raises(ValueError, match="max_adapters"):
        MultiLoraOptions(max_adapters=0)


def test_scorer_batches_and_falls_back_to_one_adapter_at_a_time(registry, fresh_tiny):
    """Scorer.score_edits: batches for multi-lora (routed qa, and an evaluator without
    evaluate_routed), one at a time for lora; the same scores and answers, in order."""
    from seal_core.api.types import EditItem
    from seal_core.loop.config import load_raw, resolve
    from seal_core.loop.scoring import Scorer
    from seal_core.loop.workbench import Workbench
    from seal_core.models.loading import load_model
    from seal_core.runtime.interrupt import StopFlag

    def scorer(*overrides):
        raw = load_raw(None, ["model.policy=tiny-random", "inner.epochs=2", "inner.r=8",
                              "evaluator.max_new_tokens=8", *overrides])
        workbench = Workbench(resolve(raw, registry), registry)
        return Scorer(workbench.evaluators()[0], workbench, StopFlag())

    batched, lora = scorer("inner.max_adapters=3"), scorer("inner.name=lora")
    tasks = lora.workbench.load_tasks()[0][:2]
    edits = ["The bell is named Old Margery.\nThe well is 31 metres deep.", "Doors are plum.",
             "Geese: Ada, Bea and Cy.\nFog on Tuesdays.\nThe mayor keeps geese.", ""]
    items = [EditItem(tasks[i % 2], i, edit) for i, edit in enumerate(edits)]  # 4 items: batches of 3 and 1

    class NoRouting(QAEvaluator):
        def evaluate_routed(self, *args):
            return None

    reference = list(lora.score_edits(0, items, load_model("tiny-random")))
    routed = list(batched.score_edits(0, items, fresh_tiny))
    batched.evaluator = NoRouting()
    one_by_one = list(batched.score_edits(0, items, fresh_tiny))
    for ref, got, alone in zip(reference, routed, one_by_one, strict=True):
        assert ref.item == got.item == alone.item
        assert ref.score.details["predictions"] == got.score.details["predictions"] == alone.score.details["predictions"]
        assert ref.reason == got.reason == alone.reason


@pytest.mark.slow
def test_embedded_model_matches_sequential_lora():
    """The same property on SmolLM2-135M (the embedded model), K = 4, with a tolerance on each
    tensor's norm: |W_multi - W_lora| <= 5e-2 |W_lora| (measured: at most 1.3e-2).

    Why not the element-wise tolerance of the tiny model: in a 30-layer model a share of the
    adapter gradients sits at the rounding-noise floor (the first-step gradients of both paths
    differ by up to 1e-4 of their norm, also with K = 1, i.e. with no batching at all), and AdamW
    turns each such gradient into a full +-lr step whatever its size, so single weights differ
    by up to the learning rate while the tensors as a whole agree to about 1%. A real
    difference (data order, learning rate, initialisation) is O(1) in norm too."""
    from seal_core.models.loading import load_model

    reference = lora_runs(load_model("embedded"), DATAS[:4], SEEDS[:4])
    student = load_model("embedded")
    with multi(k=4).adapted_batch(student, DATAS[:4], SEEDS[:4]) as batch:
        layers = stacked(student.model)
        for j, (weights, _) in enumerate(reference):
            for name, layer in layers.items():
                for mine, theirs in ((layer.lora_A[j], weights[f"{name}.lora_A.seal_inner.weight"]),
                                     (layer.lora_B[j], weights[f"{name}.lora_B.seal_inner.weight"])):
                    assert torch.linalg.norm(mine - theirs) <= 5e-2 * torch.linalg.norm(theirs), (j, name)
        routed = QAEvaluator().evaluate_routed(student.model, student.tokenizer, TASKS[:4], batch.rows)
    for (_, ref), got in zip(reference, routed):
        assert got.value == ref.value and got.details["predictions"] == ref.details["predictions"]
