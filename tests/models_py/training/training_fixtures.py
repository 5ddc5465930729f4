"""A fake `marts.fct_training_examples` with a known ground truth, for the training tests.

Each cutoff holds every customer once per product group; features drift a little per cutoff; the
label is drawn from a known logistic model with a nonlinear term, and `raw.oracle_propensity`
holds the true probabilities (as on generated warehouses).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa

from models_py._dbt import run_dbt
from models_py._settings import Settings
from models_py._warehouse import connect

GROUPS = ("any", "sweets", "wine")
CUTOFFS = tuple(dt.date(2024, 1, 1) + dt.timedelta(days=30 * i) for i in range(6))
FEATURES = (
    "days_since_last_order",
    "order_count",
    "spend_total",
    "tenure_days",
    "rfm_segment_code",
    "email_open_rate",
    "is_vip",
    "group_spend_90d",
    "noise",
)


def make_examples(customers: int = 1500, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """(training examples, oracle) Arrow tables."""
    rng = np.random.default_rng(seed)
    base_recency = rng.exponential(60, customers)
    base_orders = rng.poisson(4, customers)
    segment = rng.integers(0, 5, customers)
    vip = (rng.random(customers) < 0.05).astype(np.int32)
    open_rate = rng.beta(2, 5, customers)
    tenure = rng.integers(30, 900, customers)
    affinity = {g: rng.gamma(1.0, 50.0, customers) for g in GROUPS}
    intercept = {"any": -1.2, "sweets": -2.0, "wine": -2.4}
    seg_effect = np.array([-0.6, -0.2, 0.0, 0.3, 0.7])
    cols: dict[str, list] = {k: [] for k in ("customer_id", "product_group", "as_of_date", "split")}
    cols.update({"label": [], **{f: [] for f in FEATURES}})
    oracle: dict[str, list] = {
        "customer_id": [],
        "product_group": [],
        "as_of_date": [],
        "probability": [],
        "observable_probability": [],
    }
    for i, cutoff in enumerate(CUTOFFS):
        split = (
            "test" if i == len(CUTOFFS) - 1 else "validation" if i == len(CUTOFFS) - 2 else "train"
        )
        recency = np.maximum(0, base_recency + rng.normal(0, 10, customers)).round()
        orders = base_orders + rng.poisson(0.3 * (i + 1), customers)
        spend = np.round(orders * rng.gamma(3, 15, customers), 2)
        for g in GROUPS:
            gspend = np.round(affinity[g] * rng.random(customers), 2)
            logit = (
                intercept[g]
                - 1.2 * np.log1p(recency) / 4
                + 0.25 * np.sqrt(orders)
                + seg_effect[segment]
                + 1.5 * open_rate
                + 0.6 * vip
                + 0.8 * np.tanh(gspend / 60)
                + 0.4 * (recency < 14) * (orders > 4)
            )
            p = 1 / (1 + np.exp(-logit))
            y = (rng.random(customers) < p).astype(np.int32)
            cols["customer_id"] += list(range(1, customers + 1))
            cols["product_group"] += [g] * customers
            cols["as_of_date"] += [cutoff] * customers
            cols["split"] += [split] * customers
            cols["label"] += y.tolist()
            cols["days_since_last_order"] += recency.astype(np.int64).tolist()
            cols["order_count"] += orders.astype(np.int64).tolist()
            cols["spend_total"] += spend.tolist()
            cols["tenure_days"] += (tenure + 30 * i).astype(np.int64).tolist()
            cols["rfm_segment_code"] += segment.astype(np.int32).tolist()
            cols["email_open_rate"] += open_rate.tolist()
            cols["is_vip"] += vip.tolist()
            cols["group_spend_90d"] += gspend.tolist()
            cols["noise"] += rng.normal(size=customers).tolist()
            oracle["customer_id"] += list(range(1, customers + 1))
            oracle["product_group"] += [g] * customers
            oracle["as_of_date"] += [cutoff] * customers
            oracle["probability"] += p.tolist()
            # A stand-in for the observable oracle (no extra random draws: the labels stay as
            # they were); NULL on the train cutoffs, as on generated warehouses.
            blurred = 0.7 * p + 0.3 * open_rate if split != "train" else np.full(customers, np.nan)
            oracle["observable_probability"] += [None if np.isnan(v) else v for v in blurred]
    types = {
        "customer_id": pa.int64(),
        "label": pa.int32(),
        "days_since_last_order": pa.int64(),
        "order_count": pa.int64(),
        "tenure_days": pa.int64(),
        "rfm_segment_code": pa.int32(),
        "is_vip": pa.int32(),
    }
    examples = pa.table({k: pa.array(v, types.get(k)) for k, v in cols.items()})
    return examples, pa.table(oracle)


def write_fake_warehouse(path: Path, *, customers: int = 1500, seed: int = 0) -> Settings:
    """Fake training examples, dim_product_groups (one inactive group), the oracle table, and
    the empty `ml` tables created by the project's dbt macro."""
    examples, oracle = make_examples(customers, seed)
    con = connect(path)
    try:
        con.execute("create schema if not exists marts")
        con.execute("create schema if not exists raw")
        con.register("examples_view", examples)
        con.execute(
            "create or replace table marts.fct_training_examples as "
            "select *, 1.0::double as sample_weight from examples_view"
        )
        con.register("oracle_view", oracle)
        con.execute("create or replace table raw.oracle_propensity as select * from oracle_view")
        con.execute(
            "create or replace table marts.dim_product_groups as select * from (values "
            "('any', 10::bigint, true), ('sweets', 4::bigint, true), ('wine', 3::bigint, true), "
            "('empty', 0::bigint, false)) as t(product_group, product_count, is_active)"
        )
    finally:
        con.close()
    settings = Settings(warehouse=path)
    run_dbt(settings, ["run-operation", "ensure_ml_tables"])
    return settings


def copy_warehouse(source: Settings, target: Path) -> Settings:
    shutil.copy(source.warehouse, target)
    return Settings(warehouse=target)


#: A quick spec for tests: the same shape as the packaged default, tiny search spaces.
FAST_SPEC = """
specs:
  - name: purchase_propensity
    relation: marts.fct_training_examples
    id_columns: [customer_id]
    label: label
    cutoff: as_of_date
    split: split
    weight: sample_weight
    group: {column: product_group, groups: all_active}
    features: {numeric_except: []}
    categorical: [rfm_segment_code]
    search: {folds: 2}
    candidates:
      logistic_regression: {C: [0.05, 1.0]}
      random_forest: {n_estimators: [30], max_depth: [6], min_samples_leaf: [30]}
      hist_gradient_boosting: {max_iter: [40], learning_rate: [0.1], max_leaf_nodes: [7]}
      lightgbm: {n_estimators: [50]}
    threshold: max_f1
    promotion: {metric: roc_auc, margin: 0.005}
    max_training_rows: 20000
    max_evaluation_rows: 20000
    importance_rows: 500
    oracle:
      relation: raw.oracle_propensity
      probability: probability
      observable_probability: observable_probability
"""


def hgb_spec(
    *,
    name: str = "purchase_propensity",
    groups: str | list[str] = "all_active",
    max_iter: int = 30,
    max_leaf_nodes: int = 7,
    **fields,
) -> str:
    """A one-candidate (HistGradientBoosting) spec for tests, as YAML text. `fields` add or
    replace spec keys; a key given as None is left out (its default applies)."""
    import yaml

    spec = {
        "name": name,
        "relation": "marts.fct_training_examples",
        "id_columns": ["customer_id"],
        "label": "label",
        "cutoff": "as_of_date",
        "split": "split",
        "weight": "sample_weight",
        "group": {"column": "product_group", "groups": groups},
        "features": {"numeric_except": []},
        "categorical": ["rfm_segment_code"],
        "search": {"folds": 2},
        "candidates": {
            "hist_gradient_boosting": {
                "max_iter": [max_iter],
                "learning_rate": [0.1],
                "max_leaf_nodes": [max_leaf_nodes],
            }
        },
        "threshold": "max_f1",
        "promotion": {"metric": "roc_auc", "margin": 0.005},
    }
    spec.update(fields)
    spec = {k: v for k, v in spec.items() if v is not None}
    return yaml.safe_dump({"specs": [spec]}, sort_keys=False)


_TEMPLATE: dict[str, Settings] = {}


def template_warehouse(tmp_path_factory) -> Settings:
    """One fake warehouse per test session (dbt run-operation is slow); copy it before writing."""
    if "fake" not in _TEMPLATE:
        path = tmp_path_factory.mktemp("fake_training") / "template.duckdb"
        _TEMPLATE["fake"] = write_fake_warehouse(path)
    return _TEMPLATE["fake"]
