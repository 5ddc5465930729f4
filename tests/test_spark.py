"""The same generated warehouse built by the same dbt project on DuckDB and on Spark (dbt-spark,
local[2]): identical features, training examples and scores; bad raw input stopped with the
raw contract's message; a killed Spark build leaves the previous table whole (docs/spark.md).

One Spark session for the module (in this process, as `propensity --engine spark` runs it), a
few thousand customers and the cutoffs of two training periods, so the module stays small.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import signal
import warnings
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

pyspark = pytest.importorskip("pyspark", reason="the Spark engine needs the `spark` extra")
if shutil.which("java") is None:
    pytest.skip("the Spark engine needs a Java runtime (make java)", allow_module_level=True)

from models_py._dbt import dbt_target_path, run_dbt  # noqa: E402
from models_py._errors import DbtRunError  # noqa: E402
from models_py._settings import Settings  # noqa: E402
from models_py.ingest.synth import generate_warehouse  # noqa: E402
from models_py.spark import (  # noqa: E402
    copy_raw_from_duckdb,
    get_spark,
    pull_tables,
    push_registry,
    read_arrow,
    stop_spark,
    write_arrow,
)
from tests.reliability._warehouses import cli_process, kill_group, wait_for_line  # noqa: E402

pytestmark = pytest.mark.slow

CUSTOMERS = 2000
VARS = {"max_training_cutoffs": 1}
SELECT = ["run", "--select", "+fct_propensity_scores", "+fct_training_examples"]
RAW = ("customers", "orders", "order_lines", "products", "email_events", "product_group_rules")
GROUPS = ("any", "wine")
#: Features of the test models: counts, money, rates, days and a group feature.
FEATURES = [
    "days_since_last_order",
    "order_count_90d",
    "spend_365d",
    "btyd_frequency",
    "avg_order_value",
    "email_open_rate_90d",
    "rfm_segment_code",
    "group_spend_365d",
    "group_days_since_last_order",
]


def _fit_model(con, group: str) -> tuple[str, bytes, str]:
    """A small gradient-boosting model of `group` on the DuckDB training examples, exported to
    ONNX as models_py does (input `features`, zipmap off, feature metadata)."""
    from onnx import helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import HistGradientBoostingClassifier

    cols = ", ".join(FEATURES)
    rows = con.execute(
        f"select {cols}, label from marts.fct_training_examples where product_group = ?", [group]
    ).fetchnumpy()
    X = np.column_stack([rows[c].astype(np.float32) for c in FEATURES])
    est = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, rows["label"])
    with warnings.catch_warnings():  # skl2onnx passes booleans to onnx.helper (not our code)
        warnings.simplefilter("ignore", DeprecationWarning)
        onx = convert_sklearn(
            est,
            initial_types=[("features", FloatTensorType([None, len(FEATURES)]))],
            options={id(est): {"zipmap": False}},
            target_opset=17,
        )
    model_id = f"{group}-spark-test"
    names = json.dumps(FEATURES)
    helper.set_model_props(
        onx,
        {
            "model_id": model_id,
            "product_group": group,
            "feature_names": names,
            "feature_hash": hashlib.sha256(names.encode()).hexdigest(),
        },
    )
    data = onx.SerializeToString()
    return model_id, data, hashlib.sha256(data).hexdigest()


def _register(con, models: list[tuple[str, str, bytes, str]]) -> None:
    """Champions in the DuckDB registry (the tables dbt's ensure_ml_tables created)."""
    now = dt.datetime(2026, 10, 1)
    for group, model_id, data, sha in models:
        con.execute(
            "insert into ml.model_registry (model_id, spec_name, product_group, algorithm, "
            "trained_at, training_relation, feature_names, onnx_model, onnx_sha256) "
            "values (?, 'spark_test', ?, 'hgb', ?, 'marts.fct_training_examples', ?, ?, ?)",
            [model_id, group, now, json.dumps(FEATURES), data, sha],
        )
        con.execute(
            "insert into ml.model_aliases values (?, 'champion', ?, ?)", [group, model_id, now]
        )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Settings, Settings]:
    """(DuckDB settings, Spark settings) of one generated warehouse built on both engines."""
    root = tmp_path_factory.mktemp("spark")
    duck = Settings(warehouse=root / "wh.duckdb", dbt_vars=VARS)
    spark = replace(duck, engine="spark")
    generate_warehouse(duck.warehouse, customers=CUSTOMERS, seed=5)
    run_dbt(duck, ["run", "--select", "+fct_training_examples", "+fct_scoring_features"])
    con = duckdb.connect(str(duck.warehouse))
    try:
        _register(con, [(g, *_fit_model(con, g)) for g in GROUPS])
    finally:
        con.close()
    run_dbt(duck, ["run", "--select", "fct_propensity_scores"])
    copy_raw_from_duckdb(spark, tables=[*RAW, "treatments"])
    push_registry(spark)
    run_dbt(spark, SELECT)
    yield duck, spark
    stop_spark()


def _both(duck: Settings, spark: Settings, sql: str, keys: list[str]):
    """The same query's rows from DuckDB and from Spark, as pandas frames sorted by `keys`."""
    con = duckdb.connect(str(duck.warehouse), read_only=True)
    try:
        left = con.sql(sql).arrow().read_all()
    finally:
        con.close()
    right = read_arrow(spark, sql)
    return (
        left.to_pandas().sort_values(keys).reset_index(drop=True),
        right.to_pandas().sort_values(keys).reset_index(drop=True),
    )


@pytest.mark.parametrize(
    ("table", "keys"),
    [
        ("fct_customer_features", ["customer_id", "as_of_date"]),
        ("fct_customer_group_features", ["customer_id", "product_group", "as_of_date"]),
        ("fct_scoring_features", ["customer_id", "product_group", "as_of_date"]),
        ("fct_training_examples", ["customer_id", "product_group", "as_of_date"]),
        ("dim_cutoffs", ["as_of_date"]),
    ],
)
def test_spark_builds_the_same_features_as_duckdb(built, table: str, keys: list[str]) -> None:
    duck, spark = built
    left, right = _both(duck, spark, f"select * from marts.{table}", keys)
    assert len(left) > 0
    assert sorted(left.columns) == sorted(right.columns)
    assert len(left) == len(right)
    for column in left.columns:
        a, b = left[column], right[column]
        if a.dtype.kind == "f":
            # Money is rounded to cents and rates to 6 places on both engines; sums of doubles
            # may differ in the last bits between engines' parallel aggregation.
            np.testing.assert_allclose(
                b.to_numpy(float), a.to_numpy(float), rtol=1e-12, atol=1e-9, err_msg=column
            )
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), column


def test_spark_scores_equal_duckdb_scores(built) -> None:
    duck, spark = built
    keys = ["customer_id", "product_group", "as_of_date"]
    sql = (
        "select customer_id, product_group, as_of_date, model_id, score, decile "
        "from marts.fct_propensity_scores"
    )
    left, right = _both(duck, spark, sql, keys)
    assert set(left["product_group"]) == set(GROUPS)
    assert len(left) == len(right) > CUSTOMERS
    assert left[keys].astype(str).equals(right[keys].astype(str))
    assert np.abs(left["score"].to_numpy() - right["score"].to_numpy()).max() < 1e-6
    assert left["score"].std() > 0.01  # the models tell customers apart
    assert (left["decile"].to_numpy() == right["decile"].to_numpy()).all()
    assert (left["model_id"] == right["model_id"]).all()


def test_rescoring_a_cutoff_on_spark_replaces_its_scores(built) -> None:
    """The daily re-run of the scores (the table exists: dbt-spark's incremental insert overwrite
    of the cutoff's partition) runs, and writes the same scores once, not twice."""
    duck, spark = built
    sql = "select customer_id, product_group, as_of_date, model_id, score, decile from "
    sql += "marts.fct_propensity_scores"
    keys = ["customer_id", "product_group", "as_of_date"]
    _, before = _both(duck, spark, sql, keys)
    run_dbt(spark, ["run", "--select", "fct_propensity_scores"])
    left, after = _both(duck, spark, sql, keys)
    assert len(after) == len(before) == len(left)
    assert after[keys].astype(str).equals(before[keys].astype(str))
    assert np.abs(after["score"].to_numpy() - left["score"].to_numpy()).max() < 1e-6
    assert (after["decile"].to_numpy() == left["decile"].to_numpy()).all()


def test_training_reads_the_spark_sample_through_arrow(built, tmp_path: Path) -> None:
    """`propensity train --engine spark` reads its sample from Spark into the local file."""
    duck, spark = built
    local = replace(spark, warehouse=tmp_path / "local.duckdb", spark_dir=spark.spark_path)
    counts = pull_tables(local, ("fct_training_examples",))
    con = duckdb.connect(str(local.warehouse), read_only=True)
    try:
        pulled = con.execute(
            "select count(*), sum(label), count(distinct as_of_date) "
            "from marts.fct_training_examples"
        ).fetchone()
    finally:
        con.close()
    con = duckdb.connect(str(duck.warehouse), read_only=True)
    try:
        expected = con.execute(
            "select count(*), sum(label), count(distinct as_of_date) "
            "from marts.fct_training_examples"
        ).fetchone()
    finally:
        con.close()
    assert counts == {"fct_training_examples": expected[0]}
    assert pulled == expected


def test_bad_raw_input_on_spark_is_named_and_writes_nothing(built) -> None:
    """A raw column renamed by the load: the raw contract's message, no table touched."""
    _, spark = built
    session = get_spark(spark)
    before = session.sql("select count(*), max(as_of_date) from marts.fct_customer_features")
    before = before.collect()[0]
    orders = read_arrow(spark, "select * from raw.orders")
    renamed = orders.rename_columns(["order_id", "customer_id", "order_time"])
    write_arrow(spark, "raw.orders_renamed", renamed, mode="overwrite")
    try:
        session.sql("alter table raw.orders rename to raw.orders_good")
        session.sql("alter table raw.orders_renamed rename to raw.orders")
        with pytest.raises(DbtRunError) as failure:
            run_dbt(spark, SELECT)
        message = str(failure.value)
        assert "raw table raw.orders has no column ordered_at TIMESTAMP" in message
        assert "order_time" in message
    finally:
        session.sql("drop table if exists raw.orders")
        session.sql("alter table raw.orders_good rename to raw.orders")
    after = session.sql("select count(*), max(as_of_date) from marts.fct_customer_features")
    assert after.collect()[0] == before


def _examples_files(spark: Settings) -> pa.Table:
    """fct_training_examples read from its Parquet files (no Spark session needed)."""
    path = spark.spark_path / "tables" / "marts.db" / "fct_training_examples"
    table = pads.dataset(path, format="parquet", partitioning="hive").to_table()
    keys = ["customer_id", "product_group", "as_of_date"]
    return table.select(sorted(table.column_names)).sort_by([(k, "ascending") for k in keys])


def test_killed_spark_build_leaves_the_previous_table_whole(built) -> None:
    """A rebuild of fct_training_examples (built whole each run) killed while it writes the new
    table: the table is the previous one (the new one replaces it only at the end), and the next
    run completes."""
    _, spark = built
    stop_spark()  # the metastore of a local session admits one process at a time
    before = _examples_files(spark)
    assert before.num_rows > 0
    args = ["--engine", "spark", "build", "--select", "fct_training_examples"]
    args += ["--vars", json.dumps(VARS)]
    log = dbt_target_path(spark).parent / "logs" / "dbt.log"
    offset = log.stat().st_size if log.exists() else 0
    proc = cli_process(*args, warehouse=spark.warehouse)
    try:
        # The statement creating the new table (logged as it starts): killed while it writes.
        wait_for_line(log, offset, "partitioned by (as_of_date)", timeout=180, proc=proc)
    finally:
        kill_group(proc, signal.SIGKILL)
    assert _examples_files(spark).equals(before)
    # The next run (in this process: a new session over the same metastore) completes.
    run_dbt(spark, ["run", "--select", "fct_training_examples"])
    assert _examples_files(spark).equals(before)
