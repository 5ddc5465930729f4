"""Catalogue (docs/reliability.md): bad raw input. Three warehouses, each built once per module:

- dirty: every row-level defect at once; `dbt build` fails, each source test names one problem
  with an example key, and nothing downstream of a failing test is built;
- broken contract: a missing table, a renamed column, values of the wrong type; the staging
  model of each stops with a message naming table, column and remedy;
- messy: defects with a documented cleaning rule; the build succeeds with counted warnings and
  the rule is visible in the features.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from models_py._dbt import DbtOutcome, run_dbt
from models_py._errors import DbtRunError
from models_py._warehouse import connect
from models_py.cli import main
from models_py.ingest._raw import RAW_CONTRACT, empty_raw_table, write_raw_tables
from tests.reliability._warehouses import (
    cli_process,
    table_fingerprint,
    write_broken_contract_warehouse,
    write_dirty_warehouse,
    write_messy_warehouse,
)

pytestmark = pytest.mark.slow

SCORES_TABLE = "marts.fct_propensity_scores"

RAW_TABLES = tuple(
    f"raw.{t}"
    for t in ("customers", "orders", "order_lines", "products", "email_events", "treatments")
)


# ------------------------------------------------------------------------------------ dirty input


@pytest.fixture(scope="module")
def dirty(tmp_path_factory) -> tuple[DbtOutcome, Path, dict, dict]:
    settings = write_dirty_warehouse(tmp_path_factory.mktemp("dirty") / "wh.duckdb")
    before = table_fingerprint(settings.warehouse, *RAW_TABLES)
    outcome = run_dbt(settings, ["build"], raise_on_failure=False)
    after = table_fingerprint(settings.warehouse, *RAW_TABLES, "marts.fct_customer_features")
    return outcome, settings.warehouse, before, after


def _failed(dirty, test: str, problem: str) -> None:
    outcome = dirty[0]
    matches = [name for name in outcome.statuses if name.startswith(test)]
    assert matches, f"no dbt test {test}: {sorted(outcome.statuses)}"
    assert {outcome.statuses[m] for m in matches} == {"fail"}
    assert problem in outcome.problems, outcome.problems


def test_dirty_build_fails_publishes_nothing_and_leaves_raw_intact(dirty):
    outcome, _, before, after = dirty
    assert not outcome.success
    assert outcome.statuses["stg_raw__orders"] == "skipped"
    assert outcome.statuses["fct_customer_features"] == "skipped"
    assert after["marts.fct_customer_features"] == "absent"
    assert {k: after[k] for k in before} == before


def test_null_customer_id_in_customers(dirty):
    _failed(
        dirty,
        "source_not_null_key_raw_customers_customer_id",
        "customer_id is null in customers. Rows need a key: fix or drop them in the source table.",
    )


def test_duplicate_customer_id_in_customers(dirty):
    _failed(
        dirty,
        "source_unique_key_raw_customers_customer_id",
        "duplicate customer_id 3 appears 2 times in customers. Each key must appear once: "
        "deduplicate the source table.",
    )


def test_null_order_id_in_orders(dirty):
    _failed(
        dirty,
        "source_not_null_key_raw_orders_order_id",
        "order_id is null in orders. Rows need a key: fix or drop them in the source table.",
    )


def test_duplicate_order_id_in_orders(dirty):
    _failed(
        dirty,
        "source_unique_key_raw_orders_order_id",
        "duplicate order_id 12 appears 2 times in orders. Each key must appear once: "
        "deduplicate the source table.",
    )


def test_null_customer_id_in_orders(dirty):
    _failed(
        dirty,
        "source_not_null_key_raw_orders_customer_id",
        "customer_id is null in orders. Orders without a customer cannot be attributed: drop "
        "them before loading (the Online Retail loader counts them in its report).",
    )


def test_orders_of_unknown_customers(dirty):
    _failed(
        dirty,
        "source_references_raw_orders_customer_id",
        "customer_id 404 in orders has no match in customers.customer_id (1 rows). Add the "
        "customer to raw.customers or drop the order.",
    )


def test_null_order_id_in_order_lines(dirty):
    _failed(
        dirty,
        "source_not_null_key_raw_order_lines_order_id",
        "order_id is null in order_lines. Rows need a key: fix or drop them in the source table.",
    )


def test_lines_without_orders(dirty):
    _failed(
        dirty,
        "source_references_raw_order_lines_order_id",
        "order_id 777 in order_lines has no match in orders.order_id (1 rows). Lines must belong "
        "to an order in raw.orders.",
    )


def test_null_product_id_in_order_lines(dirty):
    _failed(
        dirty,
        "source_not_null_key_raw_order_lines_product_id",
        "product_id is null in order_lines. Rows need a key: fix or drop them in the source table.",
    )


def test_unknown_product_ids(dirty):
    _failed(
        dirty,
        "source_references_raw_order_lines_product_id",
        "product_id ghost in order_lines has no match in products.product_id (1 rows). Add the "
        "product to raw.products (it would otherwise count only in group `any`).",
    )


def test_negative_unit_price(dirty):
    _failed(
        dirty,
        "raw_order_lines_negative_price",
        "1 rows in order_lines have a negative unit_price (e.g. order_id 12, unit_price = -5.0). "
        "Prices must be >= 0: record a return as a negative quantity, and drop price adjustments "
        "and credit notes before loading.",
    )


def test_null_product_id_in_products(dirty):
    _failed(
        dirty,
        "source_not_null_key_raw_products_product_id",
        "product_id is null in products. Rows need a key: fix or drop them in the source table.",
    )


def test_duplicate_product_id_in_products(dirty):
    _failed(
        dirty,
        "source_unique_key_raw_products_product_id",
        "duplicate product_id b appears 2 times in products. Each key must appear once: "
        "deduplicate the source table.",
    )


def test_null_customer_id_in_email_events(dirty):
    _failed(
        dirty,
        "source_not_null_key_raw_email_events_customer_id",
        "customer_id is null in email_events. Rows need a key: fix or drop them in the source "
        "table.",
    )


def test_null_customer_id_in_treatments(dirty):
    _failed(
        dirty,
        "source_not_null_key_raw_treatments_customer_id",
        "customer_id is null in treatments. Rows need a key: fix or drop them in the source table.",
    )


def test_duplicate_assignment_in_treatments(dirty):
    _failed(
        dirty,
        "raw_treatments_one_assignment_per_experiment",
        "duplicate (customer_id, experiment_id) in treatments: 1, exp1. A customer is assigned "
        "once per experiment: keep the first assignment.",
    )


@pytest.mark.parametrize(
    ("table", "column"),
    [("orders", "ordered_at"), ("customers", "created_at"), ("email_events", "occurred_at")],
)
def test_timestamps_in_the_future(dirty, table, column):
    today = dt.datetime.now(dt.UTC).date()
    _failed(
        dirty,
        f"source_not_in_future_raw_{table}_{column}",
        f"{column} 2099-01-01 00:00:00 in {table} is in the future (1 rows after "
        f"{today}). Fix the clock or time zone of the load: future events would count as history "
        "and move the default scoring cutoff.",
    )


# ---------------------------------------------------------------------------- broken contract


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> tuple[int, str, str, Path, str]:
    """`propensity build` (checks the contract before dbt starts) and `dbt run` of the staging
    models (each checks its own raw table: what a user running dbt directly sees)."""
    settings = write_broken_contract_warehouse(tmp_path_factory.mktemp("broken") / "wh.duckdb")
    proc = cli_process("build", warehouse=settings.warehouse)
    out, err = proc.communicate(timeout=600)
    with pytest.raises(DbtRunError) as dbt_error:
        run_dbt(settings, ["run", "--select", "staging"])
    return proc.returncode, out, err, settings.warehouse, " ".join(str(dbt_error.value).split())


def test_missing_raw_table(broken):
    code, _, err, _, dbt_message = broken
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(
        f"error: the raw tables of {broken[3]} do not match the raw contract (README, Input "
        "contract): raw table raw.customers column customer_id"
    )
    assert (
        "; raw table raw.email_events does not exist: load it with the columns "
        "customer_id, campaign_id, event_type, occurred_at (an optional table may be empty but "
        "must exist)."
    ) in err
    assert (
        "stg_raw__email_events: Compilation Error in model stg_raw__email_events "
        "(models/staging/stg_raw__email_events.sql) raw table raw.email_events does not exist. "
        "Load it (propensity generate, propensity load, or your EL tool) with the columns "
        "customer_id, campaign_id, event_type, occurred_at; an optional table may be empty but "
        "must exist."
    ) in dbt_message


def test_missing_or_renamed_column(broken):
    assert (
        "raw table raw.orders has no column ordered_at TIMESTAMP (it has order_id, customer_id, "
        "order_time): rename the column in your load, or point the source at a view that "
        "selects it under the contract name; "
    ) in broken[2]
    assert (
        "raw table raw.orders has no column ordered_at TIMESTAMP (the raw contract); it has "
        "order_id, customer_id, order_time. Rename the column in your load, or point the source "
        "at a view that selects it under the contract name."
    ) in broken[4]


def test_wrong_column_type(broken):
    assert (
        "raw table raw.customers column customer_id has type VARCHAR and 2 values that do not "
        "convert to BIGINT (e.g. 'C-1'): fix the values or the column type in your load"
    ) in broken[2]
    assert (
        "raw table raw.customers column customer_id has type VARCHAR and 2 values that do not "
        "convert to BIGINT (e.g. 'C-1'). Fix the values or the column type in your load."
    ) in broken[4]


def test_castable_column_type_is_accepted(broken):
    """order_lines.quantity stored as VARCHAR '1', '-1' converts to INTEGER: no error."""
    assert "order_lines" not in broken[2] and "stg_raw__order_lines" not in broken[4]
    con = duckdb.connect(str(broken[3]), read_only=True)
    try:
        rows = con.execute(
            "select quantity, is_return from staging.stg_raw__order_lines order by quantity"
        ).fetchall()
    finally:
        con.close()
    assert rows == [(-1, True), (1, False)]


# ------------------------------------------------------------------- messy input that is cleaned


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> tuple[int, str, str, Path]:
    settings = write_messy_warehouse(tmp_path_factory.mktemp("messy") / "wh.duckdb")
    proc = cli_process("build", warehouse=settings.warehouse)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    return proc.returncode, " ".join(out.split()), err, settings.warehouse


def _query(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _features(path: Path) -> dict[int, tuple]:
    rows = _query(
        path,
        "select customer_id, order_count, spend_total, days_since_last_order "
        "from marts.fct_customer_features where as_of_date = date '2024-01-03' order by 1",
    )
    return {r[0]: r[1:] for r in rows}


def test_orders_without_lines(messy):
    assert (
        "warning: 1 rows of orders have no row in order_lines (e.g. order_id 13). They are "
        "dropped: an order counts (as an order, a purchase or a return) only through its lines."
    ) in messy[1]
    assert _query(messy[3], "select count(*) from intermediate.int_orders_summarised") == [(3,)]
    assert _features(messy[3])[2][0] == 0  # customer 2: a return and the empty order 13


def test_zero_quantity(messy):
    assert (
        "warning: 1 rows in order_lines have quantity = 0 (e.g. order_id 12, quantity = 0). "
        "They are ignored: neither a purchase nor a return, zero spend."
    ) in messy[1]
    assert _query(
        messy[3], "select items from intermediate.int_orders_summarised where order_id = 12"
    ) == [(1,)]


def test_zero_unit_price(messy):
    assert (
        "warning: 1 rows in order_lines have unit_price = 0 (e.g. order_id 12, unit_price = 0.0)."
        " They are kept: free items count as purchases with zero spend."
    ) in messy[1]
    # customer 1: order 10 (2.00) and order 12 (a free item) are two purchases, 2.00 spent
    assert _features(messy[3])[1][:2] == (2, 2.0)


def test_timezone_aware_timestamps_are_converted_to_utc(messy):
    rows = _query(messy[3], "select ordered_at from staging.stg_raw__orders where order_id = 12")
    assert rows == [(dt.datetime(2024, 1, 2, 4, 30),)]  # 23:30 at UTC-5
    # the last order is on 2024-01-02 (UTC), one day before the scoring cutoff 2024-01-03
    assert _features(messy[3])[1][2] == 1


def test_customers_with_no_orders(messy):
    assert _features(messy[3])[3] == (0, 0.0, 3650)  # zero counts, recency at the cap


def test_product_group_matching_nothing(messy):
    assert (
        "warning: product group party matches no product and is skipped; check its patterns in "
        "raw.product_group_rules (propensity groups set FILE.yml)"
    ) in messy[1]
    groups = dict(_query(messy[3], "select product_group, is_active from marts.dim_product_groups"))
    assert groups == {"any": True, "wine": True, "kids": True, "party": False, "sneaky": False}
    assert {
        r[0]
        for r in _query(messy[3], "select distinct product_group from marts.fct_scoring_features")
    } <= {"any", "wine", "kids"}


def test_group_pattern_with_sql_matches_as_text(messy):
    """A pattern is a bound value, never SQL: the `kid's` pattern matches its product, the one
    holding `drop table` matches nothing and raw.orders is still there."""
    rows = _query(
        messy[3],
        "select product_group, product_id from intermediate.int_products_mapped_to_groups "
        "where product_group in ('kids', 'sneaky')",
    )
    assert rows == [("kids", "c")]
    assert _query(messy[3], "select count(*) from raw.orders") == [(4,)]


def test_no_training_cutoff_is_a_warning_not_an_error(messy):
    """A young warehouse (two days of history) still builds features and scoring features."""
    assert "warning: no training cutoff: the scoring cutoff is 2024-01-03" in messy[1]
    assert _query(messy[3], "select count(*) from marts.fct_scoring_features") != [(0,)]


# -------------------------------------------------------------------------------- empty warehouse


@pytest.fixture(scope="module")
def empty(tmp_path_factory) -> tuple[int, str, Path]:
    path = tmp_path_factory.mktemp("empty") / "wh.duckdb"
    con = connect(path)
    try:
        write_raw_tables(con, {t: empty_raw_table(t) for t in RAW_CONTRACT})
    finally:
        con.close()
    proc = cli_process("build", warehouse=path)
    _, err = proc.communicate(timeout=900)
    return proc.returncode, " ".join(err.split()), path


def test_empty_warehouse(empty, capsys):
    code, err, path = empty
    assert code == 1
    assert err.startswith("error: dbt build failed:")
    assert (
        "What the failing tests found: * as_of_date is null in dim_cutoffs. The scoring cutoff is "
        "the day after the last order: the warehouse has no order with lines. Load orders or set "
        "dbt var scoring_cutoff."
    ) in err
    assert table_fingerprint(path, SCORES_TABLE) == {SCORES_TABLE: "absent"}
    # training then says what to build first
    assert main(["--warehouse", str(path), "train"]) == 1
    assert capsys.readouterr().err == (
        "error: model spec 'purchase_propensity': training relation marts.fct_training_examples "
        "does not exist in the warehouse; build it with `propensity build` (dbt build) or fix "
        "`relation`\n"
    )


def test_rebuild_with_the_same_inputs_gives_identical_tables(messy):
    """Idempotence by content: a second `propensity build` leaves every built table and view of
    the intermediate, marts and ml schemas with the same ordered content."""
    path = messy[3]
    tables = [
        f"{schema}.{name}"
        for schema, name in _query(
            path,
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('intermediate', 'marts', 'ml') order by all",
        )
    ]
    assert "marts.fct_customer_features" in tables and "marts.fct_scoring_features" in tables
    before = table_fingerprint(path, *tables, exclude=("scored_at",))
    proc = cli_process("build", warehouse=path)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    assert table_fingerprint(path, *tables, exclude=("scored_at",)) == before
