"""Several runs compared: variants at several seeds, seal-run compare and baselines, confidence intervals."""
