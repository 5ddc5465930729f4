"""Incremental intermediate tables in a daily run: after a day of orders arrives (with late and
corrected orders of recent days, and a cancelled one), `propensity run daily` recomputes only the
recent orders, and every intermediate table, the features and the scores of the new cutoff equal
those of a --full-refresh build from the same raw tables. The stored training examples and the
training cutoffs of dim_cutoffs are untouched. A changed product-group mapping rebuilds the order
groups whole."""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from pathlib import Path

import duckdb

from models_py._dbt import dbt_target_path, run_dbt
from models_py._settings import Settings
from models_py.cli import main
from tests.conftest import REPO_ROOT
from tests.models_py.operations.daily_fixtures import (
    BUILD_VARS,
    FIRST_CUTOFF,
    append_days,
    copy_template,
    query,
)
from tests.reliability._warehouses import table_fingerprint

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from compare_builds import compare

#: Tables of the new cutoff compared row by row (scored_at, the run's timestamp, left out).
CUTOFF_TABLES = (
    "marts.fct_customer_features",
    "marts.fct_customer_group_features",
    "marts.fct_scoring_features",
    "marts.fct_propensity_scores",
)


def _dbt_log(warehouse: Path) -> str:
    return (dbt_target_path(Settings(warehouse=warehouse)).parent / "logs" / "dbt.log").read_text()


def _correct_recent_orders(path: Path) -> None:
    """Late and corrected orders inside the 7-day lookback: a line's quantity changes (09-28), a
    cancelled order disappears (09-30), and a customer without orders gets a late first order
    (09-27), which moves that customer's first purchase day into the window."""
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "update raw.order_lines set quantity = quantity + 2 where order_id = (select "
            "max(order_id) from raw.orders where cast(ordered_at as date) = date '2026-09-28')"
        )
        cancelled = con.execute(
            "select max(order_id) from raw.orders where cast(ordered_at as date) = "
            "date '2026-09-30'"
        ).fetchone()[0]
        con.execute("delete from raw.order_lines where order_id = ?", [cancelled])
        con.execute("delete from raw.orders where order_id = ?", [cancelled])
        customer = con.execute(
            "select min(customer_id) from raw.customers where customer_id not in "
            "(select customer_id from raw.orders) and created_at < date '2026-09-01'"
        ).fetchone()[0]
        order_id = con.execute("select max(order_id) + 1 from raw.orders").fetchone()[0]
        con.execute(
            "insert into raw.orders by name select ? as order_id, ? as customer_id, "
            "timestamp '2026-09-27 12:00:00' as ordered_at",
            [order_id, customer],
        )
        con.execute(
            "insert into raw.order_lines by name select ? as order_id, product_id, 2 as quantity, "
            "9.99 as unit_price from raw.products where category = 'wine' order by product_id "
            "limit 1",
            [order_id],
        )
    finally:
        con.close()


def _cutoff_differences(a: Path, b: Path, as_of: dt.date) -> dict[str, tuple[int, int, int]]:
    """Per table: (rows of the cutoff, rows only in a, rows only in b), EXCEPT ALL both ways."""
    con = duckdb.connect()
    con.execute("attach ? as a (read_only)", [str(a)])
    con.execute("attach ? as b (read_only)", [str(b)])
    out = {}
    try:
        for table in CUTOFF_TABLES:
            columns = [r[0] for r in con.execute(f"describe a.{table}").fetchall()]
            cols = ", ".join(f'"{c}"' for c in columns if c != "scored_at")
            rows = f"select {cols} from {{}}.{table} where as_of_date = date '{as_of}'"
            out[table] = (
                con.execute(f"select count(*) from ({rows.format('a')})").fetchone()[0],
                con.execute(
                    f"select count(*) from ({rows.format('a')} except all {rows.format('b')})"
                ).fetchone()[0],
                con.execute(
                    f"select count(*) from ({rows.format('b')} except all {rows.format('a')})"
                ).fetchone()[0],
            )
    finally:
        con.close()
    return out


def _intermediate_differences(daily: Path, full: Path) -> list[str]:
    """compare() of the intermediate schemas but the training sample, which the daily run keeps
    as the last training build left it (tests below check it is untouched)."""
    sample = "intermediate.int_training_sample:"
    return [p for p in compare(daily, full, ["intermediate"], set()) if not p.startswith(sample)]


def test_daily_run_after_a_new_day_equals_a_full_rebuild(tmp_path_factory, tmp_path):
    daily = copy_template(tmp_path_factory, tmp_path, "daily.duckdb")
    new_day = append_days(daily)
    as_of = new_day + dt.timedelta(days=1)
    _correct_recent_orders(daily)
    full = tmp_path / "full.duckdb"
    shutil.copy(daily, full)
    # Training artefacts: the daily run keeps them (a rebuild with a new scoring cutoff moves them).
    kept = ("marts.fct_training_examples", "intermediate.int_training_sample")
    training = table_fingerprint(daily, *kept)
    training_cutoffs = query(
        daily, "select * from marts.dim_cutoffs where cutoff_role <> 'scoring' order by all"
    )

    assert main(["--warehouse", str(daily), "run", "daily"]) == 0
    run_dbt(
        Settings(warehouse=full),
        ["run", "--full-refresh"],
        dbt_vars={**BUILD_VARS, "scoring_cutoff": str(as_of)},
    )

    # The daily run replaced only the orders from 7 days before the newest stored order date.
    log = _dbt_log(daily)
    for table in ("int_orders_summarised", "int_order_groups_from_lines"):
        assert (
            f'delete from "daily"."intermediate"."{table}"\n'
            f"    where \"order_date\" >= cast('{FIRST_CUTOFF - dt.timedelta(days=8)}' as date);"
        ) in log
    # Its data tests checked the rows from that day on (var data_tests_since), not all history.
    since = FIRST_CUTOFF - dt.timedelta(days=8)
    assert f"ordered_at >= cast('{since}' as date)" in log
    assert f"order_date >= cast('{since}' as date)" in log
    assert _intermediate_differences(daily, full) == []
    differences = _cutoff_differences(daily, full, as_of)
    assert {t: d[1:] for t, d in differences.items()} == {t: (0, 0) for t in CUTOFF_TABLES}
    assert all(d[0] > 0 for d in differences.values()), differences
    # Stored training examples and the training cutoffs of dim_cutoffs are as they were.
    assert table_fingerprint(daily, *kept) == training
    assert (
        query(daily, "select * from marts.dim_cutoffs where cutoff_role <> 'scoring' order by all")
        == training_cutoffs
    )
    scoring = "select as_of_date from marts.dim_cutoffs where cutoff_role = 'scoring'"
    assert query(daily, scoring) == [(as_of,)]


def test_changed_product_groups_rebuild_the_order_groups_whole(tmp_path_factory, tmp_path):
    daily = copy_template(tmp_path_factory, tmp_path, "daily.duckdb")
    con = duckdb.connect(str(daily))
    try:  # beer joins group wine: the wine rows of every old order with beer change
        con.execute("insert into raw.product_group_rules values ('wine', 'category', '^beer$')")
    finally:
        con.close()
    full = tmp_path / "full.duckdb"
    shutil.copy(daily, full)

    assert main(["--warehouse", str(daily), "run", "daily"]) == 0
    run_dbt(
        Settings(warehouse=full),
        ["run", "--full-refresh", "--select", "path:models/intermediate"],
        dbt_vars=BUILD_VARS,
    )
    assert '"daily"."intermediate"."int_order_groups_from_lines" was built with product groups' in (
        _dbt_log(daily)
    )
    assert _intermediate_differences(daily, full) == []
    old_beer_orders = query(
        daily,
        "select count(*) from intermediate.int_order_groups_from_lines where product_group = "
        f"'wine' and order_date < date '{FIRST_CUTOFF - dt.timedelta(days=30)}' and order_id in "
        "(select order_id from raw.order_lines inner join raw.products using (product_id) "
        "where category = 'beer')",
    )[0][0]
    assert old_beer_orders > 0


def test_orders_table_of_an_earlier_version_is_rebuilt_once(tmp_path_factory, tmp_path, capsys):
    """A warehouse whose int_orders_summarised predates is_first_purchase_of_day: an incremental
    run would fail on the schema change, so the daily run rebuilds the intermediates whole, says
    so, and the next run is incremental again."""
    daily = copy_template(tmp_path_factory, tmp_path, "daily.duckdb")
    con = duckdb.connect(str(daily))
    try:
        con.execute(
            "alter table intermediate.int_orders_summarised drop column is_first_purchase_of_day"
        )
    finally:
        con.close()

    assert main(["--warehouse", str(daily), "run", "daily"]) == 0
    out = capsys.readouterr().out
    assert "(no column is_first_purchase_of_day): the intermediate tables were rebuilt" in out
    assert "intermediate tables: rebuilt from all history" in out
    assert "tests passed, 0 warned (every row)" in out
    flagged = query(
        daily,
        "select count(*), count(distinct (customer_id, order_date)) from "
        "intermediate.int_orders_summarised where is_first_purchase_of_day",
    )[0]
    assert flagged[0] == flagged[1] > 0

    assert main(["--warehouse", str(daily), "run", "daily"]) == 0
    out = capsys.readouterr().out
    assert "intermediate tables: orders of the last 7 stored days recomputed" in out
