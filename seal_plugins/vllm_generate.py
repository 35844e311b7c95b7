"""Edit generator ``vllm``: self-edits sampled with vLLM's offline engine, for GPU users.

Optional: ``pip install vllm`` (not a dependency of this project; it needs a CUDA GPU). The
plugin module never imports vLLM: the config check only looks for it (choosing ``vllm`` without
it installed is a config error that says what to install, before any model loads), and the
engine is built on the first ``generate`` call.

How it follows the policy: vLLM holds its own copy of the weights. Before each ``generate`` the
generator compares a fingerprint of the policy's base weights (the sum of their norms, one pass
over GPU memory) with the one it last loaded, and after an RL update it pushes the new weights
into vLLM with the model's ``load_weights``. Prompts are formatted with the chat template and
passed as token ids (no second BOS), as ``hf-generate`` does; all ``generator.batch_size``
prompts the engine hands over go to vLLM at once, and a request's sampling seed is derived from
the torch seed the engine set for that batch and the request's place in it, so the self-edits
depend on the batch of tasks, which the engine fixes, not on what ran before.

A domain's self-edit schema (``generator.constrained``, on by default) goes to vLLM's structured
outputs (``StructuredOutputsParams(json=...)``; ``GuidedDecodingParams`` before vLLM 0.11) with
its ``guidance`` backend, which is llguidance, as ``hf-generate``'s, with the same JSON layout
(:func:`seal_core.models.constrained.laid_out`): the engine's log-probs, computed under the same schema
with the policy's own weights, replay the grammar vLLM sampled under.

The self-edits are plain strings: the RL algorithms re-tokenise them and compute their old
log-probs with the policy at temperature 1 (unlike ``hf-generate``'s, which are the sampler's
own, of the tokens drawn). Not wired yet: vLLM's ``SamplingParams(logprobs=0)`` returns the
sampled token's log-prob, but whether of the raw or of the processed (temperature, top-p, schema)
distribution depends on the vLLM version and its settings, and nothing of it can be tested on the
machines this project is built on.

Tested here only for the error path (no vLLM, no GPU on the machines this project is built on);
the engine-facing calls are checked against a stand-in for vLLM in tests/unit/test_vllm_generate.py.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import torch

from seal_core import EditGenerator, LoadedModel, TaskInstance, hookimpl
from seal_core.models.constrained import laid_out
from seal_core.models.generation import SamplingOptions
from seal_core.runtime.seeding import derive_seed
from seal_core.models.loading import is_tiny_spec, plain_state_dict
from seal_core.models.prompting import format_prompt


@dataclass
class VLLMOptions(SamplingOptions):  # temperature, top_p, max_new_tokens, constrained, as hf-generate
    batch_size: int = 256  # prompts per generate call: vLLM schedules them itself
    gpu_memory_utilization: float = 0.3  # vLLM's share of the GPU; the policy, the student and the update share the rest
    enforce_eager: bool = True  # no CUDA-graph capture: faster start, a little slower decoding

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.gpu_memory_utilization < 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1), got {self.gpu_memory_utilization}")
        if importlib.util.find_spec("vllm") is None:
            raise ValueError(
                "generator 'vllm' needs vLLM, which is not installed: pip install vllm (on a machine "
                "with a CUDA GPU), or use generator.name=hf-generate"
            )


def _new_api() -> bool:
    """vLLM 0.11 or later: ``StructuredOutputsParams`` (earlier: ``GuidedDecodingParams``)."""
    from vllm import sampling_params

    return hasattr(sampling_params, "StructuredOutputsParams")


def structured_backend() -> dict[str, Any]:
    """``LLM(...)`` keywords that make llguidance (vLLM's ``guidance``) the structured-output backend."""
    return {"structured_outputs_config": {"backend": "guidance"}} if _new_api() else {"guided_decoding_backend": "guidance"}


def structured_params(schema: dict[str, Any]) -> dict[str, Any]:
    """``SamplingParams(...)`` keywords that constrain a request to the JSON ``schema``."""
    from vllm import sampling_params

    if _new_api():
        return {"structured_outputs": sampling_params.StructuredOutputsParams(json=laid_out(schema))}
    return {"guided_decoding": sampling_params.GuidedDecodingParams(json=laid_out(schema))}


def fingerprint(model: Any) -> float:
    """A number that changes when the base weights change (sum of their norms)."""
    with torch.no_grad():
        return float(sum(t.float().norm() for t in plain_state_dict(model).values()))


class VLLMGenerate(EditGenerator):
    name = "vllm"
    Options = VLLMOptions

    def _engine(self, model: LoadedModel) -> Any:
        """The vLLM engine for ``model``, built once; its weights brought up to date."""
        state = self.__dict__.setdefault("_state", {})
        if state.get("model") is not model.model:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the model in this process: its weights can be set
            from vllm import LLM

            opts = self.options
            source = model.spec
            if model.spec == "embedded" or is_tiny_spec(model.spec):  # no directory vLLM could read: write one
                state["dir"] = tempfile.TemporaryDirectory(prefix="seal-vllm-")  # removed with the engine
                model.model.save_pretrained(state["dir"].name)
                model.tokenizer.save_pretrained(state["dir"].name)
                source = state["dir"].name
            dtype = str(next(model.model.parameters()).dtype).removeprefix("torch.")
            state.update(model=model.model, version=None, llm=LLM(
                model=source, dtype=dtype, gpu_memory_utilization=opts.gpu_memory_utilization,
                enforce_eager=opts.enforce_eager, seed=0, **(structured_backend() if opts.constrained else {})))
        version = fingerprint(model.model)
        if state["version"] is not None and version != state["version"]:
            worker = state["llm"].llm_engine.model_executor.driver_worker
            worker = getattr(worker, "worker", worker)  # vLLM's V1 engine wraps its worker once more
            worker.model_runner.model.load_weights(plain_state_dict(model.model).items())
        state["version"] = version
        return state["llm"]

    def constrained_by(self, schema: dict[str, Any]) -> dict[str, Any] | None:
        return schema if self.options.constrained else None

    def prompts_per_call(self) -> int:
        return self.options.batch_size

    def generate(self, model: LoadedModel, prompts: list[str], k: int, *, greedy: bool = False,
                 tasks: list[TaskInstance] | None = None, schema: dict[str, Any] | None = None) -> list[list[str]]:
        from vllm import SamplingParams

        opts = self.options
        llm = self._engine(model)
        n = 1 if greedy else k
        batch_seed = torch.initial_seed()  # the engine's seed of this batch of prompts
        params = [SamplingParams(n=n, temperature=0.0 if greedy else opts.temperature,
                                 top_p=1.0 if greedy else opts.top_p, max_tokens=opts.max_new_tokens,
                                 seed=derive_seed(batch_seed, i), **(structured_params(schema) if schema is not None else {}))
                  for i in range(len(prompts))]  # one seed per request: its place in the batch
        requests = [{"prompt_token_ids": model.tokenizer(format_prompt(model.tokenizer, p),
                                                         add_special_tokens=False)["input_ids"]} for p in prompts]
        outputs = llm.generate(requests, params, use_tqdm=False)
        grouped = [[o.text.strip() for o in out.outputs] for out in outputs]
        return [g * k if greedy else g for g in grouped]


@hookimpl
def seal_register_edit_generators(register):
    register(VLLMGenerate())
