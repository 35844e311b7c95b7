"""What every layer of a process uses: durable file writes, logging, quieted third-party noise, seeds, Ctrl-C, local paths against hub ids, and the ranks of a multi-process run."""
