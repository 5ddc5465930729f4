"""Training, evaluation, ONNX export and the model registry, plus data loaders and the generator.

The public API is small; implementation lives in private modules.
"""

from __future__ import annotations

from models_py._errors import (
    ConfigError,
    DbtRunError,
    InputDataError,
    PropensityError,
    WarehouseError,
)
from models_py._settings import Settings

__all__ = [
    "ConfigError",
    "DbtRunError",
    "InputDataError",
    "PropensityError",
    "Settings",
    "WarehouseError",
]
