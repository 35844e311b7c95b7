"""Schema-constrained self-edits (seal_core.models.constrained) on tiny-random: a constrained self-edit
always parses against its domain's schema, whatever the seed and temperature; the log-probs are
those of the constrained distribution; a domain without a schema, or ``generator.constrained``
off, generates exactly as before."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seal_core.models.constrained import allowed, check_schema, constraint_for, mask_logits, run_schema
from seal_core.api.errors import ConfigError
from seal_core.models.generation import generate_texts
from seal_core.models.logprobs import completion_logprobs
from seal_core.models.prompting import format_prompt
from seal_domains.arc import ArcDomain, ArcOptions
from seal_domains.arc.selfedit import DEFAULT, KEYS, Limits, edit_schema, learning_rates, parse_edit
from seal_domains.knowledge import KnowledgeDomain
from seal_plugins.hf_generate import HFGenerate, HFGenerateOptions

PROMPT = "Choose a test-time training configuration as a JSON object."
SCHEMA = edit_schema()


def generator(**options) -> HFGenerate:
    return HFGenerate().configured(HFGenerateOptions(**{"max_new_tokens": 80, **options}))


def assert_member(edit: str, limits: Limits = Limits()) -> None:
    """``edit`` is an instance of the ARC schema: it parses, with every key, and the learning
    rate is one the schema offers."""
    config = parse_edit(edit, limits)
    obj = json.loads(edit)
    assert list(obj) == list(KEYS)
    assert config.learning_rate in learning_rates(limits)
    assert isinstance(obj["num_train_epochs"], int) and 1 <= obj["num_train_epochs"] <= limits.max_epochs


# ---------------------------------------------------------------------------------------------
# the property: every constrained self-edit is a member of the schema
# ---------------------------------------------------------------------------------------------


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), temperature=st.sampled_from([0.3, 1.0, 2.0, 5.0]),
       top_p=st.sampled_from([0.5, 0.95, 1.0]))
def test_a_constrained_self_edit_always_parses(tiny, seed, temperature, top_p):
    torch.manual_seed(seed)
    edits = generator(temperature=temperature, top_p=top_p).generate(tiny, [PROMPT], 3, schema=SCHEMA)[0]
    for edit in edits:
        assert_member(edit)


def test_greedy_constrained_self_edits_parse_and_follow_narrower_limits(tiny):
    limits = Limits(min_learning_rate=2e-4, max_learning_rate=3e-3, max_epochs=2)
    schema = ArcDomain().configured(ArcOptions(min_learning_rate=2e-4, max_learning_rate=3e-3, max_epochs=2)).edit_schema()
    for seed in range(3):
        torch.manual_seed(seed)
        for edit in generator(temperature=3.0).generate(tiny, [PROMPT, "Another prompt"], 2, schema=schema)[0]:
            assert_member(edit, limits)
    (greedy, again), = generator().generate(tiny, [PROMPT], 2, greedy=True, schema=schema)
    assert greedy == again
    assert_member(greedy, limits)


def test_unconstrained_tiny_random_writes_no_valid_self_edit(tiny):
    """The negative control: the property above is not true by accident of the model."""
    torch.manual_seed(0)
    for edit in generator().generate(tiny, [PROMPT], 3)[0]:
        with pytest.raises(Exception):
            parse_edit(edit)


# ---------------------------------------------------------------------------------------------
# no schema, or the option off: free generation, exactly as before
# ---------------------------------------------------------------------------------------------


def test_a_domain_without_a_schema_generates_exactly_as_before(tiny, monkeypatch):
    assert KnowledgeDomain().edit_schema() is None and run_schema(KnowledgeDomain(), generator()) is None
    calls = []
    original = tiny.model.generate
    monkeypatch.setattr(tiny.model, "generate", lambda *a, **kw: calls.append(kw) or original(*a, **kw))
    torch.manual_seed(5)
    edits = generator(max_new_tokens=12).generate(tiny, [PROMPT], 3)
    torch.manual_seed(5)
    plain = generate_texts(tiny.model, tiny.tokenizer, [format_prompt(tiny.tokenizer, PROMPT)], max_new_tokens=12,
                           do_sample=True, temperature=1.0, top_p=0.95, num_return_sequences=3)
    assert edits == [[t.strip() for t in plain]]
    assert "logits_processor" not in calls[0]


def test_the_option_off_restores_free_generation(tiny):
    arc = ArcDomain()
    assert run_schema(arc, generator()) == arc.edit_schema() == SCHEMA
    off = generator(constrained=False)
    assert run_schema(arc, off) is None
    torch.manual_seed(0)
    free = off.generate(tiny, [PROMPT], 2)
    torch.manual_seed(0)
    constrained = generator().generate(tiny, [PROMPT], 2, schema=SCHEMA)
    assert free != constrained and not any(e.startswith('{"basic": ') for e in free[0])


def test_a_generator_without_constrained_by_gets_no_schema():
    class Fixed:  # a duck-typed generator of a third party: writes freely
        name = "fixed"

    assert run_schema(ArcDomain(), Fixed()) is None


# ---------------------------------------------------------------------------------------------
# log-probs of the constrained distribution
# ---------------------------------------------------------------------------------------------


def test_logprobs_are_those_of_the_constrained_distribution(tiny):
    torch.manual_seed(1)
    edits = generator().generate(tiny, [PROMPT], 3, schema=SCHEMA)[0]
    with torch.no_grad():
        logp, mask = completion_logprobs(tiny.model, tiny.tokenizer, [PROMPT] * 3, edits, schema=SCHEMA)
        free, free_mask = completion_logprobs(tiny.model, tiny.tokenizer, [PROMPT] * 3, edits)
    assert torch.equal(mask, free_mask)
    for edit in edits:  # the text, re-tokenised, is a path the sampler could take: no row falls back
        ids = tiny.tokenizer(edit, add_special_tokens=False)["input_ids"] + [tiny.tokenizer.eos_token_id]
        ok = allowed(constraint_for(SCHEMA, tiny.tokenizer).masks(ids), tiny.model.config.vocab_size)
        assert ok[torch.arange(len(ids)), ids].all() and not ok.all(-1).any()
    real = mask.bool()
    assert (logp[real] >= free[real] - 1e-5).all()  # renormalised over fewer tokens: never lower
    forced = (logp.abs() < 1e-6) & real  # keys, quotes, separators, the eos: the schema's only choice
    assert forced.sum() > real.sum() / 2
    chosen = real & ~forced
    assert chosen.any() and (logp[chosen] < 0).all()


def test_masked_logits_renormalise_over_the_allowed_tokens(tiny):
    constraint = constraint_for(SCHEMA, tiny.tokenizer)
    ids = tiny.tokenizer(DEFAULT.to_json(), add_special_tokens=False)["input_ids"] + [tiny.tokenizer.eos_token_id]
    masks = constraint.masks(ids)  # row t: what the schema allowed before token t
    logits = torch.randn(len(ids), tiny.model.config.vocab_size)
    probs = torch.softmax(mask_logits(logits, masks), dim=-1)
    assert torch.allclose(probs.sum(-1), torch.ones(len(ids)))
    ok = allowed(masks, logits.shape[-1])
    assert ok[0].sum() == 1 and ok[0, ids[0]] and ok[-1].sum() == 1  # `{"` is forced, and the eos at the end
    assert ok[torch.arange(len(ids)), ids].all()  # every token of a member was allowed
    assert (probs[~ok] == 0).all()
    matcher = constraint.matcher()
    assert matcher.consume_tokens(tiny.tokenizer('{"basic": true', add_special_tokens=False)["input_ids"])
    after = torch.full((1, constraint.width), 0, dtype=torch.int32)
    constraint.fill(matcher, after, 0)
    texts = [tiny.tokenizer.decode([t]) for t in allowed(after, constraint.vocab)[0].nonzero().view(-1).tolist()]
    assert texts and all(t.startswith(",") for t in texts)  # after a flag's value: the item separator


def test_a_text_that_leaves_the_schema_is_unconstrained_from_there(tiny):
    constraint = constraint_for(SCHEMA, tiny.tokenizer)
    ids = tiny.tokenizer('{"colour": 3}', add_special_tokens=False)["input_ids"]
    masks = constraint.masks(ids)
    assert (masks[0] != -1).any() and (masks[-1] == -1).all()


def test_an_invalid_schema_is_a_config_error_naming_the_domain_and_the_fix():
    class Broken(KnowledgeDomain):
        name = "broken"

        def edit_schema(self):
            return {"type": "no-such-type"}

    with pytest.raises(ConfigError, match=r"domain 'broken' declares a self-edit schema .* generator.constrained=false"):
        run_schema(Broken(), generator())
    with pytest.raises(ConfigError, match="cannot be compiled"):
        check_schema("not a schema", "domain 'x'")
