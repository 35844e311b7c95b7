"""The old log-probs of an RL update are the sampler's own: hf-generate reports the token ids it
drew and their log-probs under the distribution it drew from, and the update reads those."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import TopKLogitsWarper, TopPLogitsWarper

from seal_core import SampledEdit
from seal_core.models.logprobs import TokenizedRollouts, old_logprobs, rollout_logprobs, sampled_logprobs
from seal_core.models.loading import load_model
from seal_core.models.prompting import format_prompt
from seal_core.runtime.seeding import seed_all
from seal_core.api.types import Rollout
from seal_plugins.hf_generate import HFGenerate, HFGenerateOptions

PROMPT = "Restate the passage: the river froze in 1802."
TEMPERATURE, TOP_P = 0.7, 0.9


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random")


@pytest.fixture(scope="module")
def sampled(tiny) -> list[SampledEdit]:
    seed_all(0)
    gen = HFGenerate().configured(HFGenerateOptions(temperature=TEMPERATURE, top_p=TOP_P, max_new_tokens=12))
    return gen.generate(tiny, [PROMPT], 3)[0]


def processed_logprobs(tiny, token_ids: list[int]) -> torch.Tensor:
    """By hand: the model's logits before each sampled token, divided by the temperature, top-k
    and top-p applied, log-softmax, at the sampled token. top-k is the generation config's, or
    transformers' default of 50 when it sets none (generate applies it unasked)."""
    prompt = tiny.tokenizer(format_prompt(tiny.tokenizer, PROMPT), add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + token_ids])
    with torch.no_grad():
        logits = tiny.model(ids).logits[0, len(prompt) - 1:-1].float() / TEMPERATURE  # (T, V)
    logits = TopKLogitsWarper(getattr(tiny.model.generation_config, "top_k", None) or 50)(None, logits)
    logits = TopPLogitsWarper(TOP_P)(None, logits)
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(token_ids)[:, None]).squeeze(-1)


def test_sampled_edits_carry_the_processed_logprobs_of_their_tokens(tiny, sampled):
    assert len(sampled) == 3 and all(isinstance(e, SampledEdit) for e in sampled)
    for edit in sampled:
        assert 0 < len(edit.token_ids) == len(edit.logprobs) <= 12
        assert edit == tiny.tokenizer.decode(edit.token_ids, skip_special_tokens=True).strip()
        torch.testing.assert_close(torch.tensor(edit.logprobs), processed_logprobs(tiny, edit.token_ids),
                                   atol=1e-4, rtol=1e-4)
    greedy = HFGenerate().configured(HFGenerateOptions(max_new_tokens=4)).generate(tiny, [PROMPT], 2, greedy=True)[0]
    assert all(type(e) is str for e in greedy)  # nothing to report for evaluation edits


def test_the_update_reads_the_sampled_tokens_and_their_logprobs(tiny, sampled):
    rollouts = []
    for i, edit in enumerate(sampled):
        token_ids, logprobs = sampled_logprobs(tiny, PROMPT, [edit])[0]
        rollouts.append(Rollout(0, "t", i, PROMPT, str(edit), 0.0, 0.0, 0.0, logprobs=logprobs, token_ids=token_ids))
    data = TokenizedRollouts(tiny, rollouts, 1024)
    assert [data.pairs[i][1] for i in range(3)] == [e.token_ids for e in sampled]  # not re-tokenised
    old = old_logprobs(tiny.model, data, 8)
    new = rollout_logprobs(tiny.model, data, range(3), 8)
    for o, n, edit in zip(old, new, sampled):
        assert o.tolist() == pytest.approx(edit.logprobs)
    ratio = torch.exp(torch.cat(new) - torch.cat(old))
    assert not torch.allclose(ratio, torch.ones_like(ratio), atol=1e-3)  # old: the sampler's, not temperature 1

    # cut by max_length: the stored log-probs of the kept prefix, not a recomputation
    short = TokenizedRollouts(tiny, rollouts, len(data.pairs[0][0]) + 2)
    assert [lp.tolist() for lp in old_logprobs(None, short, 8)] == [pytest.approx(e.logprobs[:2]) for e in sampled]


def test_plain_text_edits_are_recomputed_and_old_rows_still_load(tiny):
    (ids, logprobs), = sampled_logprobs(tiny, PROMPT, ["a plain edit"])
    assert ids is None and len(logprobs) == len(tiny.tokenizer("a plain edit", add_special_tokens=False)["input_ids"]) + 1
    row = {"round": 0, "task_id": "t", "edit_index": 0, "prompt": "p", "edit": "e", "score_before": 0.0,
           "score_after": 0.0, "reward": 0.0, "details": {}, "logprobs": [-1.0, -2.0]}  # written before token_ids
    old = Rollout.from_json(json.loads(json.dumps(row)))
    assert old.token_ids is None and old.logprobs == [-1.0, -2.0]
    new = Rollout.from_json(json.loads(json.dumps(Rollout(0, "t", 0, "p", "e", 0.0, 0.0, 0.0, logprobs=[-1.0], token_ids=[7]).to_json())))
    assert new.token_ids == [7] and new.logprobs == [-1.0]


def test_a_run_stores_the_sampled_tokens_and_trains_on_them(tiny_run):
    run_dir = tiny_run("domain.train_limit=1", "generator.temperature=0.7", "algorithm.name=grpo",
                       "reward.name=answer-likelihood")
    rows = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert row["token_ids"] and len(row["token_ids"]) == len(row["logprobs"]) <= 8
    metrics = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert "skipped" not in metrics and metrics["approx_kl_old"] != 0.0  # old: the sampler's at 0.7
