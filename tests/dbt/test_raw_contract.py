"""dbt tests on the raw contract pass on clean input and fail loudly, naming the problem, on
broken input."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from models_py._dbt import run_dbt
from models_py._errors import DbtRunError
from tests.conftest import write_tiny_warehouse


def test_clean_tiny_warehouse_builds(tmp_path):
    settings = write_tiny_warehouse(tmp_path / "wh.duckdb")
    outcome = run_dbt(settings, ["build", "--select", "source:raw+", "--exclude", "marts"])
    assert outcome.success
    assert outcome.count("fail") == 0
    assert outcome.count("pass") >= 15


def test_duplicate_order_ids_fail_with_message(tmp_path):
    t0 = dt.datetime(2024, 1, 1)
    orders = pa.table(
        {"order_id": [10, 10, 11], "customer_id": [1, 2, 2], "ordered_at": [t0, t0, t0]}
    )
    settings = write_tiny_warehouse(tmp_path / "wh.duckdb", orders=orders)
    with pytest.raises(DbtRunError) as err:
        run_dbt(settings, ["test", "--select", "source:raw"])
    msg = str(err.value)
    assert "source_unique_key_raw_orders_order_id" in msg
    assert "duplicate order_id 10 appears 2 times in orders" in msg


def test_data_tests_since_checks_new_rows_against_every_stored_row(tmp_path):
    """The daily run's scope (var data_tests_since): an order id of a new order that an old
    order already has is a duplicate; duplicates and orders without lines that are all old were
    tested before and are left out; a plain `dbt test` reports them all."""
    old, new = dt.datetime(2024, 1, 1), dt.datetime(2024, 3, 1)
    orders = pa.table(
        {
            "order_id": [10, 10, 11, 11, 12, 13],
            "customer_id": [1, 1, 2, 2, 1, 2],
            "ordered_at": [old, new, old, old, old, new],
        }
    )
    lines = pa.table(
        {
            "order_id": [10, 11],
            "product_id": ["a", "b"],
            "quantity": pa.array([1, 1], pa.int32()),
            "unit_price": [2.0, 3.0],
        }
    )
    settings = write_tiny_warehouse(tmp_path / "wh.duckdb", orders=orders, order_lines=lines)
    since = {"data_tests_since": "2024-02-01"}

    with pytest.raises(DbtRunError) as err:
        run_dbt(settings, ["test", "--select", "source:raw"])
    assert "duplicate order_id 10 appears 2 times" in str(err.value)
    assert "duplicate order_id 11 appears 2 times" in str(err.value)
    with pytest.raises(DbtRunError) as err:
        run_dbt(settings, ["test", "--select", "source:raw"], dbt_vars=since)
    assert "duplicate order_id 10 appears 2 times" in str(err.value)
    assert "order_id 11" not in str(err.value)

    without_lines = ["test", "--select", "raw_orders_without_lines"]
    problem = "rows of orders have no row in order_lines (e.g. order_id"
    warned = run_dbt(settings, without_lines).warnings
    assert any(f"2 {problem} 12)" in w for w in warned), warned
    warned = run_dbt(settings, without_lines, dbt_vars=since).warnings
    assert any(f"1 {problem} 13)" in w for w in warned), warned

    with pytest.raises(DbtRunError, match="data_tests_since must be a date"):
        run_dbt(settings, without_lines, dbt_vars={"data_tests_since": "last week"})


def test_null_customer_ids_fail_with_message(tmp_path):
    t0 = dt.datetime(2024, 1, 1)
    orders = pa.table(
        {
            "order_id": [10, 11],
            "customer_id": pa.array([1, None], pa.int64()),
            "ordered_at": [t0, t0],
        }
    )
    settings = write_tiny_warehouse(tmp_path / "wh.duckdb", orders=orders)
    with pytest.raises(DbtRunError) as err:
        run_dbt(settings, ["test", "--select", "source:raw"])
    msg = str(err.value)
    assert "customer_id is null in orders" in msg
    assert "Orders without a customer cannot be attributed" in msg


def test_unknown_email_event_type_named(tmp_path):
    t0 = dt.datetime(2024, 1, 2)
    events = pa.table(
        {
            "customer_id": [1, 1],
            "campaign_id": ["c1", "c1"],
            "event_type": ["sent", "delivered"],
            "occurred_at": [t0, t0],
        }
    )
    settings = write_tiny_warehouse(tmp_path / "wh.duckdb", email_events=events)
    with pytest.raises(DbtRunError) as err:
        run_dbt(settings, ["test", "--select", "source:raw"])
    assert "event_type = 'delivered' in email_events (1 rows) is not one of" in str(err.value)


def test_group_matching_nothing_warns_and_is_inactive(tmp_path):
    from models_py._warehouse import connect
    from models_py.ingest._groups import parse_group_rules, rules_to_arrow

    rules = rules_to_arrow(
        parse_group_rules(
            {"product_groups": {"wine": {"category": ["^wine$"]}, "party": {"product_name": "x"}}}
        )
    )
    settings = write_tiny_warehouse(tmp_path / "wh.duckdb", product_group_rules=rules)
    outcome = run_dbt(
        settings,
        ["build", "--select", "+dim_product_groups", "assert_product_group_rules_match_products"],
    )
    assert any("product group party matches no product" in w for w in outcome.warnings)
    con = connect(settings.warehouse, read_only=True)
    rows = dict(
        con.execute("select product_group, is_active from marts.dim_product_groups").fetchall()
    )
    con.close()
    assert rows == {"any": True, "wine": True, "party": False}
