"""dbt on Spark: dbt-spark's session method, in this process, with the scoring functions."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from models_py._settings import Settings
from models_py.spark._session import get_spark

logger = logging.getLogger(__name__)


def champion_payloads(spark) -> dict[str, tuple[str, bytes]]:
    """Every champion's (sha256, ONNX bytes) by model id, read on the driver; empty before the
    registry exists. The executors verify the bytes against the sha256 before scoring."""
    if not (
        spark.catalog.tableExists("ml.model_aliases")
        and spark.catalog.tableExists("ml.model_registry")
    ):
        return {}
    rows = spark.sql(
        "select registry.model_id, registry.onnx_sha256, registry.onnx_model "
        "from ml.model_aliases as aliases "
        "inner join ml.model_registry as registry on aliases.model_id = registry.model_id "
        "where aliases.alias = 'champion'"
    ).collect()
    return {
        r["model_id"]: (r["onnx_sha256"], bytes(r["onnx_model"]))
        for r in rows
        if r["onnx_model"] is not None and r["onnx_sha256"] is not None
    }


def run_dbt_in_session(settings: Settings, args: Sequence[str]) -> tuple[int, str]:
    """Run one dbt command on the `spark` target in this process; (exit code, dbt's messages).

    The SparkSession (`get_spark`) is created first and the scoring functions registered on it
    with the current champions, so dbt-spark's ``getOrCreate()`` finds both.
    """
    from dbt.cli.main import dbtRunner

    from scoring._spark import register_spark_udfs

    spark = get_spark(settings)
    register_spark_udfs(spark, champion_payloads(spark))
    messages: list[str] = []

    def collect(event) -> None:
        if event.info.level in ("info", "warn", "error"):
            messages.append(event.info.msg)

    result = dbtRunner(callbacks=[collect]).invoke(
        ["--no-use-colors", "--log-format", "text", *args, "--target", "spark"]
    )
    if result.exception is not None and not messages:
        messages.append(f"{type(result.exception).__name__}: {result.exception}")
    return (0 if result.success else 1), "\n".join(str(m) for m in messages)


def problem_rows(settings: Settings, relation: str, limit: int = 5) -> list[str]:
    """The `problem` column of a stored test failure table on Spark, if any."""
    spark = get_spark(settings)
    try:
        frame = spark.table(relation.replace("`", ""))
    except Exception:  # a failing test may store nothing: messages are best effort
        return []
    if "problem" not in frame.columns:
        return []
    return [r[0] for r in frame.select("problem").limit(int(limit)).collect()]
