"""How a prompt becomes model input: one function, so generation and RL training agree."""

from __future__ import annotations

from typing import Any


def format_prompt(tokenizer: Any, prompt: str) -> str:
    """``prompt`` as a user turn in the tokenizer's chat template, ready for the answer.

    Tokenizers without a chat template get the prompt followed by a newline.
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
    return prompt + "\n"
