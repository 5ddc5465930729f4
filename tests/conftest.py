"""Shared fixtures: paths to the shared datasets, tiny hand-made warehouses, and one small generated
warehouse built once per session with `dbt build`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from models_py._settings import Settings
from models_py._warehouse import connect
from models_py.ingest._groups import parse_group_rules, rules_to_arrow
from models_py.ingest._raw import empty_raw_table, write_raw_tables

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

#: Small generated warehouse used by integration tests (built once per session).
SMALL_CUSTOMERS = 3_000
SMALL_SEED = 7
SMALL_DAYS = 730


def shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real-data test: {path} is absent (it sits beside the repository in CI)")
    return path


@pytest.fixture(scope="session")
def online_retail_path() -> Path:
    return shared_file("online_retail.parquet")


empty_raw = empty_raw_table


def write_tiny_warehouse(path: Path, **overrides: pa.Table) -> Settings:
    """A hand-made warehouse: two customers, two orders (one a return), two products."""
    t0 = dt.datetime(2024, 1, 1, 10, 0)
    tables: dict[str, pa.Table] = {
        "customers": pa.table(
            {
                "customer_id": [1, 2],
                "created_at": [t0, t0],
                "country": ["UK", "FR"],
                "email_opt_in": [True, False],
                "is_vip": [False, False],
            }
        ),
        "orders": pa.table({"order_id": [10, 11], "customer_id": [1, 2], "ordered_at": [t0, t0]}),
        "order_lines": pa.table(
            {
                "order_id": [10, 11],
                "product_id": ["a", "b"],
                "quantity": pa.array([1, -1], pa.int32()),
                "unit_price": [2.0, 3.0],
            }
        ),
        "products": pa.table(
            {
                "product_id": ["a", "b"],
                "product_name": ["Red wine", "Candle"],
                "category": ["wine", "home"],
            }
        ),
        "email_events": empty_raw("email_events"),
        "treatments": empty_raw("treatments"),
        "product_group_rules": rules_to_arrow(
            parse_group_rules({"product_groups": {"wine": {"category": ["^wine$"]}}})
        ),
    }
    tables.update(overrides)
    con = connect(path)
    try:
        write_raw_tables(con, tables)
    finally:
        con.close()
    return Settings(warehouse=path)
