"""Training and the registry on the Spark engine.

Training runs on one machine either way (scikit-learn on the training sample): on Spark, the
sample is read from the Spark tables through Arrow (record batches, never pandas) into the local
DuckDB file, which serves as the training workspace; the unchanged training code fits, exports
and registers the models there, and the registry tables are then copied to Spark, where dbt's
scoring model reads the champions. The DuckDB file is a working copy; Spark's ``ml`` tables are
the registry scoring uses.
"""

from __future__ import annotations

import logging
from contextlib import closing
from dataclasses import replace

from models_py._errors import WarehouseError
from models_py._settings import Settings
from models_py.spark._io import read_arrow, write_arrow
from models_py.spark._session import get_spark

logger = logging.getLogger(__name__)

#: What training reads besides the examples (the cutoffs and the groups), Spark -> DuckDB.
TRAINING_TABLES = ("fct_training_examples", "dim_cutoffs", "dim_product_groups")


def duckdb_settings(settings: Settings) -> Settings:
    """The same settings on the DuckDB engine (the local working copy)."""
    return replace(settings, engine="duckdb")


def pull_tables(
    settings: Settings, tables: tuple[str, ...] = TRAINING_TABLES, *, schema: str = "marts"
) -> dict[str, int]:
    """Copy Spark tables `schema.table` into the DuckDB file (replacing them) through Arrow."""
    from models_py._warehouse import connect, qualified

    spark = get_spark(settings)
    counts: dict[str, int] = {}
    with closing(connect(settings.warehouse)) as con:
        con.execute(f"create schema if not exists {schema}")
        for table in tables:
            if not spark.catalog.tableExists(f"{schema}.{table}"):
                raise WarehouseError(
                    f"Spark has no table {schema}.{table}: build it first "
                    f"(`propensity build --engine spark --select +{table}`)"
                )
            data = read_arrow(settings, f"select * from `{schema}`.`{table}`")
            con.register("pulled", data)
            try:
                con.execute(
                    f"create or replace table {qualified(schema, table)} as select * from pulled"
                )
            finally:
                con.unregister("pulled")
            counts[table] = data.num_rows
            logger.info("spark -> duckdb: %s.%s (%d rows)", schema, table, data.num_rows)
    return counts


def push_registry(settings: Settings) -> dict[str, int]:
    """Replace Spark's registry tables (``ml.*``) with the DuckDB working copy's."""
    from models_py._warehouse import connect
    from models_py.registry import ML_TABLES
    from models_py.registry._tables import SCHEMA, ml_table, present_tables

    counts: dict[str, int] = {}
    with closing(connect(settings.warehouse, read_only=True)) as con:
        present = present_tables(con)
        tables = {
            t: con.sql(f"select * from {ml_table(t)}").arrow().read_all()
            for t in ML_TABLES
            if t in present
        }
    spark = get_spark(settings)
    for table, data in tables.items():
        name = f"{SCHEMA}.{table}"
        if data.num_rows == 0 and (
            not spark.catalog.tableExists(name) or spark.table(name).isEmpty()
        ):
            continue  # nothing to replace; dbt's ensure_ml_tables creates missing tables
        write_arrow(settings, f"`{SCHEMA}`.`{table}`", data, mode="overwrite")
        counts[table] = data.num_rows
    logger.info("duckdb -> spark: registry (%s)", ", ".join(f"{t} {n}" for t, n in counts.items()))
    return counts


def train_on_spark(settings: Settings, **options):
    """`models_py.training.train` with the examples read from Spark and the registry written
    back to Spark. Returns the `TrainReport`."""
    from models_py._dbt import run_dbt
    from models_py.training._train import train

    local = duckdb_settings(settings)
    pull_tables(settings)
    run_dbt(local, ["run-operation", "ensure_ml_tables"])
    report = train(local, **options)
    push_registry(settings)
    return report
