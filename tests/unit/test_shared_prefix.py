"""seal_core.models.shared_prefix: a batch's common prompt prefix computed once per adapter gives
what every row computing its whole prompt gives.

Tolerance: the log-probabilities of the drawn tokens agree to 1e-4 (both paths do the same
float32 arithmetic on different matmul shapes, measured ~1e-6); the tokens are equal. A prefix
computed on the wrong adapter moves them by far more, which the planted check shows.
"""

from __future__ import annotations

import pytest
import torch

from seal_core.api.types import TrainingSet
from seal_core.evaluation.qa import QUESTION_PROMPT
from seal_core.models import shared_prefix
from seal_core.models.generation import generate_samples
from seal_core.models.prompting import format_prompt
from seal_core.models.shared_prefix import MIN_SHARED_TOKENS, SharedRows, common_prefix
from seal_plugins.multi_lora import MultiLoraOptions, MultiLoraUpdater

QUESTIONS = ["What is the bell of Thrushby called?", "How deep is the well?", "What colour are the doors?",
             "Who keeps three geese?", "When does fog cover Thrushby?"]
TOLERANCE = 1e-4


def test_common_prefix_leaves_each_row_a_token():
    assert common_prefix([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert common_prefix([[1, 2, 3], [1, 2, 3]]) == 2  # never the whole prompt
    assert common_prefix([[7], [7, 8]]) == 0
    assert common_prefix([[1, 2], [3, 2]]) == 0
    with pytest.raises(ValueError, match="groups"):
        SharedRows(route=lambda groups: None)


def prompts(tokenizer) -> list[str]:
    return [format_prompt(tokenizer, QUESTION_PROMPT.format(question=q)) for q in QUESTIONS]


def tokens_and_logprobs(samples):
    return [s.token_ids for s in samples], [torch.tensor(s.logprobs) for s in samples]


def assert_same(got, want, tolerance=TOLERANCE):
    (got_ids, got_lps), (want_ids, want_lps) = got, want
    assert got_ids == want_ids
    assert all(torch.allclose(a, b, atol=tolerance, rtol=0) for a, b in zip(got_lps, want_lps))


def test_one_model_shares_its_prefix(fresh_tiny, monkeypatch):
    """All rows on one model: the shared path runs, and generation equals the plain left-padded
    path."""
    model, tokenizer = fresh_tiny.model, fresh_tiny.tokenizer
    inputs = prompts(tokenizer)
    assert common_prefix(tokenizer(inputs, add_special_tokens=False)["input_ids"]) >= MIN_SHARED_TOKENS
    heads = []
    original = shared_prefix.shared_prefix_inputs

    def spy(model, rows, pad_id, shared, device):
        got = original(model, rows, pad_id, shared, device)
        heads.append(None if got is None else got["attention_mask"].shape)
        return got

    monkeypatch.setattr("seal_core.models.generation.shared_prefix_inputs", spy)
    plain = generate_samples(model, tokenizer, inputs, max_new_tokens=6)
    shared = generate_samples(model, tokenizer, inputs, max_new_tokens=6, shared=SharedRows())
    assert heads and heads[0] is not None  # the shared path ran
    assert_same(tokens_and_logprobs(shared), tokens_and_logprobs(plain))


def test_routed_rows_share_a_prefix_per_adapter(fresh_tiny):
    """Rows routed to K = 3 different adapters (and one on the base model): one prefix per
    adapter gives what each row computing its whole prompt on its adapter gives; a prefix
    computed on the wrong adapter does not (the check can fail)."""
    model, tokenizer = fresh_tiny.model, fresh_tiny.tokenizer
    inputs = prompts(tokenizer)
    owners = [0, 2, 1, -1, 2]  # rows on adapters 0, 2, 1, the base model, 2
    up = MultiLoraUpdater().configured(MultiLoraOptions(epochs=1, r=4, max_adapters=3))
    datas = [TrainingSet.from_texts([q]) for q in QUESTIONS[:3]]
    with up.adapted_batch(fresh_tiny, datas, [1, 2, 3]) as batch:
        with torch.no_grad():  # adapters far apart, so a prefix on the wrong one shows
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(std=0.5)
        with batch.rows(owners):
            plain = tokens_and_logprobs(generate_samples(model, tokenizer, inputs, max_new_tokens=6))
        shared = generate_samples(model, tokenizer, inputs, max_new_tokens=6, shared=SharedRows(owners, batch.rows))
        assert_same(tokens_and_logprobs(shared), plain)

        def prefix_on_the_wrong_adapter(groups):
            distinct = list(dict.fromkeys(owners))
            return batch.rows([(g + 1) % 3 if g >= 0 else g for g in groups] if groups == distinct else groups)

        wrong = generate_samples(model, tokenizer, inputs, max_new_tokens=6,
                                 shared=SharedRows(owners, prefix_on_the_wrong_adapter))
        with pytest.raises(AssertionError):
            assert_same(tokens_and_logprobs(wrong), plain)


def test_too_short_a_prefix_takes_the_plain_path(fresh_tiny):
    """Prompts sharing fewer than MIN_SHARED_TOKENS tokens generate as before, and several samples
    per input always do."""
    model, tokenizer = fresh_tiny.model, fresh_tiny.tokenizer
    rows = tokenizer(["alpha beta", "gamma delta"], add_special_tokens=False)["input_ids"]
    assert shared_prefix.shared_prefix_inputs(model, rows, tokenizer.pad_token_id, SharedRows(), torch.device("cpu")) is None
    plain = generate_samples(model, tokenizer, ["alpha beta", "gamma delta"], max_new_tokens=4)
    shared = generate_samples(model, tokenizer, ["alpha beta", "gamma delta"], max_new_tokens=4, shared=SharedRows())
    assert_same(tokens_and_logprobs(shared), tokens_and_logprobs(plain), tolerance=0)
