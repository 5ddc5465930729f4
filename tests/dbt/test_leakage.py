"""Point-in-time correctness: changing or deleting events at or after a cutoff T changes no
feature value at T (whole rows compared), while features at later cutoffs do change."""

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

#: The cutoff whose features must not move; the scoring cutoff (later) must.
T = pd.Timestamp("2023-12-01")
LEAKAGE_MODELS = "+fct_customer_features +fct_customer_group_features"
FEATURE_TABLES = {
    "fct_customer_features": "customer_id",
    "fct_customer_group_features": "customer_id, product_group",
}


def snapshot(settings, as_of: pd.Timestamp) -> dict[str, pd.DataFrame]:
    return {
        table: read(
            settings,
            f"select * from marts.{table} where as_of_date = ? order by {keys}",
            [as_of.date()],
        )
        for table, keys in FEATURE_TABLES.items()
    }


def tamper(tables: dict[str, pa.Table], *, seed: int, at: pd.Timestamp = T) -> dict[str, pa.Table]:
    """Delete, change and add orders, lines and email events at or after `at` (never before)."""
    T = at  # the cutoff the edits start at
    rng = np.random.default_rng(seed)
    orders = tables["orders"].to_pandas()
    lines = tables["order_lines"].to_pandas()
    events = tables["email_events"].to_pandas()
    late = orders["ordered_at"] >= T
    assert late.sum() > 100 and (~late).sum() > 100
    # Delete a third of the late orders (and their lines).
    dropped = orders.loc[late & (rng.random(len(orders)) < 0.33), "order_id"]
    orders = orders[~orders["order_id"].isin(dropped)]
    lines = lines[~lines["order_id"].isin(dropped)]
    # Change the remaining late lines: quantities flip sign or grow, prices change, products move.
    late_ids = orders.loc[orders["ordered_at"] >= T, "order_id"]
    is_late_line = lines["order_id"].isin(late_ids).to_numpy()
    n = int(is_late_line.sum())
    lines.loc[is_late_line, "quantity"] = (
        lines.loc[is_late_line, "quantity"].to_numpy() * rng.choice([-1, 2, 3], n)
    ).astype(np.int32)
    lines.loc[is_late_line, "unit_price"] = rng.uniform(1, 99, n).round(2)
    lines.loc[is_late_line, "product_id"] = [f"p{i}" for i in rng.integers(0, 40, n)]
    # Move some late orders to exactly T 00:00 (the first instant that must not count).
    move = (orders["ordered_at"] >= T) & (rng.random(len(orders)) < 0.2)
    orders.loc[move, "ordered_at"] = T
    # Add new orders at T and after, for customers that exist before T.
    customers = tables["customers"].to_pandas()
    old = customers.loc[customers["created_at"] < T - pd.Timedelta(days=1), "customer_id"]
    new_customers = rng.choice(old.to_numpy(), 200)
    new_ids = np.arange(10**9, 10**9 + 200)
    new_orders = pd.DataFrame(
        {
            "order_id": new_ids,
            "customer_id": new_customers,
            "ordered_at": T + pd.to_timedelta(rng.integers(0, 60 * 86400, 200), unit="s"),
        }
    )
    new_orders.loc[:20, "ordered_at"] = T
    new_lines = pd.DataFrame(
        {
            "order_id": new_ids,
            "product_id": [f"p{i}" for i in rng.integers(0, 40, 200)],
            "quantity": rng.integers(-2, 5, 200).astype(np.int32),
            "unit_price": rng.uniform(1, 50, 200).round(2),
        }
    )
    orders = pd.concat([orders, new_orders], ignore_index=True)
    lines = pd.concat([lines, new_lines], ignore_index=True)
    # Email events at or after T: delete half, retype the rest, add unsubscribes at T.
    late_ev = events["occurred_at"] >= T
    events = events[~(late_ev & (rng.random(len(events)) < 0.5))].copy()
    late_ev = events["occurred_at"] >= T
    events.loc[late_ev, "event_type"] = rng.choice(["open", "click", "unsubscribe"], late_ev.sum())
    extra = pd.DataFrame(
        {
            "customer_id": new_customers[:50],
            "campaign_id": "late",
            "event_type": "unsubscribe",
            "occurred_at": T,
        }
    )
    events = pd.concat([events, extra], ignore_index=True)
    schema = {name: tables[name].schema for name in ("orders", "order_lines", "email_events")}
    return {
        "orders": pa.Table.from_pandas(orders, schema=schema["orders"], preserve_index=False),
        "order_lines": pa.Table.from_pandas(
            lines, schema=schema["order_lines"], preserve_index=False
        ),
        "email_events": pa.Table.from_pandas(
            events, schema=schema["email_events"], preserve_index=False
        ),
    }


@pytest.fixture(scope="module")
def before_and_after(tmp_path_factory):
    tables = random_tables(customers=500, seed=11)
    settings = write_tiny_warehouse(tmp_path_factory.mktemp("leakage") / "wh.duckdb", **tables)
    run_dbt(settings, ["run", "--select", LEAKAGE_MODELS], dbt_vars=DBT_VARS)
    scoring = pd.Timestamp(DBT_VARS["scoring_cutoff"])
    before = snapshot(settings, T), snapshot(settings, scoring)
    con = connect(settings.warehouse)
    try:
        write_raw_tables(con, tamper(tables, seed=12))
    finally:
        con.close()
    # The production path: an incremental run recomputes every cutoff of dim_cutoffs in place.
    run_dbt(settings, ["run", "--select", LEAKAGE_MODELS], dbt_vars=DBT_VARS)
    after = snapshot(settings, T), snapshot(settings, scoring)
    return before, after


@pytest.mark.parametrize("table", list(FEATURE_TABLES))
def test_features_at_cutoff_ignore_events_at_or_after_it(before_and_after, table):
    before, after = before_and_after
    assert len(before[0][table]) > 100
    pd.testing.assert_frame_equal(before[0][table], after[0][table], check_exact=True)


def test_tampering_did_change_later_features(before_and_after):
    """Guards the test itself: the edits are visible at the later (scoring) cutoff."""
    before, incremental = before_and_after
    a = before[1]["fct_customer_features"].set_index("customer_id")
    b = incremental[1]["fct_customer_features"].set_index("customer_id")
    changed = (a["spend_total"] != b["spend_total"]) | (a["order_count"] != b["order_count"])
    assert changed.sum() > 50
    assert (a["is_unsubscribed"] != b["is_unsubscribed"]).sum() > 0


def test_events_before_t_are_untouched_by_tampering():
    """The edits touch only events at or after T (checked on the edited tables themselves)."""
    tables = random_tables(customers=200, seed=11)
    edited = tamper(tables, seed=12)
    for name, column in (("orders", "ordered_at"), ("email_events", "occurred_at")):
        a, b = (t[name].to_pandas() for t in (tables, edited))
        a, b = (df[df[column] < T].sort_values(list(df.columns)) for df in (a, b))
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
