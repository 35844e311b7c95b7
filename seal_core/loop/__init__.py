"""One SEAL run: its configuration, the components it uses, the scoring of self-edits, the engine's two loops, the held-out experiments."""
