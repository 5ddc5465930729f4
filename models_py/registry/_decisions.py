"""``ml.retrain_decisions``: one row per (retrain run, spec, product group) saying whether the
group was retrained and why (`propensity retrain`, docs/operations.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from models_py.registry._registry import _insert

DECISION_COLUMNS = (
    "run_id",
    "decided_at",
    "as_of_date",
    "policy",
    "spec_name",
    "product_group",
    "champion_model_id",
    "model_age_days",
    "realised_roc_auc",
    "estimated_roc_auc",
    "reference_roc_auc",
    "auc_drop",
    "drift_alerts",
    "drifted_features",
    "decision",
    "reasons",
    "new_model_id",
    "promoted",
)


def record_decisions(con, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append decision rows (in the caller's transaction)."""
    for row in rows:
        extra = set(row) - set(DECISION_COLUMNS)
        if extra:
            raise ValueError(f"unknown retrain_decisions columns: {sorted(extra)}")
    _insert(con, "retrain_decisions", rows)
