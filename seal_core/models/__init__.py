"""Models: loading a spec (embedded, tiny-random, random:<shape>, a hub id or a directory), copies and weights, generation, prompts, schema-constrained decoding, completion log-probs.

The names below are :mod:`seal_core.models.loading`'s, importable from here as before the
sub-packages existed (``from seal_core.models import load_model, plain_copy``).
"""

from seal_core.models.loading import (EMBEDDED_GGUF, EMBEDDED_PACKAGE, blank_model, broadcast_weights, cache_dir,
                                      check_spec, embedded_gguf_path, ensure_embedded_cache, ensure_tokenizer_cache,
                                      is_random_spec, is_tiny_spec, load_model, load_options, load_weights, plain_copy,
                                      plain_state_dict, random_shapes, resolve_device, resolve_dtype, shape_config,
                                      weights_sha)

__all__ = [
    "EMBEDDED_GGUF", "EMBEDDED_PACKAGE", "blank_model", "broadcast_weights", "cache_dir", "check_spec",
    "embedded_gguf_path", "ensure_embedded_cache", "ensure_tokenizer_cache", "is_random_spec", "is_tiny_spec",
    "load_model", "load_options", "load_weights", "plain_copy", "plain_state_dict", "random_shapes", "resolve_device",
    "resolve_dtype", "shape_config", "weights_sha",
]
