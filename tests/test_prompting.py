"""seal_core.prompting.format_prompt: the one place a prompt becomes model input."""

from __future__ import annotations

from seal_core.prompting import format_prompt


class _Plain:
    chat_template = None


def test_without_chat_template_the_prompt_ends_with_a_newline():
    assert format_prompt(_Plain(), "Write notes.") == "Write notes.\n"


def test_with_chat_template_the_prompt_is_a_user_turn(tiny):
    text = format_prompt(tiny.tokenizer, "Write notes about Velmora.")
    assert "<|im_start|>user\nWrite notes about Velmora.<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
