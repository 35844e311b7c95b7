"""Edit generator ``hf-generate``: k self-edits for each of several prompts from one batched
``generate`` call.

Each prompt is wrapped in the model's chat template (:func:`seal_core.models.prompting.format_prompt`)
and sampled ``k`` times with ``num_return_sequences=k``; greedy mode decodes once per prompt. The
engine hands it ``generator.batch_size`` prompts per call (the prompts are left-padded to one
length; the sampled tokens of one prompt then depend on the batch it is in, which the engine
keeps fixed: a round's tasks in order, cut into batches).

Where the domain declares a self-edit schema and ``generator.constrained`` is on (the default),
each step samples from the model's distribution restricted to the tokens the schema allows
(:mod:`seal_core.models.constrained`, llguidance), so every self-edit parses; greedy mode takes the most
likely allowed token.

Each sampled self-edit is a :class:`seal_core.SampledEdit`: besides its text (stripped of
surrounding whitespace) it carries the token ids the sampler drew and the log-probability of each
under the distribution it was drawn from (the processed logits: the schema's mask, temperature,
top-k and top-p, renormalised; :func:`seal_core.models.generation.generate_samples`). The RL algorithms
take those as the old policy's log-probs. Greedy self-edits are plain strings. top-k is the
model's generation config's, or transformers' default of 50 where it sets none: ``generate``
applies it unasked, and the stored log-probs include it.
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import Any

from seal_core import EditGenerator, LoadedModel, TaskInstance, hookimpl
from seal_core.models.constrained import constraint_for
from seal_core.models.generation import SamplingOptions, generate_samples
from seal_core.models.prompting import format_prompt
from seal_core.api.types import SampledEdit


@dataclass
class HFGenerateOptions(SamplingOptions):
    """temperature, top_p, max_new_tokens, constrained, batch_size (see :class:`seal_core.models.generation.SamplingOptions`)."""


class HFGenerate(EditGenerator):
    name = "hf-generate"
    Options = HFGenerateOptions

    def constrained_by(self, schema: dict[str, Any]) -> dict[str, Any] | None:
        return schema if self.options.constrained else None

    def prompts_per_call(self) -> int:
        return self.options.batch_size

    def generate(self, model: LoadedModel, prompts: list[str], k: int, *, greedy: bool = False,
                 tasks: list[TaskInstance] | None = None, schema: dict[str, Any] | None = None) -> list[list[str]]:
        opts = self.options
        inputs = [format_prompt(model.tokenizer, p) for p in prompts]
        n = 1 if greedy else k
        processor = constraint_for(schema, model.tokenizer).processor() if schema is not None else None
        flat = generate_samples(
            model.model, model.tokenizer, inputs, max_new_tokens=opts.max_new_tokens,
            do_sample=not greedy, temperature=opts.temperature, top_p=opts.top_p, num_return_sequences=n,
            logits_processor=processor, scores=not greedy,
        )
        edits = [s.text.strip() if greedy else SampledEdit(s.text.strip(), s.token_ids, s.logprobs) for s in flat]
        grouped = [edits[i * n:(i + 1) * n] for i in range(len(prompts))]
        return [g * k if greedy else g for g in grouped]


@hookimpl
def seal_register_edit_generators(register):
    register(HFGenerate())
