"""The Spark engine: the same dbt project on Spark tables, scored by the same `scoring` core.

``PROPENSITY_ENGINE=spark`` (or ``--engine spark``) makes `models_py._dbt.run_dbt` run dbt
in-process through dbt-spark's session method (profiles.yml target `spark`), in the session of
`get_spark`, with the scoring functions registered on it (docs/spark.md).
"""

from __future__ import annotations

from models_py.spark._dbt import problem_rows, run_dbt_in_session
from models_py.spark._io import copy_raw_from_duckdb, read_arrow, write_arrow
from models_py.spark._operations import SparkDailyReport, run_daily_on_spark
from models_py.spark._registry import pull_tables, push_registry, train_on_spark
from models_py.spark._session import SCHEMAS, get_spark, spark_config, stop_spark

__all__ = [
    "SCHEMAS",
    "SparkDailyReport",
    "copy_raw_from_duckdb",
    "get_spark",
    "problem_rows",
    "pull_tables",
    "push_registry",
    "read_arrow",
    "run_daily_on_spark",
    "run_dbt_in_session",
    "spark_config",
    "stop_spark",
    "train_on_spark",
    "write_arrow",
]
