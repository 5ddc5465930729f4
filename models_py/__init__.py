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

#: Training, export and registry names, imported on first use so that `import models_py` (and
#: every CLI command) does not pay for scikit-learn and onnx.
_LAZY = {
    "ModelSpec": "models_py.training._specs",
    "load_specs": "models_py.training._specs",
    "parse_specs": "models_py.training._specs",
    "train": "models_py.training._train",
    "plan_training": "models_py.training._train",
    "TrainReport": "models_py.training._train",
    "TrainProgress": "models_py.training._train",
    "ModelResult": "models_py.training._train",
    "temporal_folds": "models_py.training._candidates",
    "export_onnx": "models_py.training._export",
    "check_parity": "models_py.training._export",
    "feature_hash": "models_py.training._export",
    "read_metadata": "models_py.training._export",
    "ParityError": "models_py.training._export",
    "TARGET_OPSET": "models_py.training._export",
    "list_models": "models_py.registry._registry",
    "promote_model": "models_py.registry._registry",
    "rollback_champion": "models_py.registry._registry",
    "RegistryError": "models_py.registry._registry",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'models_py' has no attribute {name!r}")


__all__ = [
    "TARGET_OPSET",
    "ConfigError",
    "DbtRunError",
    "InputDataError",
    "ModelResult",
    "ModelSpec",
    "ParityError",
    "PropensityError",
    "RegistryError",
    "Settings",
    "TrainProgress",
    "TrainReport",
    "WarehouseError",
    "check_parity",
    "export_onnx",
    "feature_hash",
    "list_models",
    "load_specs",
    "parse_specs",
    "plan_training",
    "promote_model",
    "read_metadata",
    "rollback_champion",
    "temporal_folds",
    "train",
]
