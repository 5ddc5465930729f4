"""The model registry (schema `_tables.SCHEMA`, ``ml``): models (ONNX bytes only, never pickles),
aliases per product group (`champion`, `challenger`), the alias history, evaluation tables and
the drift references of each model.

The DDL is dbt's (see `_tables`). This module writes rows, each change in one transaction, and
reads models and aliases; `_evaluation` reads the evaluation tables for reports.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from models_py._errors import PropensityError, WarehouseError
from models_py._warehouse import relation_columns, transaction
from models_py.registry._tables import SCHEMA, ml_table, require_ml_tables

logger = logging.getLogger(__name__)


class RegistryError(PropensityError):
    """A registry operation cannot be done (unknown model, nothing to roll back to, ...)."""


@dataclass(kw_only=True)
class ModelRecord:
    """One row of ``ml.model_registry`` (the ONNX bytes included)."""

    model_id: str
    spec_name: str
    product_group: str
    algorithm: str
    hyperparameters: Mapping[str, Any]
    trained_at: dt.datetime
    training_relation: str
    train_cutoffs: Sequence[str]
    validation_cutoffs: Sequence[str]
    test_cutoffs: Sequence[str]
    feature_names: Sequence[str]
    feature_hash: str
    threshold: float
    threshold_rule: str
    metrics: Mapping[str, Any]
    onnx_model: bytes
    library_versions: Mapping[str, str]

    @property
    def onnx_sha256(self) -> str:
        return hashlib.sha256(self.onnx_model).hexdigest()


@dataclass(kw_only=True)
class Evaluation:
    """Rows for the evaluation tables of one model."""

    metrics: list[dict[str, Any]] = field(default_factory=list)  # one per split
    lift: list[dict[str, Any]] = field(default_factory=list)
    calibration: list[dict[str, Any]] = field(default_factory=list)
    importance: list[dict[str, Any]] = field(default_factory=list)
    curves: list[dict[str, Any]] = field(default_factory=list)
    #: Drift references: bins of each feature and of the score on the training rows.
    reference: list[dict[str, Any]] = field(default_factory=list)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


#: Arrow types of the reference rows: hundreds per model go in as one Arrow table, not row by row.
_REFERENCE_TYPES = {
    "model_id": pa.string(),
    "product_group": pa.string(),
    "feature_name": pa.string(),
    "feature_kind": pa.string(),
    "bin": pa.int32(),
    "bin_lower": pa.float64(),
    "bin_upper": pa.float64(),
    "category": pa.float64(),
    "reference_rows": pa.int64(),
    "reference_share": pa.float64(),
}


def _insert(
    con,
    table: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    types: Mapping[str, pa.DataType] | None = None,
) -> None:
    """Insert `rows` (dicts with the same keys) into registry table `table`; with `types` (an
    Arrow type per column) as one Arrow table."""
    if not rows:
        return
    columns = list(rows[0])
    present = relation_columns(con, f"{SCHEMA}.{table}")
    missing = [c for c in columns if c not in present]
    if missing:
        raise WarehouseError(
            f"{SCHEMA}.{table} has no column {', '.join(missing)}: the registry tables were "
            "created by an older version. Run `propensity build` (or `dbt run-operation "
            "ensure_ml_tables`) to add the new columns, then retry."
        )
    cols = ", ".join(f'"{c}"' for c in columns)
    if types is not None:
        data = pa.table({c: pa.array([r[c] for r in rows], types[c]) for c in columns})
        view = f"__propensity_rows_{uuid.uuid4().hex[:8]}"
        con.register(view, data)
        try:
            con.execute(f"insert into {ml_table(table)} ({cols}) select {cols} from {view}")
        finally:
            con.unregister(view)
        return
    marks = ", ".join("?" for _ in columns)
    con.executemany(
        f"insert into {ml_table(table)} ({cols}) values ({marks})",
        [[r[c] for c in columns] for r in rows],
    )


def get_alias(con, product_group: str, alias: str) -> str | None:
    row = con.execute(
        f"select model_id from {ml_table('model_aliases')} where product_group = ? and alias = ?",
        [product_group, alias],
    ).fetchone()
    return row[0] if row else None


def _set_alias(
    con,
    *,
    product_group: str,
    alias: str,
    model_id: str,
    action: str,
    reason: str,
    actor: str,
    at: dt.datetime,
) -> str | None:
    previous = get_alias(con, product_group, alias)
    con.execute(
        f"delete from {ml_table('model_aliases')} where product_group = ? and alias = ?",
        [product_group, alias],
    )
    con.execute(
        f"insert into {ml_table('model_aliases')} (product_group, alias, model_id, updated_at) "
        "values (?, ?, ?, ?)",
        [product_group, alias, model_id, at],
    )
    con.execute(
        f"insert into {ml_table('alias_history')} (product_group, alias, model_id, "
        "previous_model_id, action, reason, changed_by, changed_at) "
        "values (?, ?, ?, ?, ?, ?, ?, ?)",
        [product_group, alias, model_id, previous, action, reason, actor, at],
    )
    return previous


def register_model(
    con,
    record: ModelRecord,
    evaluation: Evaluation,
    *,
    promote: bool,
    reason: str,
    actor: str = "propensity",
) -> None:
    """Insert a model with its evaluation rows, make it the challenger, and the champion when
    `promote` is true: all in one transaction, so a failure leaves nothing behind."""
    require_ml_tables(con)
    at = _now()
    row = {
        "model_id": record.model_id,
        "spec_name": record.spec_name,
        "product_group": record.product_group,
        "algorithm": record.algorithm,
        "hyperparameters": json.dumps(dict(record.hyperparameters), default=str),
        "trained_at": record.trained_at,
        "training_relation": record.training_relation,
        "train_cutoffs": json.dumps(list(record.train_cutoffs)),
        "validation_cutoffs": json.dumps(list(record.validation_cutoffs)),
        "test_cutoffs": json.dumps(list(record.test_cutoffs)),
        "feature_names": json.dumps(list(record.feature_names)),
        "feature_hash": record.feature_hash,
        "threshold": float(record.threshold),
        "threshold_rule": record.threshold_rule,
        "metrics": json.dumps(dict(record.metrics), default=str),
        "onnx_model": record.onnx_model,
        "onnx_sha256": record.onnx_sha256,
        "library_versions": json.dumps(dict(record.library_versions)),
    }
    common = {"model_id": record.model_id, "product_group": record.product_group}
    with transaction(con):
        exists = con.execute(
            f"select count(*) from {ml_table('model_registry')} where model_id = ?",
            [record.model_id],
        ).fetchone()[0]
        if exists:
            raise RegistryError(f"model_id {record.model_id} is already registered")
        _insert(con, "model_registry", [row])
        _insert(
            con,
            "model_metrics",
            [
                {**common, "spec_name": record.spec_name, **m, "evaluated_at": at}
                for m in evaluation.metrics
            ],
        )
        _insert(con, "lift_by_decile", [{**common, **r} for r in evaluation.lift])
        _insert(con, "calibration_bins", [{**common, **r} for r in evaluation.calibration])
        _insert(con, "feature_importance", [{**common, **r} for r in evaluation.importance])
        _insert(con, "curve_points", [{**common, **r} for r in evaluation.curves])
        _insert(
            con,
            "reference_distributions",
            [{**common, **r} for r in evaluation.reference],
            types=_REFERENCE_TYPES,
        )
        _set_alias(
            con,
            product_group=record.product_group,
            alias="challenger",
            model_id=record.model_id,
            action="register",
            reason="newly trained",
            actor=actor,
            at=at,
        )
        if promote:
            _set_alias(
                con,
                product_group=record.product_group,
                alias="champion",
                model_id=record.model_id,
                action="auto_promote",
                reason=reason,
                actor=actor,
                at=at,
            )
    logger.info(
        "registered %s (%s)%s", record.model_id, record.algorithm, " as champion" if promote else ""
    )


def model_row(con, model_id: str, *, with_onnx: bool = False) -> dict[str, Any]:
    """One registry row as a dict (JSON columns decoded)."""
    require_ml_tables(con)
    cols = [
        "model_id",
        "spec_name",
        "product_group",
        "algorithm",
        "hyperparameters",
        "trained_at",
        "training_relation",
        "train_cutoffs",
        "validation_cutoffs",
        "test_cutoffs",
        "feature_names",
        "feature_hash",
        "threshold",
        "threshold_rule",
        "metrics",
        "onnx_sha256",
        "library_versions",
    ] + (["onnx_model"] if with_onnx else [])
    row = con.execute(
        f"select {', '.join(cols)} from {ml_table('model_registry')} where model_id = ?", [model_id]
    ).fetchone()
    if row is None:
        raise RegistryError(
            f"model {model_id!r} is not in {SCHEMA}.model_registry; `propensity models list` "
            "shows the registered models"
        )
    out = dict(zip(cols, row, strict=True))
    for c in (
        "hyperparameters",
        "train_cutoffs",
        "validation_cutoffs",
        "test_cutoffs",
        "feature_names",
        "metrics",
        "library_versions",
    ):
        out[c] = json.loads(out[c]) if out[c] is not None else None
    if with_onnx:
        out["onnx_model"] = bytes(out["onnx_model"])
    return out


def promote_model(
    con, model_id: str, *, actor: str = "propensity", reason: str = "manual promotion"
) -> str | None:
    """Make `model_id` the champion of its product group. Returns the previous champion."""
    require_ml_tables(con)
    group = model_row(con, model_id)["product_group"]
    with transaction(con):
        previous = _set_alias(
            con,
            product_group=group,
            alias="champion",
            model_id=model_id,
            action="promote",
            reason=reason,
            actor=actor,
            at=_now(),
        )
    logger.info("%s: champion %s -> %s", group, previous, model_id)
    return previous


def rollback_champion(
    con, product_group: str, *, actor: str = "propensity", reason: str = "manual rollback"
) -> str:
    """Put the previous champion of `product_group` back and return its model id.

    The previous champion is the one the current champion replaced when it was last promoted, so
    repeated rollbacks walk back through the promotion history.
    """
    require_ml_tables(con)
    current = get_alias(con, product_group, "champion")
    if current is None:
        raise RegistryError(f"product group {product_group!r} has no champion to roll back")
    row = con.execute(
        f"select previous_model_id from {ml_table('alias_history')} where product_group = ? and "
        "alias = 'champion' and model_id = ? and action in ('promote', 'auto_promote') "
        "order by changed_at desc, rowid desc limit 1",
        [product_group, current],
    ).fetchone()
    previous = row[0] if row else None
    if previous is None:
        raise RegistryError(
            f"product group {product_group!r}: champion {current} replaced no earlier champion; "
            "nothing to roll back to (promote a model with `propensity models promote MODEL_ID`)"
        )
    with transaction(con):
        _set_alias(
            con,
            product_group=product_group,
            alias="champion",
            model_id=previous,
            action="rollback",
            reason=f"{reason} (from {current})",
            actor=actor,
            at=_now(),
        )
    logger.info("%s: champion rolled back %s -> %s", product_group, current, previous)
    return previous


def list_models(con, *, product_group: str | None = None) -> list[dict[str, Any]]:
    """Registered models, newest first, with their aliases and test metrics (no ONNX bytes)."""
    require_ml_tables(con)
    sql = f"""
        with aliases as (
            select model_id, string_agg(alias, ',' order by alias) as aliases
            from {ml_table("model_aliases")} group by model_id
        )
        select r.model_id, r.spec_name, r.product_group, r.algorithm, r.trained_at,
               coalesce(a.aliases, '') as aliases, m.roc_auc, m.pr_auc, m.oracle_roc_auc,
               r.threshold, octet_length(r.onnx_model) as onnx_bytes
        from {ml_table("model_registry")} as r
        left join aliases as a on r.model_id = a.model_id
        left join {ml_table("model_metrics")} as m on r.model_id = m.model_id and m.split = 'test'
        where ? is null or r.product_group = ?
        order by r.product_group, r.trained_at desc, r.model_id desc
    """
    cur = con.execute(sql, [product_group, product_group])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def alias_history(con, product_group: str | None = None) -> list[dict[str, Any]]:
    """The alias history, oldest first."""
    require_ml_tables(con)
    cur = con.execute(
        f"select * from {ml_table('alias_history')} where ? is null or product_group = ? "
        "order by changed_at, rowid",
        [product_group, product_group],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
