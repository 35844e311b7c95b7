"""``seal-run ask MODEL QUESTION``: ask a saved model a question, without any context.

``MODEL`` is a model directory (a run's ``checkpoints/policy``, ``seal-run adapt --merge``'s
``OUT/model``) or a peft adapter directory (``seal-run adapt``'s ``OUT/adapters/NAME``, loaded on
top of the base model its ``adapter_config.json`` names). The question is asked the way the ``qa``
evaluator asks it (its prompt, in the model's chat template unless ``model.chat_template=none``),
and answered greedily: what the adapted model now knows.
"""

from __future__ import annotations

import json
from pathlib import Path

from seal_core.api.errors import SealError
from seal_core.models.generation import generate_texts
from seal_core.models.loading import load_model
from seal_core.models.prompting import format_prompt
from seal_core.runtime.paths import not_found
from seal_core.evaluation.qa import QUESTION_PROMPT
from seal_core.api.types import LoadedModel


def check_model(path: str) -> None:
    """Refuse, before anything loads, a ``path`` that is neither a model nor an adapter directory
    (nor a hub id while the hub is on)."""
    choices = ("Pass a model directory (a run's checkpoints/policy, seal-run adapt's OUT/model), a peft adapter "
               "directory (OUT/adapters/NAME) or a hub model id (with the hub on).")
    problem = not_found(path, "seal-run ask MODEL", choices)
    if problem:
        raise SealError(problem)
    folder = Path(path).expanduser()
    if folder.is_dir() and not (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
        raise SealError(f"seal-run ask MODEL = {path!r}: that directory holds neither a model (config.json) nor a "
                        f"peft adapter (adapter_config.json). {choices}")


def load_for_asking(path: str, device: str = "auto", chat_template: str = "auto") -> LoadedModel:
    """A model directory, or a peft adapter directory on top of its base model (``chat_template``:
    as ``model.chat_template``; ``none`` for a model trained on plain-text prompts)."""
    check_model(path)
    folder = Path(path).expanduser()
    adapter_config = folder / "adapter_config.json"
    if not adapter_config.is_file():
        return load_model(path, device=device, chat_template=chat_template)
    base = json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise SealError(f"{adapter_config} names no base_model_name_or_path; load the adapter in Python with "
                        "PeftModel.from_pretrained(base_model, DIR).")
    from peft import PeftModel

    loaded = load_model(base, device=device, chat_template=chat_template)
    loaded.model = PeftModel.from_pretrained(loaded.model, str(folder)).eval()
    return loaded


def ask(loaded: LoadedModel, question: str, max_new_tokens: int = 32) -> str:
    """The first line of the model's greedy answer to ``question`` (the ``qa`` evaluator's prompt)."""
    prompt = format_prompt(loaded.tokenizer, QUESTION_PROMPT.format(question=question))
    answer = generate_texts(loaded.model, loaded.tokenizer, [prompt], max_new_tokens=max_new_tokens, first_line=True)[0]
    return (answer.strip().splitlines() or [""])[0].strip()  # the first line, as the evaluator grades it
