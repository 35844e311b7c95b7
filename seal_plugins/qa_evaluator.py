"""Evaluators ``qa`` and ``answer-likelihood``: answer each question without the passage and grade
against the gold answers (``qa``), or read the gold answers' likelihood (``answer-likelihood``).

Both live in the core (:class:`seal_core.evaluation.qa.QAEvaluator`, which ``llm-judge`` builds on, and
:class:`seal_core.evaluation.answer_likelihood.AnswerLikelihoodEvaluator`); this plugin registers them.
"""

from __future__ import annotations

from seal_core import hookimpl
from seal_core.evaluation.answer_likelihood import AnswerLikelihoodEvaluator
from seal_core.evaluation.qa import QAEvaluator


@hookimpl
def seal_register_evaluators(register):
    register(QAEvaluator())
    register(AnswerLikelihoodEvaluator())
