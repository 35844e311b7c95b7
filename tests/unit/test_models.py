"""seal_core.models.loading: model specs, loading, and the weight plumbing (on tiny-random)."""

from __future__ import annotations

import pytest
import torch

from seal_core.api.errors import ConfigError, SealError
from seal_core.models.loading import (
    TINY_DEFAULTS,
    is_tiny_spec,
    load_model,
    load_weights,
    plain_copy,
    plain_state_dict,
    resolve_device,
    resolve_dtype,
    weights_sha,
)
from seal_core.api.types import LoadedModel


def _equal_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- loading ---------------------------------------------------------------------------------


def test_tiny_random_loads_in_eval_mode(tiny):
    assert isinstance(tiny, LoadedModel)
    assert tiny.spec == "tiny-random"
    assert tiny.model.training is False
    assert not any(m.training for m in tiny.model.modules())
    assert tiny.device.type == "cpu"
    assert next(tiny.model.parameters()).dtype == torch.float32
    cfg = tiny.model.config
    assert cfg.hidden_size == TINY_DEFAULTS["hidden"]
    assert cfg.num_hidden_layers == TINY_DEFAULTS["layers"]
    assert cfg.vocab_size == len(tiny.tokenizer)
    assert tiny.tokenizer.pad_token is not None


def test_tiny_random_forward_gives_vocab_logits(tiny, tiny_logits):
    logits = tiny_logits(tiny)
    assert logits.shape[0] == 1 and logits.shape[-1] == len(tiny.tokenizer)
    assert torch.isfinite(logits).all()


def test_tiny_random_is_deterministic(tiny, fresh_tiny):
    assert tiny.model is not fresh_tiny.model
    assert _equal_state(plain_state_dict(tiny.model), plain_state_dict(fresh_tiny.model))
    assert weights_sha(tiny.model) == weights_sha(fresh_tiny.model)


def test_tiny_random_does_not_touch_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_model("tiny-random:hidden=32,layers=1")
    assert torch.equal(torch.rand(3), expected)


def test_tiny_random_spec_parameters():
    loaded = load_model("tiny-random:hidden=32,layers=1")
    cfg = loaded.model.config
    assert cfg.hidden_size == 32
    assert cfg.num_hidden_layers == 1
    assert len(loaded.model.model.layers) == 1
    assert cfg.intermediate_size == TINY_DEFAULTS["intermediate"]
    assert loaded.spec == "tiny-random:hidden=32,layers=1"
    # a different architecture has different weights
    assert weights_sha(loaded.model) != weights_sha(load_model("tiny-random").model)


@pytest.mark.parametrize(
    "spec",
    ["tiny-random:foo=1", "tiny-random:hidden=0", "tiny-random:hidden=-4", "tiny-random:hidden=abc",
     "tiny-random:hidden", "tiny-random:layers=1.5", "tiny-random:HIDDEN=32"],
)
def test_bad_tiny_spec_raises_config_error(spec):
    with pytest.raises(ConfigError, match="not allowed"):
        load_model(spec)


@pytest.mark.parametrize("spec", ["tiny-random:heads=3", "tiny-random:kv_heads=3"])
def test_inconsistent_tiny_spec_raises_config_error(spec):
    with pytest.raises(ConfigError):
        loaded = load_model(spec)
        enc = loaded.tokenizer(["hello world"], return_tensors="pt")
        loaded.model(**enc)


def test_is_tiny_spec():
    assert is_tiny_spec("tiny-random")
    assert is_tiny_spec("tiny-random:hidden=8")
    assert not is_tiny_spec("tiny-randomish")
    assert not is_tiny_spec("embedded")


def test_local_path_without_config_json_raises_seal_error(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(SealError, match="config.json"):
        load_model(str(tmp_path))


def test_unreachable_hub_id_raises_seal_error():
    # HF_HUB_OFFLINE=1 in the test command: nothing is fetched, and the error is a SealError
    with pytest.raises(SealError, match="no-such-org/no-such-model"):
        load_model("no-such-org/no-such-model")


def test_saved_model_loads_by_path(tiny, tmp_path, tiny_logits):
    tiny.model.save_pretrained(tmp_path, safe_serialization=True)
    tiny.tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    assert loaded.spec == str(tmp_path)
    assert loaded.model is not tiny.model
    assert loaded.model.training is False
    assert weights_sha(loaded.model) == weights_sha(tiny.model)
    assert torch.equal(tiny_logits(loaded), tiny_logits(tiny))


# -- devices and dtypes -----------------------------------------------------------------------


def test_resolve_device_cuda_without_cuda_raises():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ConfigError):
        resolve_device("cuda:0")


def test_resolve_device_values():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="is not allowed: use auto, cpu, cuda"):
        resolve_device("no-such-device")


def test_resolve_dtype():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) is torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) is torch.bfloat16
    assert resolve_dtype("bfloat16", cpu) is torch.bfloat16


def test_load_with_dtype_bfloat16():
    loaded = load_model("tiny-random:hidden=32,layers=1", dtype="bfloat16")
    assert next(loaded.model.parameters()).dtype == torch.bfloat16


# -- weight plumbing --------------------------------------------------------------------------


def test_plain_copy_is_a_separate_model_with_equal_weights(tiny, tiny_logits):
    copy = plain_copy(tiny)
    assert copy.model is not tiny.model
    assert copy.tokenizer is tiny.tokenizer
    assert copy.spec == tiny.spec
    original = plain_state_dict(tiny.model)
    copied = plain_state_dict(copy.model)
    assert _equal_state(original, copied)
    assert all(copied[k].data_ptr() != original[k].data_ptr() for k in copied)
    assert weights_sha(copy.model) == weights_sha(tiny.model)
    copy.model.eval()
    assert torch.equal(tiny_logits(copy), tiny_logits(tiny))
    # changing the copy leaves the original alone
    sha = weights_sha(tiny.model)
    with torch.no_grad():
        next(copy.model.parameters()).add_(1.0)
    assert weights_sha(tiny.model) == sha
    assert weights_sha(copy.model) != sha


def test_load_weights_round_trip(fresh_tiny, tiny):
    sha = weights_sha(fresh_tiny.model)
    model_obj = fresh_tiny.model
    modified = {k: v.clone() for k, v in plain_state_dict(fresh_tiny.model).items()}
    key = "model.layers.0.self_attn.q_proj.weight"
    modified[key] += 0.5
    load_weights(fresh_tiny, modified)
    assert fresh_tiny.model is model_obj
    assert weights_sha(fresh_tiny.model) != sha
    assert torch.equal(plain_state_dict(fresh_tiny.model)[key], modified[key])
    # and back again
    load_weights(fresh_tiny, plain_state_dict(tiny.model))
    assert weights_sha(fresh_tiny.model) == sha


def test_load_weights_rejects_unknown_keys(fresh_tiny):
    with pytest.raises(RuntimeError, match="unknown parameter"):
        load_weights(fresh_tiny, {"no.such.weight": torch.zeros(1)})


def test_weights_sha_is_short_and_sensitive(tiny):
    sha = weights_sha(tiny.model)
    assert len(sha) == 12 and all(c in "0123456789abcdef" for c in sha)
    assert len(weights_sha(tiny.model, length=20)) == 20
    assert weights_sha(tiny.model, length=20).startswith(sha)


def test_plain_state_dict_strips_lora(fresh_tiny, tiny, tiny_logits):
    from seal_plugins.lora_updater import LoraOptions, LoraUpdater

    before = plain_state_dict(tiny.model)
    updater = LoraUpdater().configured(LoraOptions(epochs=1, r=4))
    updater.adapt(fresh_tiny, ["The bell of Thrushby is named Old Margery."])
    names = list(fresh_tiny.model.state_dict())
    assert any("lora_" in n for n in names) and any(".base_layer." in n for n in names)

    plain = plain_state_dict(fresh_tiny.model)
    assert not any("lora_" in k for k in plain)
    assert not any(".base_layer." in k for k in plain)
    assert _equal_state(plain, before)  # the adapters, not the base weights, were trained
    assert weights_sha(fresh_tiny.model) == weights_sha(tiny.model)

    # a plain copy of an adapted model is the base model
    copy = plain_copy(fresh_tiny)
    assert not any("lora_" in n for n in copy.model.state_dict())
    copy.model.eval()
    assert torch.equal(tiny_logits(copy), tiny_logits(tiny))
    updater.reset(fresh_tiny)


@pytest.mark.parametrize("device", ["meta", "mps", "xpu"])
def test_resolve_device_rejects_other_device_types(device):
    with pytest.raises(ConfigError, match="model.device"):
        resolve_device(device)


# --- random:<shape>: real architectures' shapes, random weights ------------------------------


def test_random_shapes_are_the_config_files():
    from seal_core.models.loading import random_shapes

    assert {"qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b", "llama-3.2-1b", "qwen2-tiny"} <= set(random_shapes())


def test_random_shape_unknown_name_lists_the_shapes():
    from seal_core.models.loading import check_spec

    with pytest.raises(ConfigError, match=r"no shape 'qwen9'.*qwen2\.5-0\.5b"):
        check_spec("random:qwen9", "model.policy")
    with pytest.raises(ConfigError, match="no shape ''"):
        check_spec("random:", "model.policy")
    check_spec("random:qwen2.5-1.5b", "model.policy")  # validated without building anything


@pytest.mark.parametrize("shape", ["qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b", "llama-3.2-1b"])
def test_random_shape_configs_have_the_real_parameter_counts(shape):
    """The shape files say what the real models have; counted on the meta device (no memory)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from seal_core.models.loading import shape_config

    expected = {"qwen2.5-0.5b": 494_032_768, "qwen2.5-1.5b": 1_543_714_304, "qwen2.5-7b": 7_615_616_512,
                "llama-3.2-1b": 1_235_814_400}[shape]
    values = shape_config(f"random:{shape}")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(values.pop("model_type"), **values))
    assert sum(p.numel() for p in model.parameters()) == expected


def test_random_shape_is_seeded_and_keeps_its_vocabulary():
    from seal_core.models.loading import load_model

    a, b = load_model("random:qwen2-tiny"), load_model("random:qwen2-tiny")
    assert type(a.model).__name__ == "Qwen2ForCausalLM"
    assert all(torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters()))
    assert a.model.config.vocab_size == 50000 > len(a.tokenizer)  # ids past the tokenizer decode to nothing
    assert a.model.config.eos_token_id == a.tokenizer.eos_token_id


def test_plain_copy_is_built_without_init_and_computes_the_same(fresh_tiny, tiny_logits):
    from seal_core.models.loading import plain_copy

    copy = plain_copy(fresh_tiny)
    assert copy.model is not fresh_tiny.model
    assert copy.model.get_output_embeddings().weight is copy.model.get_input_embeddings().weight  # tied again
    assert torch.equal(tiny_logits(copy), tiny_logits(fresh_tiny))
