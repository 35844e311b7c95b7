"""seal_plugins.hf_generate: k self-edits per prompt from one batched generate call (tiny-random)."""

from __future__ import annotations

import pytest
import torch

from seal_core.models.prompting import format_prompt
from seal_plugins.hf_generate import HFGenerate, HFGenerateOptions

PROMPTS = [
    "List the implications of: The bell of Thrushby is named Old Margery.",
    "Rewrite: The village well is 31 metres deep.",
]


@pytest.fixture
def gen() -> HFGenerate:
    return HFGenerate().configured(HFGenerateOptions(max_new_tokens=8))


@pytest.fixture
def generate_calls(tiny, monkeypatch):
    """Records the keyword arguments of every ``tiny.model.generate`` call."""
    calls: list[dict] = []
    original = tiny.model.generate

    def counting_generate(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny.model, "generate", counting_generate)
    return calls


def test_shape_and_types(tiny, gen):
    torch.manual_seed(0)
    out = gen.generate(tiny, PROMPTS, 3)
    assert len(out) == len(PROMPTS)
    assert all(len(edits) == 3 for edits in out)
    assert all(isinstance(e, str) for edits in out for e in edits)
    # a random model almost never repeats itself over 3 sampled completions
    assert any(len(set(edits)) > 1 for edits in out)


def test_one_generate_call_with_k_return_sequences(tiny, gen, generate_calls):
    torch.manual_seed(0)
    out = gen.generate(tiny, PROMPTS, 4)
    assert len(generate_calls) == 1
    kwargs = generate_calls[0]
    assert kwargs["num_return_sequences"] == 4
    assert kwargs["do_sample"] is True
    assert kwargs["max_new_tokens"] == 8
    assert kwargs["temperature"] == 1.0 and kwargs["top_p"] == 0.95
    assert kwargs["input_ids"].shape[0] == len(PROMPTS)  # the prompts are batched, not repeated
    assert [len(o) for o in out] == [4, 4]


def test_greedy_uses_one_call_and_repeats(tiny, gen, generate_calls):
    out = gen.generate(tiny, PROMPTS, 3, greedy=True)
    assert len(generate_calls) == 1
    assert generate_calls[0]["do_sample"] is False
    assert generate_calls[0]["num_return_sequences"] == 1
    assert [len(o) for o in out] == [3, 3]
    assert all(len(set(edits)) == 1 for edits in out)


def test_greedy_is_deterministic(tiny, gen):
    torch.manual_seed(1)
    first = gen.generate(tiny, PROMPTS, 2, greedy=True)
    torch.manual_seed(2)
    second = gen.generate(tiny, PROMPTS, 2, greedy=True)
    assert first == second
    # the same prompt alone (no batch padding) decodes the same way
    alone = gen.generate(tiny, PROMPTS[:1], 1, greedy=True)
    assert alone[0] == first[0][:1]


def test_greedy_matches_manual_decode(tiny, gen):
    """The greedy edit equals decoding the chat-formatted prompt by argmax, token by token."""
    edit = gen.generate(tiny, PROMPTS[:1], 1, greedy=True)[0][0]
    ids = tiny.tokenizer(format_prompt(tiny.tokenizer, PROMPTS[0]), return_tensors="pt",
                         add_special_tokens=False)["input_ids"]
    new = []
    with torch.no_grad():
        for _ in range(8):
            nxt = tiny.model(input_ids=ids).logits[0, -1].argmax()
            if nxt.item() == tiny.tokenizer.eos_token_id:
                break
            new.append(nxt.item())
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    assert edit == tiny.tokenizer.decode(new, skip_special_tokens=True).strip()


def test_sampling_is_reproducible_with_the_same_seed(tiny, gen):
    torch.manual_seed(42)
    first = gen.generate(tiny, PROMPTS, 2)
    torch.manual_seed(42)
    second = gen.generate(tiny, PROMPTS, 2)
    torch.manual_seed(43)
    third = gen.generate(tiny, PROMPTS, 2)
    assert first == second
    assert third != first


def test_max_new_tokens_bounds_the_length(tiny):
    short = HFGenerate().configured(HFGenerateOptions(max_new_tokens=2))
    torch.manual_seed(0)
    out = short.generate(tiny, PROMPTS[:1], 3)
    for edit in out[0]:
        assert len(tiny.tokenizer(edit, add_special_tokens=False)["input_ids"]) <= 4


def test_empty_prompt_list(tiny, gen):
    assert gen.generate(tiny, [], 3) == []


def test_default_options_and_registry(registry):
    component = registry.get("edit_generator", "hf-generate")
    assert isinstance(component, HFGenerate)
    assert component.options == HFGenerateOptions()


@pytest.mark.parametrize("bad", [{"temperature": 0.0}, {"top_p": 0.0}, {"top_p": 1.5}, {"max_new_tokens": 0}])
def test_options_validation(bad):
    with pytest.raises(ValueError):
        HFGenerateOptions(**bad)
