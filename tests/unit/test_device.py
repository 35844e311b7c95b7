"""The inner loop and generation on an accelerator: marked ``cuda``.

They run on the device named by ``SEAL_TEST_DEVICE`` (default ``cuda``) and are skipped when that
is CUDA and none is visible, so a plain ``pytest`` on a CPU machine skips them.
``benchmarks/gpu_check.py`` runs them on the GPU, and its CPU form (``--device cpu``, which CI runs)
runs the same tests on the CPU so that their code is exercised everywhere.

What is checked, at the dtype a GPU run uses by default (``model.dtype=auto``: bf16):

- bf16 base weights stay bf16 and unchanged, while the adapters of ``lora`` and ``multi-lora`` and
  their AdamW moments are fp32 (a bf16 adapter loses LoRA's small updates: a step of 1e-3 on a
  weight of 1 is below bf16's resolution of 2^-8);
- sampled and greedy generation on the device;
- ``multi-lora``'s routed scores equal ``lora``'s: the same K self-edits, adapted one at a time by
  ``lora`` and together by ``multi-lora``, give each question's answer the same mean log-probability
  when ``multi-lora`` scores all K adapted models in one routed forward pass.

Tolerances, each far below what a real difference makes (the negative control below: adapters
trained at 3x the learning rate; measured on CPU: answer log-probabilities move by 0.16 nats per
token, adapter weights by more than their own norm):

- fp32 model: each adapter tensor within 1e-3 of its norm (relative Frobenius distance) and
  answer log-probabilities within 1e-3 nats per token (measured on CPU: 4e-5 and 1e-6: the same
  float32 arithmetic in another order);
- bf16 base: within 0.25 of the norm and 2e-2 nats per token (measured on CPU: 0.094 and 0.008).
  Each path rounds the base's activations to bf16 (relative step 2^-8) at different points (peft
  adds the fp32 adapter output to the bf16 base output and rounds once; multi-lora accumulates
  into the bf16 output), and AdamW turns gradient noise near eps into full-size steps of either
  sign, so single weights can differ by their own size while the adapted model computes the same.
"""

from __future__ import annotations

import os

import pytest
import torch

from seal_core.models.loading import load_model, plain_state_dict
from seal_core.runtime.seeding import seed_all
from seal_core.api.types import TrainingSet
from seal_plugins.lora_updater import LoraOptions, LoraUpdater
from seal_core.inner import StackedLoraLinear
from seal_plugins.multi_lora import MultiLoraOptions, MultiLoraUpdater

DEVICE = os.environ.get("SEAL_TEST_DEVICE", "cuda")
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                       reason=f"SEAL_TEST_DEVICE={DEVICE} but CUDA is not available"),
]

SPECS = ["tiny-random", "random:qwen2-tiny"]  # Llama, and Qwen2 (attention biases)
TEXTS = [
    "The bell of Thrushby was cast in 1702 and is named Old Margery.",
    "The village well in Thrushby is 31 metres deep.",
    "Every house in Thrushby has a door painted plum.",
    "The mayor of Thrushby keeps three geese called Ada, Bea and Cy.",
]
DATAS = [TrainingSet.from_texts(TEXTS[:1]), TrainingSet.from_texts(TEXTS[:3]), TrainingSet.from_texts(TEXTS[1:]),
         TrainingSet(TrainingSet.from_texts(TEXTS).examples, learning_rate=3e-3, epochs=2)]
SEEDS = [11, 22, 33, 44]
OPTIONS = {"epochs": 3, "r": 8, "batch_size": 2, "learning_rate": 1e-3}
QUESTIONS = [("What is the bell of Thrushby called?", " Old Margery"), ("How deep is the well?", " 31 metres"),
             ("What colour are the doors?", " plum"), ("What are the geese called?", " Ada, Bea and Cy")]
TOLERANCE = {"float32": {"weights": 1e-3, "logprob": 1e-3}, "bfloat16": {"weights": 0.25, "logprob": 2e-2}}


def load(spec: str, dtype: str):
    return load_model(spec, device=DEVICE, dtype=dtype)


def answer_batch(loaded, pairs):
    """Right-padded (question + answer) rows and a mask of the answer tokens."""
    tok = loaded.tokenizer
    ids, masks = [], []
    for question, answer in pairs:
        q = tok(question, add_special_tokens=False)["input_ids"]
        a = tok(answer, add_special_tokens=False)["input_ids"]
        ids.append(q + a)
        masks.append([0] * len(q) + [1] * len(a))
    width = max(map(len, ids))
    pad = tok.pad_token_id
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in ids], device=loaded.device)
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in ids], device=loaded.device)
    answer = torch.tensor([m + [0] * (width - len(m)) for m in masks], device=loaded.device)
    return input_ids, attention, answer


@torch.no_grad()
def answer_logprobs(loaded, pairs) -> torch.Tensor:
    """Per row: the mean log-probability per token of the answer given the question (fp32)."""
    input_ids, attention, answer = answer_batch(loaded, pairs)
    logits = loaded.model(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    mask = answer[:, 1:].float()
    return ((logp * mask).sum(1) / mask.sum(1)).cpu()


def lora_reference(spec, dtype, datas=DATAS, learning_rate=None):
    """Each self-edit adapted alone by ``lora``: its adapter weights and its answers' log-probs."""
    loaded = load(spec, dtype)
    options = {**OPTIONS, **({"learning_rate": learning_rate} if learning_rate else {})}
    up = LoraUpdater().configured(LoraOptions(**options))
    out = []
    for data, seed in zip(datas, SEEDS):
        seed_all(seed)
        with up.adapted(loaded, data):
            weights = {n: p.detach().float().clone() for n, p in loaded.model.named_parameters() if "lora_" in n}
            out.append((weights, answer_logprobs(loaded, QUESTIONS)))
    return out


def worst_weight_gap(model, j, weights) -> float:
    """The largest relative Frobenius distance between adapter ``j``'s tensors and ``lora``'s."""
    worst = 0.0
    for name, layer in model.named_modules():
        if isinstance(layer, StackedLoraLinear):
            for mine, theirs in ((layer.lora_A[j], weights[f"{name}.lora_A.seal_inner.weight"]),
                                 (layer.lora_B[j], weights[f"{name}.lora_B.seal_inner.weight"])):
                worst = max(worst, ((mine - theirs).norm() / theirs.norm()).item())
    return worst


@pytest.mark.parametrize("spec", SPECS)
def test_bf16_base_keeps_fp32_adapters_and_optimizer_state(spec, monkeypatch):
    import seal_plugins.multi_lora as multi_lora

    states = []

    class RecordingAdamW(torch.optim.AdamW):
        def step(self, closure=None):
            result = super().step(closure)
            states.extend(t for s in self.state.values() for k, t in s.items() if k in ("exp_avg", "exp_avg_sq"))
            return result

    class RecordingStacked(multi_lora.StackedAdamW):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            states.extend(self.m + self.v)

    monkeypatch.setattr(torch.optim, "AdamW", RecordingAdamW)
    monkeypatch.setattr(multi_lora, "StackedAdamW", RecordingStacked)
    for updater in (LoraUpdater().configured(LoraOptions(**OPTIONS)),
                    MultiLoraUpdater().configured(MultiLoraOptions(**OPTIONS, max_adapters=2))):
        loaded = load(spec, "bfloat16")
        base = {k: v.clone() for k, v in plain_state_dict(loaded.model).items()}
        states.clear()
        batched = isinstance(updater, MultiLoraUpdater)
        seed_all(SEEDS[0])
        with (updater.adapted_batch(loaded, DATAS[:2], SEEDS[:2]) if batched else updater.adapted(loaded, DATAS[1])):
            adapters = [p for n, p in loaded.model.named_parameters() if "lora_" in n]
            assert adapters and all(p.dtype == torch.float32 and p.device == loaded.device for p in adapters)
            assert any(float(p.detach().abs().max()) > 0 for n, p in loaded.model.named_parameters() if "lora_B" in n)
        assert states and all(s.dtype == torch.float32 and s.device == loaded.device for s in states), updater.name
        after = plain_state_dict(loaded.model)
        assert all(v.dtype == torch.bfloat16 for v in after.values())
        assert all(torch.equal(after[k], base[k]) for k in base), f"{updater.name} changed the base weights"


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_generation_on_the_device(dtype, registry):
    loaded = load("random:qwen2-tiny", dtype)
    assert loaded.device.type == torch.device(DEVICE).type
    generator = registry.get("edit_generator", "hf-generate").configured(
        registry.get("edit_generator", "hf-generate").Options(max_new_tokens=12))
    sampled = generator.generate(loaded, ["Passage: a bell.\nImplications:", "Passage: a well."], 3)
    assert [len(s) for s in sampled] == [3, 3] and all(isinstance(t, str) for s in sampled for t in s)
    greedy = generator.generate(loaded, ["Passage: a bell.\nImplications:"], 2, greedy=True)
    assert greedy[0][0] == greedy[0][1]  # greedy is deterministic on the device too


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("spec", SPECS)
def test_multi_lora_routed_scores_equal_lora(spec, dtype):
    tolerance = TOLERANCE[dtype]
    reference = lora_reference(spec, dtype)
    loaded = load(spec, dtype)
    up = MultiLoraUpdater().configured(MultiLoraOptions(**OPTIONS, max_adapters=len(DATAS)))
    with up.adapted_batch(loaded, DATAS, SEEDS) as batch:
        assert batch.rejected == {}
        gaps = [worst_weight_gap(loaded.model, j, weights) for j, (weights, _) in enumerate(reference)]
        other = lora_reference(spec, dtype, learning_rate=3e-3)  # DATAS[3] keeps its own rate
        control = [worst_weight_gap(loaded.model, j, weights) for j, (weights, _) in enumerate(other[:3])]
        # every adapter's questions in one forward pass, row r through adapter owners[r]
        owners = [j for j in range(len(DATAS)) for _ in QUESTIONS]
        with batch.rows(owners):
            routed = answer_logprobs(loaded, QUESTIONS * len(DATAS)).view(len(DATAS), len(QUESTIONS))
    expected = torch.stack([lp for _, lp in reference])
    assert max(gaps) < tolerance["weights"], gaps
    assert (routed - expected).abs().max().item() < tolerance["logprob"], (routed - expected)
    # negative control: adapters trained at another learning rate are told apart by both checks
    other_lp = torch.stack([lp for _, lp in other])
    assert (other_lp - expected).abs().max().item() > 5 * tolerance["logprob"]
    assert min(control) > 2 * tolerance["weights"], control
