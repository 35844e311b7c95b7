"""Edit generator ``hf-generate``: k self-edits per prompt from one batched ``generate`` call.

Each prompt is wrapped in the model's chat template (:func:`seal_core.prompting.format_prompt`)
and sampled ``k`` times with ``num_return_sequences=k``; greedy mode decodes once per prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from seal_core import EditGenerator, LoadedModel, TaskInstance, hookimpl
from seal_core.generation import SamplingOptions, generate_texts
from seal_core.prompting import format_prompt


@dataclass
class HFGenerateOptions(SamplingOptions):
    """temperature, top_p, max_new_tokens (see :class:`seal_core.generation.SamplingOptions`)."""


class HFGenerate(EditGenerator):
    name = "hf-generate"
    Options = HFGenerateOptions

    def generate(self, model: LoadedModel, prompts: list[str], k: int, *, greedy: bool = False,
                 tasks: list[TaskInstance] | None = None) -> list[list[str]]:
        opts = self.options
        inputs = [format_prompt(model.tokenizer, p) for p in prompts]
        n = 1 if greedy else k
        flat = generate_texts(
            model.model, model.tokenizer, inputs, max_new_tokens=opts.max_new_tokens,
            do_sample=not greedy, temperature=opts.temperature, top_p=opts.top_p, num_return_sequences=n,
        )
        grouped = [[t.strip() for t in flat[i * n:(i + 1) * n]] for i in range(len(prompts))]
        return [g * k if greedy else g for g in grouped]


@hookimpl
def seal_register_edit_generators(register):
    register(HFGenerate())
