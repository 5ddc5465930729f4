"""Spark local[2] against DuckDB on one machine: one cutoff's features and scoring 10 groups.

Usage::

    .venv/bin/python benchmarks/spark.py --customers 1000000          # writes docs/benchmarks.md
    .venv/bin/python benchmarks/spark.py --customers 20000 --no-write  # quick check

Each step runs ``--rounds`` times (default 2) on each engine and the fastest run is kept: the
speed of this shared machine drifts by 15-30% between runs of the same code.

One generated warehouse, built by the same dbt project on both engines in the same run:

1. DuckDB: ``dbt run`` of the scoring cutoff's features (fct_customer_features,
   fct_customer_group_features; var feature_cutoff_roles: [scoring]), timed per model node;
2. 10 gradient-boosting champions (one per product group, fitted on a sample of the scoring
   features with a synthetic label: the benchmark times scoring, not learning), registered;
3. DuckDB: ``dbt run --select fct_propensity_scores`` (10 groups x every customer);
4. Spark (dbt-spark session, local[2], in this process): the raw tables copied in (timed apart),
   then the same two runs.

Both engines use the machine's 2 cores (DuckDB threads 2, Spark local[2]), so the per-core cost
of a step is its wall time x 2 / rows: the table gives rows per core-second and the ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import machine, write_section

CORES = 2
GROUPS = 10
FEATURES = [
    "days_since_last_order",
    "order_count_30d",
    "order_count_90d",
    "order_count_365d",
    "spend_90d",
    "spend_365d",
    "avg_order_value",
    "btyd_frequency",
    "btyd_recency_days",
    "tenure_days",
    "email_open_rate_90d",
    "email_click_rate_90d",
    "days_since_last_open",
    "rfm_segment_code",
    "distinct_products_90d",
    "group_spend_365d",
    "group_order_count_365d",
    "group_days_since_last_order",
]
FEATURE_NODES = ("fct_customer_features", "fct_customer_group_features")
SCORE_NODES = ("fct_propensity_scores",)
RAW_TABLES = ("customers", "orders", "order_lines", "products", "email_events")
RAW_TABLES += ("product_group_rules", "treatments")
VARS = {"feature_cutoff_roles": ["scoring"], "max_training_cutoffs": 1}


def _node_seconds(settings, nodes) -> dict[str, float]:
    from models_py._dbt import dbt_target_path

    data = json.loads((dbt_target_path(settings) / "run_results.json").read_text())
    return {
        r["unique_id"].split(".")[-1]: r["execution_time"]
        for r in data["results"]
        if nodes is None or r["unique_id"].split(".")[-1] in nodes
    }


def _pick(nodes: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in nodes.items() if k in FEATURE_NODES}


def _timed_run(settings, select: list[str], nodes) -> tuple[float, dict[str, float]]:
    from models_py._dbt import run_dbt

    started = time.perf_counter()
    run_dbt(settings, ["run", "--select", *select])
    return time.perf_counter() - started, _node_seconds(settings, nodes)


def _best_run(settings, select: list[str], nodes, keep, rounds: int) -> dict:
    """`rounds` runs of the same selection; the one whose `keep` nodes took the least time, with
    every round's time of those nodes (this shared machine's speed drifts between runs)."""
    runs = []
    for _ in range(rounds):
        wall, seconds = _timed_run(settings, select, nodes)
        runs.append({"wall": wall, "nodes": keep(seconds), "all_nodes": seconds})
    best = min(runs, key=lambda r: sum(r["nodes"].values()))
    return {**best, "rounds": [round(sum(r["nodes"].values()), 1) for r in runs]}


def _fit(con, group: str, seed: int) -> tuple[str, bytes, str]:
    """An HGB champion for `group`: 50 trees on 20,000 rows of its scoring features, with a
    label drawn from a logistic of recency and frequency (the trees' size is what scoring pays
    for; the label only has to make them split)."""
    import numpy as np
    from onnx import helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import HistGradientBoostingClassifier

    cols = ", ".join(FEATURES)
    rows = con.execute(
        f"select {cols} from marts.fct_scoring_features where product_group = ? "
        "order by hash(customer_id) limit 20000",
        [group],
    ).fetchnumpy()
    X = np.column_stack([rows[c].astype(np.float32) for c in FEATURES])
    rng = np.random.default_rng(seed)
    logit = 1.5 - 0.02 * X[:, 0] + 0.3 * X[:, 2] + rng.normal(size=len(X))
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-logit))).astype(int)
    est = HistGradientBoostingClassifier(max_iter=50, early_stopping=False, random_state=seed)
    est.fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        onx = convert_sklearn(
            est,
            initial_types=[("features", FloatTensorType([None, len(FEATURES)]))],
            options={id(est): {"zipmap": False}},
            target_opset=17,
        )
    model_id = f"{group}-bench-spark"
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


def _register(settings) -> list[str]:
    import duckdb

    con = duckdb.connect(str(settings.warehouse))
    try:
        groups = [
            r[0]
            for r in con.execute(
                "select distinct product_group from marts.fct_scoring_features "
                "order by product_group = 'any' desc, product_group"
            ).fetchall()
        ][:GROUPS]
        con.execute("delete from ml.model_aliases")
        con.execute("delete from ml.model_registry")
        now = dt.datetime(2026, 10, 1)
        for i, group in enumerate(groups):
            model_id, data, sha = _fit(con, group, i)
            con.execute(
                "insert into ml.model_registry (model_id, spec_name, product_group, algorithm, "
                "trained_at, training_relation, feature_names, onnx_model, onnx_sha256) values "
                "(?, 'bench', ?, 'hgb', ?, 'marts.fct_training_examples', ?, ?, ?)",
                [model_id, group, now, json.dumps(FEATURES), data, sha],
            )
            con.execute(
                "insert into ml.model_aliases values (?, 'champion', ?, ?)", [group, model_id, now]
            )
    finally:
        con.close()
    return groups


def _count(settings, sql: str) -> int:
    import duckdb

    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def run(customers: int, workdir: Path, rounds: int = 1) -> dict:
    from models_py._dbt import run_dbt
    from models_py._settings import Settings
    from models_py.ingest.synth import generate_warehouse
    from models_py.spark import copy_raw_from_duckdb, push_registry, read_arrow, stop_spark

    workdir.mkdir(parents=True, exist_ok=True)
    duck = Settings(warehouse=workdir / f"bench_{customers}.duckdb", dbt_vars=VARS)
    spark = replace(duck, engine="spark")
    shutil.rmtree(spark.spark_path, ignore_errors=True)
    started = time.perf_counter()
    if not duck.warehouse.exists():
        generate_warehouse(duck.warehouse, customers=customers, seed=1)
    generated = time.perf_counter() - started
    out: dict = {"customers": customers, "generate_s": generated, "rounds": rounds}

    # DuckDB: one cutoff's features, then 10 champions over them.
    out["duckdb_features"] = _best_run(duck, ["+fct_scoring_features"], None, _pick, rounds)
    out["groups"] = _register(duck)
    out["duckdb_scores"] = _best_run(duck, ["fct_propensity_scores"], SCORE_NODES, dict, rounds)
    out["feature_rows"] = _count(
        duck,
        "select count(*) from marts.fct_customer_features "
        "where as_of_date = (select max(as_of_date) from marts.dim_cutoffs)",
    )
    out["score_rows"] = _count(duck, "select count(*) from marts.fct_propensity_scores")

    # Spark: raw tables in, then the same runs.
    started = time.perf_counter()
    copy_raw_from_duckdb(
        spark,
        tables=[*RAW_TABLES],
    )
    push_registry(spark)
    out["spark_load_s"] = time.perf_counter() - started
    run_dbt(spark, ["run", "--select", "stg_raw__customers"])  # JVM, metastore, parse warmed up
    out["spark_features"] = _best_run(spark, ["+fct_scoring_features"], None, _pick, rounds)
    out["spark_scores"] = _best_run(spark, ["fct_propensity_scores"], SCORE_NODES, dict, rounds)
    # Same scores on both engines (the parity the tests pin at small size).
    import duckdb
    import numpy as np

    # Every 20th customer (the whole table would pass 10M rows through the driver's heap).
    sql = (
        "select customer_id, product_group, score from marts.fct_propensity_scores "
        "where customer_id % 20 = 0 order by product_group, customer_id"
    )
    con = duckdb.connect(str(duck.warehouse), read_only=True)
    try:
        left = con.sql(sql).arrow().read_all()
    finally:
        con.close()
    right = read_arrow(spark, sql)
    out["max_score_diff"] = float(
        np.abs(left["score"].to_numpy() - right["score"].to_numpy()).max()
    )
    out["spark_score_rows"] = right.num_rows
    stop_spark()
    out["load"] = os.getloadavg()[0]
    return out


def render(r: dict, command: str) -> str:
    n_feat, n_score = r["feature_rows"], r["score_rows"]

    def row(step, engine, wall, node, rows):
        per_core = rows / (node * CORES)
        cells = f"| {step} | {engine} | {wall:.1f} | {node:.1f} | {rows:,} | {per_core:,.0f} |"
        return cells, per_core

    d_feat = sum(r["duckdb_features"]["nodes"].values())
    s_feat = sum(r["spark_features"]["nodes"].values())
    d_score = r["duckdb_scores"]["nodes"]["fct_propensity_scores"]
    s_score = r["spark_scores"]["nodes"]["fct_propensity_scores"]
    lines = [
        "## spark",
        "",
        f"Spark local[2] (dbt-spark session, Parquet tables) against DuckDB (2 threads), same "
        f"machine, same run, {r['customers']:,} customers: one cutoff's features "
        "(fct_customer_features + fct_customer_group_features, the scoring cutoff) and "
        f"scoring {len(r['groups'])} product groups (HGB, 50 trees, {len(FEATURES)} features, "
        "one champion per group) through `dbt run`.",
        "",
        f"Machine: {machine()}. Load average at the end: {r['load']:.1f}.",
        "",
        f"Command: `{command}`.",
        "",
        "| step | engine | dbt run wall s | model nodes s | rows | rows per core-second |",
        "|---|---|---:|---:|---:|---:|",
    ]
    a, pa_ = row("features, one cutoff", "DuckDB", r["duckdb_features"]["wall"], d_feat, n_feat)
    b, pb = row("features, one cutoff", "Spark", r["spark_features"]["wall"], s_feat, n_feat)
    c, pc = row("scores, 10 groups", "DuckDB", r["duckdb_scores"]["wall"], d_score, n_score)
    d, pd_ = row("scores, 10 groups", "Spark", r["spark_scores"]["wall"], s_score, n_score)
    lines += [a, b, c, d, ""]
    lines += [
        f"Spark per-core cost against DuckDB's (model nodes): features {pa_ / pb:.2f}x, "
        f"scoring {pc / pd_:.2f}x (goal: within 3x).",
        "",
        f"- Each step ran {r.get('rounds', 1)} times on each engine, one after the other; the "
        "table keeps the fastest (model nodes). Every round, model nodes s: "
        + "; ".join(
            f"{label} {', '.join(str(x) for x in r[key].get('rounds', []))}"
            for label, key in (
                ("DuckDB features", "duckdb_features"),
                ("Spark features", "spark_features"),
                ("DuckDB scores", "duckdb_scores"),
                ("Spark scores", "spark_scores"),
            )
        )
        + ".",
        f"- Rows per core-second = rows / (model node seconds x {CORES} cores); the nodes' times "
        "come from dbt's run_results.json, the wall time is the whole `dbt run` (parse, "
        "on-run-start, every selected model; on Spark in a warm session).",
        f"- Scores equal between the engines within {r['max_score_diff']:.1e} "
        f"(every 20th customer compared: {r['spark_score_rows']:,} rows).",
        f"- Loading the raw tables into Spark (DuckDB -> Parquet -> Spark tables) took "
        f"{r['spark_load_s']:.0f} s; generating the warehouse {r['generate_s']:.0f} s "
        "(0 when reused). Neither is in the table.",
        "- Every model node of the features run (s), DuckDB / Spark: "
        + ", ".join(
            f"{k} {r['duckdb_features']['all_nodes'].get(k, 0):.1f} / {v:.1f}"
            for k, v in sorted(r["spark_features"]["all_nodes"].items())
            if v >= 1
        )
        + ".",
        "- The sizing plan for 100M customers (docs/spark.md) starts from these figures.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "spark-bench")
    parser.add_argument("--no-write", action="store_true", help="print, leave the docs alone")
    parser.add_argument(
        "--rounds", type=int, default=2, help="runs of each step per engine; the fastest is kept"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    result = run(args.customers, args.workdir, args.rounds)
    command = f".venv/bin/python benchmarks/spark.py --customers {args.customers}"
    if args.rounds != 2:
        command += f" --rounds {args.rounds}"
    body = render(result, command)
    print(body)
    print(json.dumps(result, default=str, indent=1))
    if not args.no_write:
        write_section("spark", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
