"""Third-party messages a user cannot act on, silenced one by one.

Each entry names the message, where it comes from and why nothing can be done about it in a run;
anything not listed here still reaches the console. ``seal-run`` applies them at start
(:func:`silence_third_parties`); ``SEAL_LOG_LEVEL=debug`` shows them again.
"""

from __future__ import annotations

import logging
import os
import re
import warnings

#: (warning category, message pattern, why it is silenced)
WARNINGS: tuple[tuple[type[Warning], str, str], ...] = (
    (FutureWarning, r"`gradient_checkpointing` is deprecated",
     "transformers 5 renamed the TrainingArguments field that TRL 1.x's SFTConfig still sets (rest-em's update)"),
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated",
     "transformers' own Trainer and peft call the old name (rest-em's update, seal-run ask on an adapter)"),
)

#: (logger name, message pattern, why it is silenced)
LOG_RECORDS: tuple[tuple[str, str, str], ...] = (
    ("DeepSpeed", r"Setting (accelerator to CPU|ds_accelerator to )",
     "DeepSpeed's device detection when transformers imports it on a machine without a GPU"),
)


class _Drop(logging.Filter):
    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def silence_third_parties() -> None:
    """Apply :data:`WARNINGS` and :data:`LOG_RECORDS` (nothing under ``SEAL_LOG_LEVEL=debug``)."""
    if os.environ.get("SEAL_LOG_LEVEL", "").strip().lower() == "debug":
        return
    for category, message, _ in WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name, pattern, _ in LOG_RECORDS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) and f.pattern.pattern == pattern for f in logger.filters):
            logger.addFilter(_Drop(pattern))
