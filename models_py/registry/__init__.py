"""The model registry: the only code that reads and writes the `ml` tables."""
