"""An example SEAL plugin: the ``lexicon`` domain and the ``exact-match`` evaluator.

The entry point in pyproject.toml names :mod:`seal_plugin_example.plugin`, which registers both.
"""

__version__ = "0.1.0"
