"""The run directory: its store of rows, the results table and plot, saved policies, resume points, rollout reports."""
