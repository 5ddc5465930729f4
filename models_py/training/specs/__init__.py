"""Packaged model specs (YAML); `models_py.training._specs.DEFAULT_SPEC_PATH` is default.yml."""
