"""Daily-run benchmark of issue 14: a day of orders arrives, `propensity run daily` scores it.

    .venv/bin/python benchmarks/bench_daily.py [--customers 1000000] [--reuse]

placeholder
"""

from __future__ import annotations

import datetime as dt


def append_day(con, *, copy_of_days_ago: int = 7) -> dt.date:
    """Append one day of orders to raw.orders and raw.order_lines: the day after the last order,
    holding a copy of the orders (and their lines) of `copy_of_days_ago` days before that day, with
    new order ids. Returns the new day."""
    last = con.execute("select max(cast(ordered_at as date)) from raw.orders").fetchone()[0]
    day = last + dt.timedelta(days=1)
    source = day - dt.timedelta(days=copy_of_days_ago)
    offset = con.execute("select coalesce(max(order_id), 0) from raw.orders").fetchone()[0]
    con.execute(
        "create temp table day_orders as select order_id, order_id + ? as new_order_id, "
        "customer_id, ordered_at + to_days(?) as ordered_at from raw.orders "
        "where cast(ordered_at as date) = ?",
        [offset, copy_of_days_ago, source],
    )
    con.execute("begin transaction")
    con.execute(
        "insert into raw.orders by name select new_order_id as order_id, customer_id, ordered_at "
        "from day_orders"
    )
    con.execute(
        "insert into raw.order_lines by name select day_orders.new_order_id as order_id, "
        "lines.product_id, lines.quantity, lines.unit_price from raw.order_lines as lines "
        "inner join day_orders on lines.order_id = day_orders.order_id"
    )
    con.execute("commit")
    con.execute("drop table day_orders")
    return day
