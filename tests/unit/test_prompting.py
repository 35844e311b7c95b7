"""seal_core.models.prompting.format_prompt: the one place a prompt becomes model input."""

from __future__ import annotations

from seal_core.models.prompting import format_prompt


class _Plain:
    chat_template = None


def test_without_chat_template_the_prompt_ends_with_a_newline():
    assert format_prompt(_Plain(), "Write notes.") == "Write notes.\n"


def test_with_chat_template_the_prompt_is_a_user_turn(tiny):
    text = format_prompt(tiny.tokenizer, "Write notes about Velmora.")
    assert "<|im_start|>user\nWrite notes about Velmora.<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_chat_template_none_gives_plain_text_even_with_a_template():
    """model.chat_template=none: a base model's prompts (the reference code's instruct_model=False)."""
    from seal_core.models.loading import load_model

    loaded = load_model("tiny-random", chat_template="none")
    assert loaded.tokenizer.chat_template  # SmolLM2's tokenizer has one; it is not used
    assert format_prompt(loaded.tokenizer, "Write notes.") == "Write notes.\n"


def test_chat_template_is_a_checked_config_key(registry):
    import pytest

    from seal_core.loop.config import load_raw, resolve
    from seal_core.api.errors import ConfigError
    from seal_core.models.loading import load_options

    config = resolve(load_raw(None, ["model.chat_template=none"]), registry)
    assert load_options(config.model)["chat_template"] == "none"
    assert resolve(load_raw(None, []), registry).model.chat_template == "auto"
    with pytest.raises(ConfigError, match="model.chat_template"):
        resolve(load_raw(None, ["model.chat_template=off"]), registry)
