"""Where the registry tables live: the schema name (one setting), the table names, and the checks
that they exist.

The DDL lives in ONE place, the dbt macro ``ensure_ml_tables()`` (dbt_project/macros), run by
``on-run-start``; `ensure_ml_tables` runs it alone for a warehouse no dbt build has touched. The
schema is dbt's var ``registry_schema``, whose default is `SCHEMA`.
"""

from __future__ import annotations

from contextlib import closing

from models_py._errors import WarehouseError
from models_py._warehouse import connect, qualified

#: The registry schema. Every Python statement on a registry table names it through `ml_table`.
SCHEMA = "ml"
ML_TABLES = (
    "model_registry",
    "model_aliases",
    "alias_history",
    "model_metrics",
    "lift_by_decile",
    "calibration_bins",
    "feature_importance",
    "reference_distributions",
    "retrain_decisions",
    "curve_points",
    "uplift_model_sets",
    "uplift_model_parts",
    "uplift_aliases",
    "uplift_metrics",
    "uplift_bins",
)
ALIASES = ("champion", "challenger")


def ml_table(table: str) -> str:
    """The quoted, schema-qualified name of registry table `table`."""
    if table not in ML_TABLES:
        raise ValueError(f"{table!r} is not a registry table")
    return qualified(SCHEMA, table)


def present_tables(con) -> set[str]:
    """The registry tables that exist in the warehouse."""
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = ?", [SCHEMA]
    ).fetchall()
    return {r[0] for r in rows} & set(ML_TABLES)


def require_ml_tables(con) -> None:
    """Raise a `WarehouseError` naming the fix when the registry schema lacks a table."""
    present = present_tables(con)
    missing = [t for t in ML_TABLES if t not in present]
    if missing:
        raise WarehouseError(
            "the model registry tables are missing "
            f"({', '.join(f'{SCHEMA}.{t}' for t in missing)}): "
            "run dbt build first (`propensity build`), or create them alone with "
            "`dbt run-operation ensure_ml_tables`"
        )


def ensure_ml_tables(settings) -> None:
    """Create the registry tables when the schema holds none (dbt ``ensure_ml_tables``).

    A warehouse holding only a loaded dataset (no dbt build yet) needs them before training.
    """
    from models_py._dbt import run_dbt

    with closing(connect(settings.warehouse)) as con:
        empty = not present_tables(con)
    if empty:
        run_dbt(settings, ["run-operation", "ensure_ml_tables"])
