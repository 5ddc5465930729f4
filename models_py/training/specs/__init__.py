"""Packaged model specs (YAML). `models_py._specs.DEFAULT_SPEC_PATH` points at default.yml."""
