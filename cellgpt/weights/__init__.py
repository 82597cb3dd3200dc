"""Model parameters as CSV tables: validation, the binary cache, importers and checkpoints."""
