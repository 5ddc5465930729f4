"""The SparkSession the project runs in: one per Python process, shared by dbt and Python.

dbt-spark's ``method: session`` (profiles.yml target `spark`) runs every model through
``SparkSession.builder.getOrCreate()`` of the process that runs dbt, so the session configured
here (local warehouse directory, metastore, time zone) is the one dbt uses, and the scoring
functions registered on it before dbt starts are the ones fct_propensity_scores calls.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from models_py._errors import ConfigError
from models_py._settings import Settings

logger = logging.getLogger(__name__)

#: Schemas the project writes on Spark (databases of the metastore).
SCHEMAS = ("raw", "staging", "intermediate", "marts", "ml", "test_failures")


def _local_config(settings: Settings) -> dict[str, str]:
    """Configuration of a local session: the warehouse directory and the Derby metastore under
    `settings.spark_path`, so tables outlive the process and several warehouses never mix."""
    home = settings.spark_path
    return {
        "spark.sql.warehouse.dir": str(home / "tables"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true"
        ),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={home}",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": settings.spark_driver_memory,
    }


def spark_config(settings: Settings) -> dict[str, str]:
    """Every setting the project's session needs (local or cluster)."""
    return {
        # Dates and timestamps are wall-clock values (DuckDB's TIMESTAMP): no zone shifts.
        "spark.sql.session.timeZone": "UTC",
        # CREATE TABLE without USING makes a Parquet data-source table, not a Hive SerDe table.
        "spark.sql.legacy.createHiveTableByDefault": "false",
        "spark.sql.sources.default": "parquet",
        # insert overwrite ... partition (as_of_date) replaces only the cutoffs written.
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # A few tasks per core; adaptive execution coalesces small shuffles further.
        "spark.sql.shuffle.partitions": str(max(2, 2 * settings.threads)),
        "spark.sql.adaptive.enabled": "true",
    }


def get_spark(settings: Settings) -> Any:
    """The process's SparkSession for `settings` (created on first call).

    A local master (``local[2]``) keeps tables and the metastore under `settings.spark_path`;
    another master (a cluster, ``sc://`` is not supported by dbt-spark's session method) uses the
    cluster's catalogue. The executors' Python is this interpreter (``PYSPARK_PYTHON``).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(
            "the Spark engine needs pyspark and dbt-spark: pip install 'propensity[spark]' "
            "(and a Java 17 runtime)"
        ) from exc
    # Spark's launcher reads these from the environment of the process that starts the JVM.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    local = settings.spark_master.startswith("local")
    if local:
        # A sandbox without DNS cannot resolve its own host name; a local master needs none.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        settings.spark_path.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.master(settings.spark_master).appName("propensity")
    config = {**(_local_config(settings) if local else {}), **spark_config(settings)}
    for key, value in config.items():
        builder = builder.config(key, value)
    spark = builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    for key, value in spark_config(settings).items():
        if not key.startswith("spark.sql.legacy") and key != "spark.sql.sources.default":
            spark.conf.set(key, value)
    for schema in SCHEMAS:
        spark.sql(f"create database if not exists `{schema}`")
    return spark


def stop_spark() -> None:
    """Stop this process's SparkSession and its JVM (which holds the local metastore's lock),
    so another process can open the same Spark warehouse; `get_spark` starts a new one."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()
    gateway = SparkContext._gateway
    if gateway is not None:
        proc = getattr(gateway, "proc", None)
        gateway.shutdown()
        if proc is not None:
            proc.kill()
            proc.wait()
    SparkContext._gateway = None
    SparkContext._jvm = None
