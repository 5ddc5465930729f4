"""``ml.retrain_decisions``: one row per (retrain run, spec, product group) saying whether the
group was retrained and why (`propensity retrain`, docs/operations.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from models_py.registry._registry import _insert
from models_py.registry._tables import ml_table

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


def list_decisions(con, *, product_group: str | None = None) -> list[dict[str, Any]]:
    """Every recorded decision, newest first."""
    cur = con.execute(
        f"select * from {ml_table('retrain_decisions')} "
        "where ? is null or product_group = ? order by decided_at desc, product_group",
        [product_group, product_group],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
