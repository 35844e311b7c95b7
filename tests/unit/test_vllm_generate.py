"""The optional ``vllm`` edit generator: a clear config error without vLLM, and its calls into
vLLM checked against a stand-in (no vLLM and no GPU here)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types

import pytest
import torch

from seal_core.commands.main import main
from seal_core.loop.config import load_raw, resolve
from seal_core.api.errors import ConfigError

_real_find_spec = importlib.util.find_spec


@pytest.fixture
def no_vllm(monkeypatch):
    """vLLM not installed, whatever this machine has."""
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else _real_find_spec(name, *a))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)


def test_choosing_vllm_without_it_is_a_config_error(registry, no_vllm):
    with pytest.raises(ConfigError, match=r"generator 'vllm' needs vLLM, which is not installed: pip install vllm"):
        resolve(load_raw(None, ["generator.name=vllm"]), registry)


def test_the_cli_says_what_to_install_without_a_traceback(no_vllm, capsys):
    assert main(["config", "--set", "generator.name=vllm"]) == 2
    err = capsys.readouterr().err
    assert "pip install vllm" in err and "generator.name=hf-generate" in err
    assert "Traceback" not in err


def test_listing_plugins_does_not_import_vllm(registry, no_vllm):
    assert registry.get("edit_generator", "vllm").name == "vllm"
    assert "vllm" not in sys.modules


class FakeLLM:
    """Records what the generator asks of vLLM's LLM."""

    instances: list["FakeLLM"] = []

    def __init__(self, model, **kwargs):
        self.source, self.kwargs, self.loads, self.calls = model, kwargs, [], []
        runner = types.SimpleNamespace(model=types.SimpleNamespace(load_weights=lambda items: self.loads.append(dict(items))))
        self.llm_engine = types.SimpleNamespace(model_executor=types.SimpleNamespace(
            driver_worker=types.SimpleNamespace(worker=types.SimpleNamespace(model_runner=runner))))
        FakeLLM.instances.append(self)

    def generate(self, requests, params, use_tqdm=True):
        self.calls.append((requests, params))
        assert len(params) == len(requests)  # one SamplingParams per request, as vLLM accepts
        return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f" edit {i}.{j} ") for j in range(p.n)])
                for i, p in enumerate(params)]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    module.LLM = FakeLLM
    module.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)
    module.sampling_params = types.ModuleType("vllm.sampling_params")
    module.sampling_params.StructuredOutputsParams = lambda **kw: types.SimpleNamespace(**kw)
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", module.sampling_params)
    FakeLLM.instances = []
    return module


def test_generate_through_a_stand_in_for_vllm(fake_vllm, fresh_tiny):
    from seal_core.runtime.seeding import derive_seed
    from seal_plugins.vllm_generate import VLLMGenerate, VLLMOptions

    gen = VLLMGenerate().configured(VLLMOptions(temperature=0.7, max_new_tokens=9))
    torch.manual_seed(123)
    out = gen.generate(fresh_tiny, ["Passage A", "Passage B"], 3)
    assert out == [["edit 0.0", "edit 0.1", "edit 0.2"], ["edit 1.0", "edit 1.1", "edit 1.2"]]
    (llm,) = FakeLLM.instances
    requests, params = llm.calls[0]
    assert all(p.n == 3 and p.temperature == 0.7 and p.max_tokens == 9 for p in params)
    assert [p.seed for p in params] == [derive_seed(123, 0), derive_seed(123, 1)]  # the batch's seed, each request's own
    bos = fresh_tiny.tokenizer.bos_token_id
    assert all(r["prompt_token_ids"][:2] != [bos, bos] for r in requests)  # chat template only, no extra BOS
    assert llm.loads == []  # weights unchanged: nothing pushed

    greedy = gen.generate(fresh_tiny, ["Passage A"], 2, greedy=True)
    assert greedy == [["edit 0.0", "edit 0.0"]] and llm.calls[1][1][0].temperature == 0.0
    with torch.no_grad():
        next(fresh_tiny.model.parameters()).add_(1.0)  # an RL update
    gen.generate(fresh_tiny, ["Passage A"], 1)
    assert len(FakeLLM.instances) == 1 and len(llm.loads) == 1  # same engine, new weights pushed once


def test_a_domain_schema_goes_to_vllms_structured_outputs(fake_vllm, fresh_tiny):
    from seal_core.models.constrained import LAYOUT, run_schema
    from seal_domains.arc import ArcDomain
    from seal_plugins.vllm_generate import VLLMGenerate, VLLMOptions

    gen = VLLMGenerate().configured(VLLMOptions())
    schema = run_schema(ArcDomain(), gen)
    assert schema == ArcDomain().edit_schema()
    gen.generate(fresh_tiny, ["Task A"], 2, schema=schema)
    (llm,) = FakeLLM.instances
    assert llm.kwargs["structured_outputs_config"] == {"backend": "guidance"}  # llguidance, as hf-generate
    params = llm.calls[0][1][0]
    assert params.structured_outputs.json == {**schema, "x-guidance": LAYOUT}
    gen.generate(fresh_tiny, ["Task A"], 2)  # no schema: a free request
    assert not hasattr(llm.calls[1][1][0], "structured_outputs")


def test_vllm_before_0_11_gets_guided_decoding(fake_vllm, fresh_tiny):
    from seal_plugins.vllm_generate import VLLMGenerate, VLLMOptions

    del fake_vllm.sampling_params.StructuredOutputsParams
    fake_vllm.sampling_params.GuidedDecodingParams = lambda **kw: types.SimpleNamespace(**kw)
    VLLMGenerate().configured(VLLMOptions()).generate(fresh_tiny, ["Task A"], 1, schema={"type": "object"})
    (llm,) = FakeLLM.instances
    assert llm.kwargs["guided_decoding_backend"] == "guidance"
    assert llm.calls[0][1][0].guided_decoding.json["type"] == "object"


def test_vllm_with_constrained_off_writes_freely(fake_vllm, fresh_tiny):
    from seal_core.models.constrained import run_schema
    from seal_domains.arc import ArcDomain
    from seal_plugins.vllm_generate import VLLMGenerate, VLLMOptions

    gen = VLLMGenerate().configured(VLLMOptions(constrained=False))
    assert run_schema(ArcDomain(), gen) is None
    gen.generate(fresh_tiny, ["Task A"], 1)
    (llm,) = FakeLLM.instances
    assert "structured_outputs_config" not in llm.kwargs
