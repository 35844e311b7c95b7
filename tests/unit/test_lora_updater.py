"""seal_plugins.lora_updater: the inner loop on tiny-random (each test gets its own model)."""

from __future__ import annotations

import os

import pytest
import torch

from seal_core.api.errors import EditRejected
from seal_core.models.loading import plain_state_dict, weights_sha
from seal_core.runtime.seeding import seed_all
from seal_core.api.errors import NonFiniteLoss
from seal_core.inner import LoraOptions, record_of, tokenize_examples, tokenize_texts
from seal_core.api.types import TrainingExample
from seal_plugins.lora_updater import LoraUpdater

TEXTS = [
    "The bell of Thrushby was cast in 1702 and is named Old Margery.",
    "The village well in Thrushby is 31 metres deep.",
    "Every house in Thrushby has a door painted plum.",
]


def updater(**overrides) -> LoraUpdater:
    return LoraUpdater().configured(LoraOptions(**{"epochs": 2, "r": 8, "batch_size": 2, **overrides}))


def lora_names(model) -> list[str]:
    return [n for n, _ in model.named_parameters() if "lora_" in n]


def test_reset_restores_exact_logits(fresh_tiny, tiny_logits):
    """THE key property: adapt changes the outputs, reset brings back the base model bit for bit."""
    before = tiny_logits(fresh_tiny)
    up = updater()
    adapted = up.adapt(fresh_tiny, TEXTS)
    assert adapted is fresh_tiny
    after = tiny_logits(adapted)
    assert not torch.equal(after, before)
    assert (after - before).abs().max() > 1e-4
    up.reset(fresh_tiny)
    assert torch.equal(tiny_logits(fresh_tiny), before)
    # again, with a second edit on the same (now wrapped) model
    up.adapt(fresh_tiny, TEXTS[:1])
    assert not torch.equal(tiny_logits(fresh_tiny), before)
    up.reset(fresh_tiny)
    assert torch.equal(tiny_logits(fresh_tiny), before)
    # on a different input too
    other = "Question: how deep is the well?"
    assert torch.equal(tiny_logits(fresh_tiny, other), tiny_logits(fresh_tiny, other))


def test_reset_restores_initial_adapter_values(fresh_tiny):
    up = updater()
    up.adapt(fresh_tiny, TEXTS)
    initial = record_of(fresh_tiny.model).state
    trained = dict(fresh_tiny.model.named_parameters())
    assert any(not torch.equal(trained[n], initial[n]) for n in initial)
    up.reset(fresh_tiny)
    params = dict(fresh_tiny.model.named_parameters())
    assert all(torch.equal(params[n], initial[n]) for n in initial)
    assert all(torch.count_nonzero(params[n]) == 0 for n in initial if "lora_B" in n)


def test_adapters_are_injected_once(fresh_tiny):
    model_obj = fresh_tiny.model
    up = updater()
    up.adapt(fresh_tiny, TEXTS)
    names = lora_names(fresh_tiny.model)
    assert len(names) > 0
    # 2 layers x 7 target modules x (A, B)
    assert len(names) == 2 * 7 * 2
    up.reset(fresh_tiny)
    up.adapt(fresh_tiny, TEXTS)
    up.reset(fresh_tiny)
    # a second updater instance (a configured copy) finds the same adapters
    updater().adapt(fresh_tiny, TEXTS[:1])
    assert lora_names(fresh_tiny.model) == names
    assert fresh_tiny.model is model_obj
    assert not any(".base_layer.base_layer" in n for n in fresh_tiny.model.state_dict())


def test_other_adapter_shape_on_a_wrapped_model_is_refused(fresh_tiny):
    updater(r=8).adapt(fresh_tiny, TEXTS[:1])
    with pytest.raises(RuntimeError, match="already carries"):
        updater(r=4).adapt(fresh_tiny, TEXTS[:1])


def test_no_files_written(fresh_tiny, tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    up = updater()
    for _ in range(2):
        up.adapt(fresh_tiny, TEXTS)
        up.reset(fresh_tiny)
    with up.adapted(fresh_tiny, TEXTS):
        pass
    assert os.listdir(work) == []
    assert [p for p in tmp_path.rglob("*") if p != work] == []


def test_same_seed_gives_identical_adapted_logits(fresh_tiny, tiny_logits):
    up = updater(epochs=2, batch_size=1)  # batch_size 1: the shuffle order matters
    runs = []
    for _ in range(2):
        seed_all(1234)
        up.adapt(fresh_tiny, TEXTS)
        runs.append(tiny_logits(fresh_tiny))
        up.reset(fresh_tiny)
    assert torch.equal(runs[0], runs[1])


def test_different_seed_changes_the_shuffle(fresh_tiny, tiny_logits):
    up = updater(epochs=1, batch_size=1)
    outs = []
    for seed in (1, 2, 3, 4):
        seed_all(seed)
        up.adapt(fresh_tiny, TEXTS)
        outs.append(tiny_logits(fresh_tiny))
        up.reset(fresh_tiny)
    # with 3 texts and batch size 1, 4 seeds cannot all give the same order... almost surely
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_adapter_init_follows_the_seed(fresh_tiny):
    """per-edit: lora_A starts from the edit's seed (the same seed, the same start; another seed,
    another); fixed: every edit starts from peft's seed-0 draw, whatever the seed."""
    starts = {}
    for init in ("per-edit", "fixed"):
        up = updater(adapter_init=init, epochs=1)
        up.trainable(fresh_tiny)  # inject (the same adapters for both settings)
        for seed in (5, 5, 6):
            seed_all(seed)
            up.initialise(fresh_tiny)
            starts.setdefault(init, []).append(
                {n: p.detach().clone() for n, p in fresh_tiny.model.named_parameters() if "lora_A" in n})
            up.reset(fresh_tiny)
    initial = {n: v for n, v in record_of(fresh_tiny.model).state.items() if "lora_A" in n}
    same = lambda a, b: all(torch.equal(a[n], b[n]) for n in a)  # noqa: E731
    per_edit, fixed = starts["per-edit"], starts["fixed"]
    assert same(per_edit[0], per_edit[1]) and not same(per_edit[0], per_edit[2])
    assert not same(per_edit[0], initial)
    assert all(same(f, initial) for f in fixed)
    bound = max(v.abs().max().item() for v in initial.values())  # the same distribution as peft's
    assert max(v.abs().max().item() for v in per_edit[2].values()) <= bound * 1.0001


def test_only_lora_params_train(fresh_tiny, tiny):
    before = {k: v.clone() for k, v in plain_state_dict(fresh_tiny.model).items()}
    sha = weights_sha(fresh_tiny.model)
    up = updater()
    up.adapt(fresh_tiny, TEXTS)
    trainable = [n for n, p in fresh_tiny.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert set(trainable) == set(lora_names(fresh_tiny.model))
    after = plain_state_dict(fresh_tiny.model)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert weights_sha(fresh_tiny.model) == sha == weights_sha(tiny.model)
    # no gradients left behind on the base weights
    assert all(p.grad is None for n, p in fresh_tiny.model.named_parameters() if "lora_" not in n)
    assert fresh_tiny.model.training is False


def test_non_finite_loss_is_rejected(fresh_tiny, tiny_logits, monkeypatch):
    before = tiny_logits(fresh_tiny)
    model = fresh_tiny.model
    forward = model.forward

    def nan_forward(*args, **kwargs):
        out = forward(*args, **kwargs)
        if out.loss is not None:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(model, "forward", nan_forward)
    up = updater()
    with pytest.raises(EditRejected, match="nan"):
        up.adapt(fresh_tiny, TEXTS)
    with pytest.raises(NonFiniteLoss):
        with up.adapted(fresh_tiny, TEXTS):
            pytest.fail("the body must not run when adapt fails")
    monkeypatch.undo()
    assert model.training is False  # adapt put it back in eval mode
    assert torch.equal(tiny_logits(fresh_tiny), before)


def test_exploding_learning_rate_is_rejected(fresh_tiny, tiny_logits):
    before = tiny_logits(fresh_tiny)
    up = updater(learning_rate=1e30, epochs=3, batch_size=1)
    with pytest.raises(EditRejected):
        with up.adapted(fresh_tiny, TEXTS):
            pass
    assert torch.equal(tiny_logits(fresh_tiny), before)


def test_empty_texts_leave_the_student_unchanged(fresh_tiny, tiny_logits):
    before = tiny_logits(fresh_tiny)
    sha = weights_sha(fresh_tiny.model)
    up = updater()
    result = up.adapt(fresh_tiny, [])
    assert result is fresh_tiny
    assert torch.equal(tiny_logits(fresh_tiny), before)
    assert weights_sha(fresh_tiny.model) == sha
    up.reset(fresh_tiny)
    assert torch.equal(tiny_logits(fresh_tiny), before)


def test_adapted_context_resets_even_on_error(fresh_tiny, tiny_logits):
    before = tiny_logits(fresh_tiny)
    up = updater()

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with up.adapted(fresh_tiny, TEXTS) as model:
            assert model is fresh_tiny
            assert not torch.equal(tiny_logits(model), before)
            raise Boom()
    assert torch.equal(tiny_logits(fresh_tiny), before)

    with up.adapted(fresh_tiny, TEXTS) as model:
        inside = tiny_logits(model)
    assert not torch.equal(inside, before)
    assert torch.equal(tiny_logits(fresh_tiny), before)


def test_reset_before_any_adapt_keeps_outputs(fresh_tiny, tiny_logits):
    before = tiny_logits(fresh_tiny)
    updater().reset(fresh_tiny)
    assert torch.equal(tiny_logits(fresh_tiny), before)


def test_unmatched_target_modules_raise(fresh_tiny):
    with pytest.raises(ValueError):
        updater(target_modules=["no_such_proj"]).adapt(fresh_tiny, TEXTS)


@pytest.mark.parametrize(
    "bad", [{"r": 0}, {"epochs": 0}, {"batch_size": 0}, {"learning_rate": 0.0}, {"dropout": 1.0},
            {"max_length": 4}, {"target_modules": []}, {"alpha": 0.0}],
)
def test_options_validation(bad):
    with pytest.raises(ValueError):
        LoraOptions(**bad)


def test_tokenize_texts_masks_padding(tiny):
    batch = tokenize_texts(tiny.tokenizer, ["a", "a much longer text than the first"], 64, torch.device("cpu"))
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    assert ids.shape == mask.shape == labels.shape and ids.shape[0] == 2
    assert torch.equal(labels == -100, mask == 0)
    assert (mask[0] == 0).any() and (mask[1] == 1).all()
    # EOS ends every text
    eos = tiny.tokenizer.eos_token_id
    assert ids[0][mask[0].bool()][-1].item() == eos
    assert ids[1][-1].item() == eos
    # truncation
    long = tokenize_texts(tiny.tokenizer, ["word " * 200], 16, torch.device("cpu"))
    assert long["input_ids"].shape[1] == 16


def test_completion_only_masks_prompt_tokens(tiny):
    from seal_core.api.types import TrainingExample
    from seal_core.inner import tokenize_examples

    ex = [TrainingExample(prompt="Question: where?\n", completion="Answer: here")]
    full = tokenize_examples(tiny.tokenizer, ex, 64, torch.device("cpu"))
    masked = tokenize_examples(tiny.tokenizer, ex, 64, torch.device("cpu"), completion_only=True)
    n_prompt = len(tiny.tokenizer("Question: where?\n", add_special_tokens=False)["input_ids"])
    assert (full["labels"] != -100).sum() == full["input_ids"].shape[1]
    assert (masked["labels"][0, :n_prompt] == -100).all()
    assert (masked["labels"][0, n_prompt:] != -100).all()


def test_training_set_overrides_learning_rate_and_epochs(fresh_tiny):
    from seal_core.api.types import TrainingSet

    up = updater(epochs=1, learning_rate=1e-3, adapter_init="fixed")  # distances from one start
    initial = up.trainable(fresh_tiny)

    def distance_moved(data: TrainingSet) -> float:
        torch.manual_seed(0)  # the same shuffle order for every call
        up.adapt(fresh_tiny, data)
        with torch.no_grad():
            moved = sum(float((p - initial[n]).abs().sum()) for n, p in fresh_tiny.model.named_parameters() if n in initial)
        up.reset(fresh_tiny)
        return moved

    examples = TrainingSet.from_texts(TEXTS).examples
    plain = distance_moved(TrainingSet(examples))
    assert distance_moved(TrainingSet(examples, learning_rate=1e-2)) > 3 * plain
    assert distance_moved(TrainingSet(examples, epochs=3)) > 1.5 * plain
    one_epoch = -(-len(examples) // up.options.batch_size)
    assert distance_moved(TrainingSet(examples, epochs=3, max_steps=one_epoch)) == pytest.approx(plain, rel=1e-5)


def test_learning_rate_schedule_by_hand():
    """linear: base x (total - step) / total, as transformers' linear schedule without warm-up
    (the reference code's Trainer default): 4 steps at 1e-3 take 1e-3, 7.5e-4, 5e-4, 2.5e-4."""
    from seal_core.inner import learning_rate_at, planned_steps
    from seal_core.api.types import TrainingSet

    assert [learning_rate_at(1e-3, t, 4, "linear") for t in range(4)] == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])
    assert learning_rate_at(1e-3, 3, 4, "constant") == 1e-3
    opts = LoraOptions(epochs=3, batch_size=2)
    assert planned_steps(TrainingSet.from_texts(TEXTS), opts) == 6  # 3 epochs x 2 steps
    assert planned_steps(TrainingSet(TrainingSet.from_texts(TEXTS).examples, max_steps=4), opts) == 4


def test_eos_can_be_left_out_of_the_loss(tiny):
    """loss_on_eos=False masks the eos closing each text, as the reference's collator does."""
    tok = tiny.tokenizer
    on = tokenize_examples(tok, [TrainingExample("Fog covers Thrushby.")], 64, "cpu")
    off = tokenize_examples(tok, [TrainingExample("Fog covers Thrushby.")], 64, "cpu", loss_on_eos=False)
    eos = on["input_ids"][0] == tok.eos_token_id
    assert eos.sum() == 1 and (on["labels"][0][eos] == tok.eos_token_id).all()
    assert (off["labels"][0][eos] == -100).all() and torch.equal(off["labels"][0][~eos], on["labels"][0][~eos])
