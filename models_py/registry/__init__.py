"""The model registry: the only code that reads and writes the `ml` tables (schema `SCHEMA`)."""

from __future__ import annotations

from models_py.registry._registry import (
    Evaluation,
    ModelRecord,
    RegistryError,
    alias_history,
    get_alias,
    list_models,
    model_row,
    promote_model,
    register_model,
    rollback_champion,
)
from models_py.registry._tables import (
    ALIASES,
    ML_TABLES,
    SCHEMA,
    ensure_ml_tables,
    ml_table,
    require_ml_tables,
)

__all__ = [
    "ALIASES",
    "ML_TABLES",
    "SCHEMA",
    "Evaluation",
    "ModelRecord",
    "RegistryError",
    "alias_history",
    "ensure_ml_tables",
    "get_alias",
    "list_models",
    "ml_table",
    "model_row",
    "promote_model",
    "register_model",
    "require_ml_tables",
    "rollback_champion",
]
