"""fct_experiment_examples: features as of the assignment day (nothing at or after it, checked by
tampering with every event from that day on) and outcomes in [assigned_at, assigned_at +
horizon) recomputed here from the raw tables; experiments not yet observed are named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from models_py._dbt import run_dbt
from models_py._warehouse import connect
from models_py.ingest._raw import write_raw_tables
from tests.conftest import write_tiny_warehouse
from tests.dbt.test_features import DBT_VARS, random_tables, read
from tests.dbt.test_leakage import tamper

#: An assignment day that is no training cutoff (so dim_cutoffs adds it as role 'experiment'),
#: assigned at 09:00: events of that morning must not reach the features either.
DAY = pd.Timestamp("2023-11-15")
ASSIGNED_AT = DAY + pd.Timedelta(hours=9)
#: Assigned after the scoring cutoff (2024-02-05): left out, with a warning.
LATE_DAY = pd.Timestamp("2024-02-10")
ARMS = {"0": 0.0, "20": 20.0, "25": 25.0}
MARGIN_RATE = 0.4
MODELS = "+fct_experiment_examples assert_experiments_observed_by_scoring_cutoff"
KEYS = ["experiment_id", "customer_id"]
OUTCOMES = ["purchased", "orders", "revenue", "discount_cost", "margin"]


def treatments(customers: pa.Table, *, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    c = customers.to_pandas()
    eligible = c.loc[c["created_at"] < DAY - pd.Timedelta(days=1), "customer_id"].to_numpy()
    chosen = rng.choice(eligible, size=len(eligible) * 2 // 3, replace=False)
    arm = rng.choice(list(ARMS), size=len(chosen))
    late = rng.choice(eligible, size=20, replace=False)
    return pa.table(
        {
            "customer_id": pa.array(np.r_[chosen, late], pa.int64()),
            "experiment_id": ["spring"] * len(chosen) + ["too_late"] * len(late),
            "arm": list(arm) + ["20"] * len(late),
            "assigned_at": [ASSIGNED_AT.to_pydatetime()] * len(chosen)
            + [LATE_DAY.to_pydatetime()] * len(late),
            "discount_pct": [ARMS[a] for a in arm] + [20.0] * len(late),
        }
    )


def write(settings, tables: dict[str, pa.Table]) -> None:
    con = connect(settings.warehouse)
    try:
        write_raw_tables(con, tables, extra_columns={"treatments": {"discount_pct": "DOUBLE"}})
    finally:
        con.close()


def build(settings):
    return run_dbt(
        settings, ["build", "--select", MODELS], dbt_vars={**DBT_VARS, "offer_margin_rate": 0.4}
    )


def examples(settings) -> pd.DataFrame:
    return read(settings, "select * from marts.fct_experiment_examples order by customer_id")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tables = random_tables(customers=500, seed=21)
    tables["treatments"] = treatments(tables["customers"], seed=22)
    settings = write_tiny_warehouse(tmp_path_factory.mktemp("experiment") / "wh.duckdb")
    write(settings, tables)
    outcome = build(settings)
    before = examples(settings)
    features = read(
        settings,
        "select * from marts.fct_customer_features where as_of_date = ? order by customer_id",
        [DAY.date()],
    )
    cutoffs = read(settings, "select * from marts.dim_cutoffs order by as_of_date")
    write(settings, tamper(tables, seed=23, at=DAY))
    build(settings)
    after = examples(settings)
    return {
        "tables": tables,
        "outcome": outcome,
        "before": before,
        "after": after,
        "features": features,
        "cutoffs": cutoffs,
    }


def test_the_assignment_day_is_an_experiment_cutoff(built):
    cutoffs = built["cutoffs"]
    roles = dict(zip(pd.to_datetime(cutoffs["as_of_date"]), cutoffs["cutoff_role"], strict=True))
    assert roles[DAY] == "experiment"
    assert LATE_DAY not in roles


def test_one_row_per_observed_assignment_with_its_arm(built):
    before, tables = built["before"], built["tables"]
    expected = tables["treatments"].to_pandas()
    expected = expected[expected["experiment_id"] == "spring"]
    assert len(before) == len(expected) > 200
    merged = before.merge(expected, on=KEYS, suffixes=("", "_raw"))
    assert (merged["arm"] == merged["arm_raw"]).all()
    assert (merged["discount_pct"] == merged["discount_pct_raw"]).all()
    assert (pd.to_datetime(before["as_of_date"]) == DAY).all()


def test_features_are_those_of_the_assignment_day(built):
    before, features = built["before"], built["features"]
    columns = [c for c in features.columns if c not in ("customer_id", "as_of_date", "rfm_segment")]
    merged = before.merge(features, on="customer_id", suffixes=("", "_f"))
    assert len(merged) == len(before)
    for column in columns:
        np.testing.assert_array_equal(merged[column], merged[f"{column}_f"], err_msg=column)


def test_features_ignore_every_event_from_the_assignment_day_on(built):
    before, after = built["before"], built["after"]
    features = [c for c in before.columns if c not in [*KEYS, *OUTCOMES]]
    pd.testing.assert_frame_equal(before[KEYS + features], after[KEYS + features])
    # Guard: the tampering reached the outcome window.
    assert (before["revenue"] != after["revenue"]).sum() > 20


def expected_outcomes(tables: dict[str, pa.Table], exp: pd.DataFrame) -> pd.DataFrame:
    """The outcomes from the raw tables: purchase orders (a line with quantity > 0) placed in
    [assigned_at, assigned_at + 30 days), revenue = what their purchase lines cost."""
    orders = tables["orders"].to_pandas()
    lines = tables["order_lines"].to_pandas()
    lines = lines[lines["quantity"] > 0]
    paid = (lines["quantity"] * lines["unit_price"]).groupby(lines["order_id"]).sum()
    orders = orders[orders["order_id"].isin(paid.index)].assign(
        paid=lambda o: o["order_id"].map(paid)
    )
    window = orders.merge(exp[["customer_id"]], on="customer_id")
    window = window[
        (window["ordered_at"] >= ASSIGNED_AT)
        & (window["ordered_at"] < ASSIGNED_AT + pd.Timedelta(days=30))
    ]
    per = window.groupby("customer_id").agg(orders=("order_id", "size"), revenue=("paid", "sum"))
    out = exp[["customer_id", "discount_pct"]].merge(per, on="customer_id", how="left")
    out = out.fillna({"orders": 0, "revenue": 0.0})
    d = out["discount_pct"] / 100
    out["purchased"] = (out["orders"] > 0).astype(int)
    out["discount_cost"] = out["revenue"] * d / (1 - d)
    out["margin"] = out["revenue"] * (MARGIN_RATE - d) / (1 - d)
    return out.sort_values("customer_id").reset_index(drop=True)


def test_outcomes_are_the_purchases_in_the_window(built):
    before = built["before"].reset_index(drop=True)
    expected = expected_outcomes(built["tables"], before)
    assert 0.05 < expected["purchased"].mean() < 0.95
    np.testing.assert_array_equal(before["purchased"], expected["purchased"])
    np.testing.assert_array_equal(before["orders"], expected["orders"])
    for column in ("revenue", "discount_cost", "margin"):
        np.testing.assert_allclose(before[column], expected[column], atol=0.011, err_msg=column)
    # Money identities: margin = list value x rate - discount cost, list value = revenue + cost.
    list_value = before["revenue"] + before["discount_cost"]
    np.testing.assert_allclose(
        before["margin"], list_value * MARGIN_RATE - before["discount_cost"], atol=0.03
    )


def test_an_experiment_assigned_after_the_scoring_cutoff_is_named(built):
    outcome = built["outcome"]
    assert not (built["before"]["experiment_id"] == "too_late").any()
    warning = " ".join(outcome.warnings)
    assert "experiment too_late: 20 assignments are left out" in warning
    assert "on or after the scoring cutoff 2024-02-05" in warning
