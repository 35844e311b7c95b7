"""The module that the ``seal`` entry point names: it registers this distribution's components."""

from seal_core import hookimpl
from seal_plugin_example.exact_match import ExactMatchEvaluator
from seal_plugin_example.lexicon import LexiconDomain


@hookimpl
def seal_register_domains(register):
    register(LexiconDomain())


@hookimpl
def seal_register_evaluators(register):
    register(ExactMatchEvaluator())
