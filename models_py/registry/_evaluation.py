"""Reads of the registry's evaluation tables for reports: champions with their test metrics,
curves, lift, calibration and feature importance of one model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from models_py._errors import ConfigError
from models_py._warehouse import relation_columns
from models_py.registry._tables import SCHEMA, ml_table, present_tables


def _rows(con, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cur = con.execute(sql, list(params))
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def has_registry(con) -> bool:
    """Whether the alias table exists (a warehouse trained at least once, or built by dbt)."""
    return "model_aliases" in present_tables(con)


def champions_with_test_metrics(con) -> list[dict[str, Any]]:
    """Every champion with its registry row's summary and its test-split metrics."""
    # Registries created before the observable oracle existed lack its column.
    observable = (
        "mm.observable_oracle_roc_auc"
        if "observable_oracle_roc_auc" in relation_columns(con, f"{SCHEMA}.model_metrics")
        else "null"
    )
    return _rows(
        con,
        f"""
        select a.product_group, a.model_id, m.algorithm, m.trained_at, m.test_cutoffs,
            mm.examples, mm.positives, mm.base_rate, mm.roc_auc,
            {observable} as observable_oracle_roc_auc, mm.oracle_roc_auc, mm.pr_auc,
            mm.brier, mm.log_loss, mm.precision, mm.recall, mm.f1, mm.threshold
        from {ml_table("model_aliases")} as a
        join {ml_table("model_registry")} as m using (model_id)
        left join {ml_table("model_metrics")} as mm
            on mm.model_id = a.model_id and mm.split = 'test'
        where a.alias = 'champion'
        order by a.product_group
        """,
    )


def curve(con, model_id: str, curve_name: str) -> list[dict[str, Any]]:
    """Points (x, y) of the test ROC (``roc``) or precision-recall (``pr``) curve; [] without
    the table (registries created before it existed)."""
    if "curve_points" not in present_tables(con):
        return []
    return _rows(
        con,
        f"select x, y from {ml_table('curve_points')} where model_id = ? and curve = ? "
        "and split = 'test' order by point",
        [model_id, curve_name],
    )


def lift(con, model_id: str) -> list[dict[str, Any]]:
    """Test lift and cumulative gains per decile (1 = highest scores)."""
    return _rows(
        con,
        f"select decile, lift, cumulative_gains from {ml_table('lift_by_decile')} "
        "where model_id = ? and split = 'test' order by decile",
        [model_id],
    )


def calibration(con, model_id: str) -> list[dict[str, Any]]:
    """Test calibration bins that hold examples: mean predicted vs observed rate."""
    return _rows(
        con,
        f"select mean_predicted, observed_rate from {ml_table('calibration_bins')} "
        "where model_id = ? and split = 'test' and examples > 0 order by bin",
        [model_id],
    )


def top_features(con, model_id: str, *, limit: int = 12) -> list[dict[str, Any]]:
    """The `limit` most important features by either importance (permutation importance and
    mean |SHAP| on the same test rows), by permutation rank; registries from before mean |SHAP|
    existed read null for it."""
    shap = (
        "mean_abs_shap, shap_rank, shap_method"
        if "mean_abs_shap" in relation_columns(con, f"{SCHEMA}.feature_importance")
        else "null as mean_abs_shap, null as shap_rank, null as shap_method"
    )
    return _rows(
        con,
        f"""
        with importance as (
            select feature_name, importance_mean, importance_rank, {shap}
            from {ml_table("feature_importance")}
            where model_id = ?
        ),

        top as (
            select * from importance
            order by least(importance_rank, shap_rank) nulls last, feature_name
            limit ?
        )

        select * from top order by importance_rank nulls last, shap_rank
        """,
        [model_id, limit],
    )


def champions_of_spec(con, spec_name: str) -> list[dict[str, Any]]:
    """The champions a spec registered: registry row (JSON columns decoded) and test lift at the
    top decile (``lift``)."""
    rows = _rows(
        con,
        f"""
        select r.model_id, r.product_group, r.algorithm, r.metrics,
            r.train_cutoffs, r.validation_cutoffs, r.test_cutoffs, l.lift
        from {ml_table("model_registry")} as r
        inner join {ml_table("model_aliases")} as a
            on a.model_id = r.model_id and a.alias = 'champion'
        left join {ml_table("lift_by_decile")} as l
            on l.model_id = r.model_id and l.split = 'test' and l.decile = 1
        where r.spec_name = ?
        order by r.product_group
        """,
        [spec_name],
    )
    for row in rows:
        for c in ("metrics", "train_cutoffs", "validation_cutoffs", "test_cutoffs"):
            if isinstance(row[c], str):
                row[c] = json.loads(row[c])
    return rows


def champion_features(con, product_groups: Sequence[str]) -> dict[str, tuple[str, list[str]]]:
    """product group -> (champion model_id, feature names), in the order asked.

    Raises `ConfigError` naming the groups that have a champion when one has none.
    """
    out: dict[str, tuple[str, list[str]]] = {}
    for group in product_groups:
        row = con.execute(
            f"select a.model_id, r.feature_names from {ml_table('model_aliases')} as a "
            f"join {ml_table('model_registry')} as r on r.model_id = a.model_id "
            "where a.product_group = ? and a.alias = 'champion'",
            [group],
        ).fetchall()
        if not row:
            known = [
                r[0]
                for r in con.execute(
                    f"select distinct product_group from {ml_table('model_aliases')} "
                    "where alias = 'champion' order by 1"
                ).fetchall()
            ]
            raise ConfigError(
                f"no champion model for {group!r}: train it first (`propensity train --spec ...`)"
                f"; groups with a champion: {', '.join(known) or 'none'}"
            )
        model_id, features = row[0]
        if isinstance(features, str):
            features = json.loads(features)
        out[group] = (model_id, list(features))
    return out


def load_models_sql() -> str:
    """SQL loading the registered models whose ids are bound as one list parameter into the
    scoring UDFs (``propensity_load_model``, see `scoring.register_udfs`)."""
    return (
        "select propensity_load_model(model_id, onnx_model, onnx_sha256) "
        f"from {ml_table('model_registry')} where model_id in (select unnest(?))"
    )
