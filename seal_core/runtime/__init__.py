"""What every layer of a process uses: durable file writes, logging, seeds, Ctrl-C, and the ranks of a multi-process run."""
