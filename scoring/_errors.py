"""Named errors raised by scoring.

`scoring` is engine-agnostic and imports nothing from `models_py`: a caller that reports known
failures as messages (the `propensity` CLI) catches `ScoringError` next to its own errors.
"""

from __future__ import annotations


class ScoringError(Exception):
    """Base class: a known scoring failure with a message meant for people."""

    exit_code = 1


class ModelIntegrityError(ScoringError):
    """ONNX bytes do not match their registered sha256, or their metadata is unusable."""


class FeatureError(ScoringError):
    """Feature values cannot be scored: null values, wrong lengths, wrong types, unknown model."""


class PluginConfigError(ScoringError):
    """The dbt plugin's configuration (profiles.yml) is invalid."""
