"""Scoring engines compared on the same data: 1M rows x 50 features, one HGB model (100 trees,
depth 6).

    .venv/bin/python benchmarks/bench_scoring_engines.py [--rows 1000000] [--features 50]

Cases (each in its own process, so peak memory is per case):

- ``read_list``: DuckDB ``select [f1..fn]::FLOAT[n]`` to Arrow, flattened to a float32 matrix.
- ``read_numpy``: DuckDB ``fetchnumpy()`` of the n columns, stacked into a matrix.
- ``ort_1t`` / ``ort_2t``: bare onnxruntime on an in-memory float32 matrix, 1 or 2 intra-op threads.
- ``sklearn``: ``predict_proba`` of the fitted estimator on a pandas frame.
- ``duckdb_udf_1t`` / ``duckdb_udf_2t``: plain DuckDB (2 threads) ``create table as select
  propensity_score(...)`` through the plugin's UDF, onnxruntime with 1 or 2 intra-op threads.
- ``dbt_sql``: ``dbt run`` of ``fct_propensity_scores`` (the project's model, scores + deciles)
  with the plugin in a temporary profiles.yml.
- ``dbt_python``: ``dbt run`` of a throwaway dbt Python model in a temporary project that streams
  record batches through ``scoring.score_record_batches`` (scores only, no deciles).

Writes docs/benchmarks.md section ``scoring-engines`` and prints the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import add_lock_argument, bench_lock, peak_mb  # noqa: E402

CASES = [
    "read_list",
    "read_numpy",
    "ort_1t",
    "ort_2t",
    "sklearn",
    "duckdb_udf_1t",
    "duckdb_udf_2t",
    "dbt_sql",
    "dbt_python",
]
MODEL_ID = "bench_hgb_v1"

PROFILES = """propensity:
  target: duckdb
  outputs:
    duckdb:
      type: duckdb
      path: "{{{{ env_var('PROPENSITY_WAREHOUSE') }}}}"
      threads: 2
      plugins:
        - module: scoring.dbt_plugin
          config:
            intra_op_threads: {threads}
"""

PY_PROJECT = """name: bench_scoring
version: "0.1.0"
config-version: 2
profile: propensity
model-paths: ["models"]
"""

PY_MODEL = """
import pyarrow as pa

import scoring


def model(dbt, session):
    dbt.config(materialized="table")
    model_id, onnx_model, sha = session.execute(
        "select registry.model_id, registry.onnx_model, registry.onnx_sha256 "
        "from ml.model_aliases as aliases inner join ml.model_registry as registry "
        "on aliases.model_id = registry.model_id where aliases.alias = 'champion'"
    ).fetchall()[0]
    model = scoring.load_model(onnx_model, sha, model_id=model_id, intra_op_threads=2)
    columns = ", ".join('"' + c + '"' for c in model.feature_names)
    reader = session.sql(
        "select customer_id, product_group, as_of_date, "
        f"[{columns}]::float[{model.n_features}] as features from marts.fct_scoring_features"
    ).to_arrow_reader(65536)
    schema = pa.schema(
        [f for f in reader.schema if f.name != "features"] + [pa.field("score", pa.float32())]
    )
    batches = scoring.score_record_batches(reader, model, features_column="features")
    return pa.RecordBatchReader.from_batches(schema, batches)
"""


def feature_names(n: int) -> list[str]:
    return [f"f{i:02d}" for i in range(n)]


def prepare(warehouse: Path, rows: int, n_features: int) -> dict[str, float]:
    """Features table, a fitted HGB, its ONNX export in ml.model_registry as champion."""
    import duckdb
    import numpy as np
    from onnx import helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import HistGradientBoostingClassifier

    names = feature_names(n_features)
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("create schema if not exists marts")
        cols = ", ".join(
            f"cast(((hash(i * {j + 7}) % 10000) / 1000.0) - 5 as double) as {name}"
            for j, name in enumerate(names)
        )
        con.execute(
            "create or replace table marts.fct_scoring_features as select i as customer_id, "
            "'any' as product_group, date '2025-01-01' as as_of_date, "
            f"{cols} from range({rows}) t(i)"
        )
        sample = con.execute(
            f"select {', '.join(names)} from marts.fct_scoring_features using sample 100000 rows"
        ).fetchnumpy()
        X = np.column_stack([sample[n] for n in names]).astype(np.float32)
        rng = np.random.default_rng(0)
        logit = X[:, 0] + X[:, 1] * X[:, 2] / 5 - np.abs(X[:, 3]) + rng.normal(size=len(X))
        y = (logit > 0).astype(int)
        est = HistGradientBoostingClassifier(
            max_iter=100, max_depth=6, early_stopping=False, random_state=0
        ).fit(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            onx = convert_sklearn(
                est,
                initial_types=[("features", FloatTensorType([None, n_features]))],
                options={id(est): {"zipmap": False}},
                target_opset=17,
            )
        helper.set_model_props(
            onx,
            {
                "model_id": MODEL_ID,
                "product_group": "any",
                "feature_names": json.dumps(names),
                "feature_hash": hashlib.sha256(json.dumps(names).encode()).hexdigest(),
            },
        )
        data = onx.SerializeToString()
        sha = hashlib.sha256(data).hexdigest()
        con.execute("create schema if not exists ml")
        con.execute(
            "create or replace table ml.model_registry (model_id varchar, spec_name varchar, "
            "product_group varchar, algorithm varchar, feature_names varchar, "
            "feature_hash varchar, onnx_model blob, onnx_sha256 varchar, trained_at timestamp, "
            "training_relation varchar)"
        )
        con.execute(
            "create or replace table ml.model_aliases (product_group varchar, alias varchar, "
            "model_id varchar, updated_at timestamp)"
        )
        now = dt.datetime.now()
        con.execute(
            # The scoring model scores champions trained on marts.fct_training_examples only.
            "insert into ml.model_registry values (?, 'hgb', 'any', 'hgb', ?, ?, ?, ?, ?, "
            "'marts.fct_training_examples')",
            [
                MODEL_ID,
                json.dumps(names),
                hashlib.sha256(json.dumps(names).encode()).hexdigest(),
                data,
                sha,
                now,
            ],
        )
        con.execute(
            "insert into ml.model_aliases values ('any', 'champion', ?, ?)", [MODEL_ID, now]
        )
    finally:
        con.close()
    import pickle  # only for this benchmark's sklearn baseline, never in scoring

    (warehouse.parent / "estimator.pkl").write_bytes(pickle.dumps(est))
    return {"trees": float(est.n_iter_), "onnx_kb": len(data) / 1024}


def _model_bytes(con) -> tuple[bytes, str]:
    return con.execute(
        "select onnx_model, onnx_sha256 from ml.model_registry where model_id = ?", [MODEL_ID]
    ).fetchall()[0]


def _matrix(con, names: list[str]):
    import scoring

    cols = ", ".join(names)
    table = con.sql(
        f"select [{cols}]::float[{len(names)}] as features from marts.fct_scoring_features"
    ).to_arrow_table()
    return scoring.features_to_matrix(table.column("features"))


def run_case(case: str, warehouse: Path, n_features: int) -> dict[str, float]:
    """Run one case; returns rows, seconds (timed part only) and extra facts."""
    import duckdb
    import numpy as np

    names = feature_names(n_features)
    out: dict[str, float] = {}
    if case in ("dbt_sql", "dbt_python"):
        from models_py._dbt import run_dbt
        from models_py._settings import Settings

        work = Path(tempfile.mkdtemp(prefix="bench_dbt_", dir=warehouse.parent))
        (work / "profiles.yml").write_text(PROFILES.format(threads=1))
        if case == "dbt_sql":
            project = ROOT / "dbt_project"
            command = ["run", "--select", "fct_propensity_scores"]
            node = "fct_propensity_scores"
        else:
            project = work / "project"
            (project / "models").mkdir(parents=True)
            (project / "dbt_project.yml").write_text(PY_PROJECT)
            (project / "models" / "bench_python_scores.py").write_text(PY_MODEL)
            command = ["run", "--select", "bench_python_scores"]
            node = "bench_python_scores"
        settings = Settings(warehouse=warehouse, profiles_dir=work, dbt_project_dir=project)
        run_dbt(settings, ["parse"])  # parse once: the timed run measures running, not parsing
        cpu = _children_cpu()
        start = time.perf_counter()
        run_dbt(settings, command)
        out["seconds"] = time.perf_counter() - start
        out["cpu_seconds"] = _children_cpu() - cpu
        target = warehouse.parent / ".dbt" / warehouse.stem / "target" / "run_results.json"
        results = json.loads(target.read_text())["results"]
        out["node_seconds"] = next(
            r["execution_time"] for r in results if r["unique_id"].endswith("." + node)
        )
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            schema = "marts" if case == "dbt_sql" else "main"
            out["rows"] = con.execute(f"select count(*) from {schema}.{node}").fetchall()[0][0]
        finally:
            con.close()
        return out

    con = duckdb.connect(str(warehouse), read_only=case.startswith("read") or case == "sklearn")
    cpu = {"start": 0.0}
    con.execute("set threads = 2")
    try:
        if case == "read_list":
            import scoring  # import time is not part of the read

            assert scoring.features_to_matrix

            start, cpu["start"] = time.perf_counter(), time.process_time()
            matrix = _matrix(con, names)
            out["seconds"] = time.perf_counter() - start
            out["cpu_seconds"] = time.process_time() - cpu["start"]
            out["rows"] = matrix.shape[0]
        elif case == "read_numpy":
            start, cpu["start"] = time.perf_counter(), time.process_time()
            cols = con.sql(
                f"select {', '.join(names)} from marts.fct_scoring_features"
            ).fetchnumpy()
            matrix = np.column_stack([cols[n] for n in names]).astype(np.float32)
            out["seconds"] = time.perf_counter() - start
            out["cpu_seconds"] = time.process_time() - cpu["start"]
            out["rows"] = matrix.shape[0]
        elif case in ("ort_1t", "ort_2t"):
            import scoring

            data, sha = _model_bytes(con)
            model = scoring.load_model(data, sha, intra_op_threads=int(case[4]))
            matrix = _matrix(con, names)
            start, cpu["start"] = time.perf_counter(), time.process_time()
            scores = scoring.score_batch(model, matrix)
            out["seconds"] = time.perf_counter() - start
            out["cpu_seconds"] = time.process_time() - cpu["start"]
            out["rows"] = len(scores)
            start, cpu["start"] = time.perf_counter(), time.process_time()
            chunked = [
                scoring.score_batch(model, matrix[i : i + 2048])
                for i in range(0, len(matrix), 2048)
            ]
            out["seconds_2048_chunks"] = time.perf_counter() - start
            assert sum(len(c) for c in chunked) == len(scores)
        elif case == "sklearn":
            import pickle

            import pandas as pd

            est = pickle.loads((warehouse.parent / "estimator.pkl").read_bytes())
            frame = pd.DataFrame(_matrix(con, names), columns=names)
            start, cpu["start"] = time.perf_counter(), time.process_time()
            proba = est.predict_proba(frame.to_numpy())[:, 1]
            out["seconds"] = time.perf_counter() - start
            out["cpu_seconds"] = time.process_time() - cpu["start"]
            out["rows"] = len(proba)
        elif case in ("duckdb_udf_1t", "duckdb_udf_2t"):
            import scoring

            scoring.register_udfs(con, intra_op_threads=int(case[11]))
            con.execute(
                "select propensity_load_model(model_id, onnx_model, onnx_sha256) "
                "from ml.model_registry"
            ).fetchall()
            cols = ", ".join(names)
            start, cpu["start"] = time.perf_counter(), time.process_time()
            con.execute(
                "create or replace temp table bench_scores as select customer_id, "
                f"propensity_score('{MODEL_ID}', [{cols}]::float[{len(names)}]) as score "
                "from marts.fct_scoring_features"
            )
            out["seconds"] = time.perf_counter() - start
            out["cpu_seconds"] = time.process_time() - cpu["start"]
            out["rows"] = con.execute("select count(*) from bench_scores").fetchall()[0][0]
        else:
            raise SystemExit(f"unknown case {case}")
    finally:
        con.close()
    return out


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/")
    add_lock_argument(parser)
    args = parser.parse_args()
    if args.case is not None:
        run(args)
        return
    with bench_lock(args.lock):
        run(args)


def run(args) -> None:
    """The benchmark itself, under the lock."""

    if args.case:  # child process: one case, result as JSON on the last stdout line
        result = run_case(args.case, args.warehouse, args.features)
        result["peak_mb"] = peak_mb()
        result["load_1min"] = os.getloadavg()[0]
        print(json.dumps(result))
        return

    from benchmarks._report import machine, write_section

    with tempfile.TemporaryDirectory(prefix="bench_scoring_") as tmp:
        warehouse = Path(tmp) / "bench.duckdb"
        start = time.perf_counter()
        facts = prepare(warehouse, args.rows, args.features)
        print(f"prepared {args.rows:,} rows in {time.perf_counter() - start:.1f}s: {facts}")
        results: dict[str, dict[str, float]] = {}
        for case in CASES:
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--case",
                    case,
                    "--warehouse",
                    str(warehouse),
                    "--features",
                    str(args.features),
                ],
                capture_output=True,
                text=True,
                check=False,
                cwd=ROOT,
            )
            if proc.returncode != 0:
                print(f"{case} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
                continue
            results[case] = json.loads(proc.stdout.strip().splitlines()[-1])
            r = results[case]
            print(
                f"{case:14s} {r['rows']:>9,} rows {r['seconds']:7.2f}s "
                f"{r['rows'] / r['seconds']:>11,.0f} rows/s  peak {r['peak_mb']:,.0f} MB  {r}"
            )

    lines = [
        f"Scoring {args.rows:,} rows x {args.features} features with a HistGradientBoosting "
        f"model ({facts['trees']:.0f} trees, depth 6, ONNX {facts['onnx_kb']:.0f} KB). Machine: "
        f"{machine()}. Command: `.venv/bin/python benchmarks/bench_scoring_engines.py "
        f"--rows {args.rows} --features {args.features}`.",
        "",
        "| case | what is timed | rows/s (wall) | wall s | CPU s | rows per CPU s | peak MB "
        "| load |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    what = {
        "read_list": "DuckDB `[f..]::FLOAT[n]` -> Arrow -> float32 matrix (no scoring)",
        "read_numpy": "DuckDB `fetchnumpy()` + `np.column_stack` (no scoring)",
        "ort_1t": "bare onnxruntime, 1 intra-op thread, one call on the matrix",
        "ort_2t": "bare onnxruntime, 2 intra-op threads, one call on the matrix",
        "sklearn": "scikit-learn `predict_proba` (pandas frame -> numpy)",
        "duckdb_udf_1t": "plain DuckDB (2 threads) CTAS through `propensity_score`, ORT 1 thread",
        "duckdb_udf_2t": "plain DuckDB (2 threads) CTAS through `propensity_score`, ORT 2 threads",
        "dbt_sql": "`dbt run` of fct_propensity_scores (scores + deciles, plugin UDF)",
        "dbt_python": "`dbt run` of a dbt Python model streaming `score_record_batches`",
    }
    for case, r in results.items():
        lines.append(
            f"| `{case}` | {what[case]} | {r['rows'] / r['seconds']:,.0f} | {r['seconds']:.2f} | "
            f"{r['cpu_seconds']:.2f} | {r['rows'] / r['cpu_seconds']:,.0f} | {r['peak_mb']:,.0f} | "
            f"{r['load_1min']:.1f} |"
        )
    notes = []
    for case in ("ort_1t", "ort_2t"):
        if case in results and "seconds_2048_chunks" in results[case]:
            r = results[case]
            notes.append(
                f"`{case}` in 2,048-row calls (the UDF's chunk size): "
                f"{r['rows'] / r['seconds_2048_chunks']:,.0f} rows/s."
            )
    for case in ("dbt_sql", "dbt_python"):
        if case in results:
            r = results[case]
            notes.append(
                f"`{case}`: the model node itself took {r['node_seconds']:.2f}s "
                f"({r['rows'] / r['node_seconds']:,.0f} rows/s); the rest of the wall time is "
                "dbt start-up (imports, manifest, connection)."
            )
    notes.append(
        "CPU s: user + system time of the timed part (all threads; for dbt the whole dbt process, "
        "start-up included). load: the machine's 1-minute load average when the case ended; on "
        "this 2-core machine shared with other jobs, wall-clock rates above load 2 are depressed "
        "and rows per CPU second is the fairer comparison."
    )
    lines += ["", *[f"- {n}" for n in notes]]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("scoring-engines", "## Scoring engines\n\n" + body)


if __name__ == "__main__":
    main()
