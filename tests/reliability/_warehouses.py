"""Hand-made warehouses for the reliability catalogue (docs/reliability.md), and helpers to
fingerprint tables and run the CLI in a real process."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from models_py._settings import Settings
from models_py._warehouse import connect
from models_py.ingest._raw import empty_raw_table
from tests.conftest import REPO_ROOT, write_tiny_warehouse

T0 = dt.datetime(2024, 1, 1, 10, 0)
FUTURE = dt.datetime(2099, 1, 1)


def _i64(values: list) -> pa.Array:
    return pa.array(values, pa.int64())


def write_dirty_warehouse(path: Path) -> Settings:
    """One warehouse holding every row-level defect of the raw contract at once; each defect is
    independent of the others so every source test names exactly one problem."""
    customers = pa.table(
        {
            "customer_id": _i64([1, 2, 3, 3, None]),
            "created_at": [T0, T0, T0, T0, FUTURE],
            "country": ["UK", "FR", "DE", "DE", "ES"],
            "email_opt_in": [True, False, True, True, False],
            "is_vip": [False, False, False, False, False],
        }
    )
    orders = pa.table(
        {
            "order_id": _i64([10, 11, 12, 12, None, 13, 14, 15, 16]),
            "customer_id": _i64([1, 2, 1, 1, 2, 404, None, 2, 2]),
            "ordered_at": [T0, T0, T0, T0, T0, T0, T0, FUTURE, T0],
        }
    )
    order_lines = pa.table(
        {
            "order_id": _i64([10, 11, 12, 12, 12, 13, 14, 15, 777, None]),
            "product_id": ["a", "b", "a", "ghost", "b", "a", None, "a", "a", "a"],
            "quantity": pa.array([1, -1, 0, 1, 1, 1, 1, 1, 1, 1], pa.int32()),
            "unit_price": [2.0, 3.0, 2.0, -5.0, 0.0, 2.0, 2.0, 2.0, 2.0, 2.0],
        }
    )
    products = pa.table(
        {
            "product_id": ["a", "b", "b", None],
            "product_name": ["Red wine", "Candle", "Candle again", "Nameless"],
            "category": ["wine", "home", "home", "home"],
        }
    )
    email_events = pa.table(
        {
            "customer_id": _i64([1, None, 2]),
            "campaign_id": ["c1", "c1", "c1"],
            "event_type": ["sent", "sent", "open"],
            "occurred_at": [T0, T0, FUTURE],
        }
    )
    treatments = pa.table(
        {
            "customer_id": _i64([1, 1, None]),
            "experiment_id": ["exp1", "exp1", "exp1"],
            "arm": ["treatment", "control", "control"],
            "assigned_at": [T0, T0, T0],
        }
    )
    return write_tiny_warehouse(
        path,
        customers=customers,
        orders=orders,
        order_lines=order_lines,
        products=products,
        email_events=email_events,
        treatments=treatments,
    )


def table_fingerprint(path: Path, *tables: str, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every row (ordered) of each table, read in a read-only connection; absent tables
    map to 'absent'. Columns named in `exclude` are left out where a table has them (e.g. the
    `scored_at` run timestamp, to compare content across runs)."""
    out: dict[str, str] = {}
    con = connect(path, read_only=True)
    try:
        for table in tables:
            schema, name = table.split(".")
            exists = con.execute(
                "select count(*) from information_schema.tables "
                "where table_schema = ? and table_name = ?",
                [schema, name],
            ).fetchone()[0]
            if not exists:
                out[table] = "absent"
                continue
            columns = [r[0] for r in con.execute(f"describe {schema}.{name}").fetchall()]
            keep = ", ".join(f'"{c}"' for c in columns if c not in exclude)
            rows = con.execute(f"select {keep} from {schema}.{name} order by all").fetchall()
            out[table] = hashlib.sha256(repr(rows).encode()).hexdigest() + f":{len(rows)}"
    finally:
        con.close()
    return out


def cli_process(
    *args: str,
    warehouse: Path,
    env: dict[str, str] | None = None,
    stdout_override: object = None,
    **popen: object,
) -> subprocess.Popen:
    """`propensity ARGS` in a real process (its own session, so it can be signalled as a group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "models_py.cli", "--warehouse", str(warehouse), *args],
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        stdout=stdout_override or subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **popen,
    )


def write_messy_warehouse(path: Path) -> Settings:
    """A warehouse that builds (warnings only) although it holds every cleanable defect: a
    customer without orders, an order without lines, a zero-quantity line, a free item, order
    timestamps WITH TIME ZONE, a product group matching nothing and a pattern holding SQL."""
    customers = pa.table(
        {
            "customer_id": _i64([1, 2, 3]),
            "created_at": [T0, T0, T0],
            "country": ["UK", "FR", "DE"],
            "email_opt_in": [True, False, True],
            "is_vip": [False, False, False],
        }
    )
    order_lines = pa.table(
        {
            "order_id": _i64([10, 11, 12, 12]),
            "product_id": ["a", "b", "a", "c"],
            "quantity": pa.array([1, -1, 0, 1], pa.int32()),
            "unit_price": [2.0, 3.0, 2.0, 0.0],
        }
    )
    products = pa.table(
        {
            "product_id": ["a", "b", "c"],
            "product_name": ["Red wine", "Candle", "Kid's candle"],
            "category": ["wine", "home", "home"],
        }
    )
    rules = pa.table(
        {
            "product_group": ["wine", "party", "kids", "sneaky"],
            "match_on": ["category", "product_name", "product_name", "product_name"],
            "pattern": ["^wine$", "^balloon", "kid's", "'; drop table raw.orders; --"],
        }
    )
    settings = write_tiny_warehouse(
        path,
        customers=customers,
        order_lines=order_lines,
        products=products,
        product_group_rules=rules,
        email_events=empty_raw_table("email_events"),
    )
    con = connect(path)
    try:
        con.execute(
            "create or replace table raw.orders "
            "(order_id bigint, customer_id bigint, ordered_at timestamp with time zone)"
        )
        con.execute(
            "insert into raw.orders values (10, 1, '2024-01-01 10:00:00+00'), "
            "(11, 2, '2024-01-01 10:00:00+00'), (12, 1, '2024-01-01 23:30:00-05:00'), "
            "(13, 2, '2024-01-01 12:00:00+00')"
        )
    finally:
        con.close()
    return settings


def write_broken_contract_warehouse(path: Path) -> Settings:
    """Contract breaks a model cannot clean: a missing table, a renamed column, a column whose
    values are not of the contract type; plus a castable type difference that must pass."""
    settings = write_tiny_warehouse(path)
    con = connect(path)
    try:
        con.execute("drop table raw.email_events")
        con.execute("alter table raw.orders rename column ordered_at to order_time")
        con.execute(
            "create or replace table raw.customers as select 'C-' || customer_id as customer_id, "
            "created_at, country, email_opt_in, is_vip from raw.customers"
        )
        con.execute(
            "create or replace table raw.order_lines as select order_id, product_id, "
            "cast(quantity as varchar) as quantity, unit_price from raw.order_lines"
        )
    finally:
        con.close()
    return settings


def wait_for_line(path: Path, offset: int, marker: str, *, timeout: float, proc=None) -> float:
    """Poll a log file (from byte `offset`) until `marker` appears; returns the seconds waited.
    Fails early when `proc` ends first."""
    import time

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if path.exists():
            with path.open("rb") as fh:
                fh.seek(offset)
                if marker.encode() in fh.read():
                    return time.monotonic() - started
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process ended before {marker!r}:\n{out}\n{err}")
        time.sleep(0.05)
    raise AssertionError(f"{marker!r} did not appear in {path} within {timeout}s")


def kill_group(proc: subprocess.Popen, sig: int, *, timeout: float = 30) -> None:
    """Signal a process started by `cli_process` and all its children (dbt runs in a child), and
    wait until every one of them is gone (a killed child releases the warehouse file)."""
    import time

    os.killpg(proc.pid, sig)
    proc.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of group {proc.pid} still run {timeout}s after signal {sig}")


def log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


__all__ = [
    "kill_group",
    "log_size",
    "table_fingerprint",
    "wait_for_line",
    "write_broken_contract_warehouse",
    "write_dirty_warehouse",
    "write_messy_warehouse",
]
