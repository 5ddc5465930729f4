"""Tables in and out of Spark through Arrow and Parquet (never a whole table through pandas)."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from models_py._errors import WarehouseError
from models_py._settings import Settings
from models_py.spark._session import get_spark

logger = logging.getLogger(__name__)


def _as_timestamps(frame):
    """TIMESTAMP_NTZ columns (Parquet timestamps without a zone, as DuckDB writes them) as Spark
    TIMESTAMP: the session time zone is UTC, so the wall-clock values stay as they were."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampNTZType

    return frame.select(
        *[
            F.col(f.name).cast("timestamp").alias(f.name)
            if isinstance(f.dataType, TimestampNTZType)
            else F.col(f.name)
            for f in frame.schema.fields
        ]
    )


def copy_raw_from_duckdb(
    settings: Settings, *, schema: str = "raw", tables: Sequence[str] | None = None
) -> dict[str, int]:
    """Copy the tables of `schema` in the DuckDB warehouse into Spark tables of the same names
    (Parquet), replacing them. Returns the row count per table.

    This is how `propensity generate --engine spark` and the benchmark load Spark: the generator
    writes DuckDB, DuckDB writes Parquet files, Spark reads them into its catalogue.
    """
    from models_py._warehouse import connect, qualified

    spark = get_spark(settings)
    counts: dict[str, int] = {}
    scratch = Path(tempfile.mkdtemp(prefix="raw-", dir=settings.spark_path))
    try:
        with closing(connect(settings.warehouse, read_only=True)) as con:
            names = [
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables "
                    "where table_schema = ? order by table_name",
                    [schema],
                ).fetchall()
            ]
            if tables is not None:
                missing = sorted(set(tables) - set(names))
                if missing:
                    raise WarehouseError(
                        f"{settings.warehouse} has no table "
                        + ", ".join(f"{schema}.{t}" for t in missing)
                    )
                names = [n for n in names if n in tables]
            for name in names:
                path = scratch / f"{name}.parquet"
                con.execute(
                    f"copy (select * from {qualified(schema, name)}) to '{path}' (format parquet)"
                )
                counts[name] = con.execute(
                    f"select count(*) from {qualified(schema, name)}"
                ).fetchone()[0]
        spark.sql(f"create database if not exists `{schema}`")
        for name in names:
            frame = _as_timestamps(spark.read.parquet(str(scratch / f"{name}.parquet")))
            frame.write.mode("overwrite").format("parquet").saveAsTable(f"`{schema}`.`{name}`")
            logger.info("spark: %s.%s (%d rows)", schema, name, counts[name])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return counts


def read_arrow(settings: Settings, sql: str) -> pa.Table:
    """The result of a Spark SQL query as an Arrow table, collected batch by batch through Arrow
    (no pandas): what training reads its sample with."""
    spark = get_spark(settings)
    frame = spark.sql(sql)
    if hasattr(frame, "toArrow"):  # pyspark >= 4
        return frame.toArrow()
    batches = frame._collect_as_arrow()  # pyspark 3.5: the same path, not yet public
    if not batches:
        from pyspark.sql.pandas.types import to_arrow_schema

        return to_arrow_schema(frame.schema).empty_table()
    return pa.Table.from_batches(batches)


def write_arrow(settings: Settings, table: str, data: pa.Table, *, mode: str = "append") -> None:
    """Append (or overwrite) Arrow rows into a Spark table, by column name, through Parquet."""
    spark = get_spark(settings)
    scratch = Path(tempfile.mkdtemp(prefix="write-", dir=settings.spark_path))
    try:
        pq.write_table(data, scratch / "part.parquet")
        frame = _as_timestamps(spark.read.parquet(str(scratch / "part.parquet")))
        if not spark.catalog.tableExists(table.replace("`", "")):
            frame.write.format("parquet").saveAsTable(table)
            return
        from pyspark.sql import functions as F

        target = spark.table(table)
        frame = frame.select(
            *[F.col(f.name).cast(f.dataType).alias(f.name) for f in target.schema.fields]
        )
        frame.write.insertInto(table, overwrite=(mode == "overwrite"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
