"""Helpers: tiny real ONNX models and a hand-made scoring warehouse (registry + features tables)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from onnx import helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge

FEATURES = ["spend_90d", "order_count_30d", "days_since_last_order", "is_vip"]


@dataclass
class TinyModel:
    model_id: str
    product_group: str
    feature_names: list[str]
    onnx_bytes: bytes
    sha256: str
    estimator: object


def training_data(n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, n_features)).astype(np.float32)
    y = (X[:, 0] - 0.5 * X[:, 1] + rng.normal(size=400) > 0).astype(int)
    return X, y


def make_model(
    model_id: str,
    *,
    product_group: str = "any",
    feature_names: list[str] | None = None,
    kind: str = "hgb",
    seed: int = 0,
) -> TinyModel:
    """A fitted classifier exported like models_py does (input `features`, zipmap off); kind
    'ridge' is a regressor (one output, metadata output_kind=value), as uplift parts are."""
    names = list(feature_names or FEATURES)
    X, y = training_data(len(names), seed)
    if kind == "hgb":
        est = HistGradientBoostingClassifier(max_iter=15, max_depth=3, random_state=seed)
    elif kind == "ridge":
        est = Ridge()
        y = X[:, 0] * 3.0 + 10.0
    else:
        est = LogisticRegression()
    est.fit(X, y)
    options = {} if kind == "ridge" else {id(est): {"zipmap": False}}
    with warnings.catch_warnings():  # skl2onnx passes booleans to onnx.helper (not our code)
        warnings.simplefilter("ignore", DeprecationWarning)
        onx = convert_sklearn(
            est,
            initial_types=[("features", FloatTensorType([None, len(names)]))],
            options=options,
            target_opset=17,
        )
    props = {
        "model_id": model_id,
        "spec_name": kind,
        "product_group": product_group,
        "feature_names": json.dumps(names),
        "feature_hash": hashlib.sha256(json.dumps(names).encode()).hexdigest(),
        "threshold": "0.5",
    }
    if kind == "ridge":
        props["output_kind"] = "value"
    helper.set_model_props(onx, props)
    data = onx.SerializeToString()
    return TinyModel(model_id, product_group, names, data, hashlib.sha256(data).hexdigest(), est)


def write_registry(con: duckdb.DuckDBPyConnection, models: list[TinyModel]) -> None:
    """ml.model_registry and ml.model_aliases with the contract's columns; every model champion."""
    con.execute("create schema if not exists ml")
    con.execute(
        "create or replace table ml.model_registry (model_id varchar, spec_name varchar, "
        "product_group varchar, algorithm varchar, feature_names varchar, feature_hash varchar, "
        "onnx_model blob, onnx_sha256 varchar, trained_at timestamp, "
        "training_relation varchar default 'marts.fct_training_examples')"
    )
    con.execute(
        "create or replace table ml.model_aliases (product_group varchar, alias varchar, "
        "model_id varchar, updated_at timestamp)"
    )
    now = dt.datetime(2025, 1, 1)
    for m in models:
        con.execute(
            "insert into ml.model_registry values (?, ?, ?, ?, ?, ?, ?, ?, ?, default)",
            [
                m.model_id,
                "spec",
                m.product_group,
                type(m.estimator).__name__,
                json.dumps(m.feature_names),
                hashlib.sha256(json.dumps(m.feature_names).encode()).hexdigest(),
                m.onnx_bytes,
                m.sha256,
                now,
            ],
        )
        con.execute(
            "insert into ml.model_aliases values (?, 'champion', ?, ?)",
            [m.product_group, m.model_id, now],
        )


def write_features(
    con: duckdb.DuckDBPyConnection,
    *,
    as_of_date: dt.date,
    groups: tuple[str, ...] = ("any", "wine"),
    customers: int = 50,
    drop: str | None = None,
    seed: int = 3,
    tied: int = 0,
) -> None:
    """marts.fct_scoring_features: one row per customer x group, numeric feature columns, and
    marts.dim_cutoffs naming `as_of_date` the scoring cutoff (the cutoff dbt scores).

    `tied` customers of each group share one feature vector (so one score: ties for the deciles).
    """
    rng = np.random.default_rng(seed)
    n = customers * len(groups)
    x = rng.normal(size=(n, 4))
    for g in range(len(groups)):
        x[g * customers + 1 : g * customers + 1 + tied] = x[g * customers]
    frame = pa.table(
        {
            "customer_id": np.tile(np.arange(1, customers + 1, dtype=np.int64), len(groups)),
            "product_group": np.repeat(np.array(groups), customers),
            "as_of_date": pa.array([as_of_date] * n, pa.date32()),
            "spend_90d": x[:, 0],
            "order_count_30d": (x[:, 1] * 3).astype(np.int32),
            "days_since_last_order": (x[:, 2] * 9).astype(np.int32),
            "is_vip": (x[:, 3] > 0).astype(np.int32),
        }
    )
    con.execute("create schema if not exists marts")
    con.register("_features_frame", frame)
    con.execute(
        "create or replace table marts.fct_scoring_features as select * from _features_frame"
    )
    con.unregister("_features_frame")
    con.execute(
        "create or replace table marts.dim_cutoffs as select cast(? as date) as as_of_date, "
        "'scoring' as cutoff_role, cast(? as date) as label_window_end",
        [as_of_date, as_of_date + dt.timedelta(days=30)],
    )
    if drop:
        con.execute(f'alter table marts.fct_scoring_features drop column "{drop}"')


def write_profiles(directory: Path) -> Path:
    """profiles.yml of the project plus the scoring plugin."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "profiles.yml").write_text(
        """propensity:
  target: duckdb
  outputs:
    duckdb:
      type: duckdb
      path: "{{ env_var('PROPENSITY_WAREHOUSE') }}"
      threads: 2
      plugins:
        - module: scoring.dbt_plugin
          config:
            intra_op_threads: 1
"""
    )
    return directory
