"""Engine-agnostic batch inference: verified ONNX models scored with onnxruntime over Arrow.

Used by the dbt scoring model through DuckDB UDFs (`scoring.dbt_plugin`), by dbt Python models
streaming record batches, and by a Spark ``mapInArrow`` function. No pickle is ever loaded.
"""

from __future__ import annotations

from scoring._arrow import features_to_matrix
from scoring._core import (
    ScoringModel,
    get_model,
    load_model,
    score_arrow,
    score_batch,
    score_record_batches,
)
from scoring._errors import FeatureError, ModelIntegrityError, PluginConfigError, ScoringError
from scoring._types import FEATURE_TYPES, is_feature_type
from scoring._udf import register_udfs

__all__ = [
    "FEATURE_TYPES",
    "FeatureError",
    "ModelIntegrityError",
    "PluginConfigError",
    "ScoringError",
    "ScoringModel",
    "features_to_matrix",
    "get_model",
    "is_feature_type",
    "load_model",
    "register_udfs",
    "score_arrow",
    "score_batch",
    "score_record_batches",
]
