"""Scoring a model on a task without its context: question answering and answer likelihood, shared by the evaluator plugins."""
