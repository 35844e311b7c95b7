"""The run directory: its store of rows, the results table and plot, saved policies, checksummed resume points, the lock that keeps one writer, rollout reports."""
