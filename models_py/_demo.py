"""`propensity demo`: the whole pipeline on a generated warehouse, with a printed summary."""

from __future__ import annotations

import time

from models_py._dbt import run_dbt
from models_py._settings import Settings
from models_py._warehouse import connect


def run_demo(settings: Settings, *, customers: int, seed: int, console) -> None:
    """Generate a warehouse, build it with dbt, and print what was built."""
    from models_py.synth import generate_warehouse

    started = time.perf_counter()
    console.rule("1/2 generate a synthetic warehouse")
    report = generate_warehouse(settings.warehouse, customers=customers, seed=seed)
    console.print(report.summary())

    console.rule("2/2 dbt build (staging, features, marts, tests)")
    outcome = run_dbt(settings, ["build"])
    console.print(
        f"{outcome.count('success')} models built, {outcome.count('pass')} tests passed, "
        f"{outcome.count('warn')} warnings"
    )

    con = connect(settings.warehouse, read_only=True)
    try:
        rows = con.execute(
            "select table_schema, table_name, estimated_size from duckdb_tables() "
            "where table_schema in ('raw', 'marts') order by table_schema, table_name"
        ).fetchall()
    finally:
        con.close()
    console.rule("summary")
    for schema, table, n in rows:
        console.print(f"  {schema}.{table:<32} {n:>12,} rows")
    console.print(
        f"warehouse: {settings.warehouse}\n"
        f"done in {time.perf_counter() - started:.0f}s. Explore it with: "
        f"duckdb {settings.warehouse}"
    )
