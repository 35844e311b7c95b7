"""How a prompt becomes model input: one function, so generation and RL training agree."""

from __future__ import annotations

from typing import Any

#: set on a tokenizer (by ``model.chat_template=none``) to give its model plain-text prompts
PLAIN_PROMPTS = "seal_plain_prompts"


def use_plain_prompts(tokenizer: Any) -> None:
    """From now on :func:`format_prompt` gives ``tokenizer``'s model plain text, not its chat
    template (``model.chat_template=none``: a base model, or a user who opts out)."""
    setattr(tokenizer, PLAIN_PROMPTS, True)


def format_prompt(tokenizer: Any, prompt: str) -> str:
    """``prompt`` as a user turn in the tokenizer's chat template, ready for the answer.

    Tokenizers without a chat template, or marked by :func:`use_plain_prompts`, get the prompt
    followed by a newline: plain text, as the SEAL reference code gives a base model
    (``instruct_model=False``).
    """
    if getattr(tokenizer, "chat_template", None) and not getattr(tokenizer, PLAIN_PROMPTS, False):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
    return prompt + "\n"
