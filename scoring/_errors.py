"""Named errors raised by scoring. Both derive from `models_py._errors.PropensityError`."""

from __future__ import annotations

from models_py._errors import InputDataError, PropensityError


class ModelIntegrityError(PropensityError):
    """ONNX bytes do not match their registered sha256, or their metadata is unusable."""


class FeatureError(InputDataError):
    """Feature values cannot be scored: null values, wrong lengths, wrong types, unknown model."""
