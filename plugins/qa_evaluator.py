"""Evaluator ``qa``: answer each question without the passage, grade against the gold answers.

The evaluator itself is :class:`seal_core.qa.QAEvaluator` (in the core, because ``llm-judge``
builds on it); this plugin registers it.
"""

from __future__ import annotations

from seal_core import hookimpl
from seal_core.qa import QAEvaluator


@hookimpl
def seal_register_evaluators(register):
    register(QAEvaluator())
