"""Scoring benchmark of issue 5: N customers x 10 product groups scored with HGB champions.

    .venv/bin/python benchmarks/bench_scoring.py [--customers 1000000] [--reuse]

A realistic warehouse, cached under ``--workdir``/c<N>/ (``--reuse`` skips what is cached):

1. ``propensity generate --customers N``;
2. ``dbt run`` of the features for the scoring cutoff and a short training history
   (``max_training_cutoffs: 4``), no tests;
3. ``propensity train`` with a benchmark spec holding only the HGB candidate (small row caps), one
   champion per product group (the 10 groups besides ``any``). The fitted sklearn estimators are
   pickled next to the warehouse for the sklearn baseline (benchmark only, never in the registry).

Then, each case in its own process (peak memory = the case's ru_maxrss, dbt's child included):

- ``dbt_first`` / ``dbt_rerun``: ``dbt run --select fct_propensity_scores`` over the real
  ``fct_scoring_features`` (first build of the table, then the idempotent re-run replacing the
  cutoff); wall time of the dbt process and the model node's time from run_results.json.
- ``dbt_capped``: the re-run with DuckDB ``memory_limit`` set in a profile variant (bounded memory).
- ``ort_1t`` / ``ort_2t``: bare onnxruntime on in-memory float32 matrices, one group at a time (the
  matrix is read untimed; only ``session.run`` is timed), 1 or 2 intra-op threads.
- ``sklearn``: ``predict_proba`` of the same fitted models on a pandas frame (the notebook way).

Writes docs/benchmarks.md section ``scoring`` (all sizes measured so far, kept in
``--workdir``/results.json) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import (  # noqa: E402
    DEFAULT_WORKDIR,
    add_lock_argument,
    bench_lock,
    peak_mb,
)

#: Child processes find the cache through this variable, set by the parent from --workdir.
_CACHE_ENV = "PROPENSITY_BENCH_SCORING_DIR"


def _cache() -> Path:
    return Path(os.environ.get(_CACHE_ENV) or DEFAULT_WORKDIR / "scoring")


GROUP_COUNT = 10
CASES = [
    "dbt_first",
    "dbt_rerun",
    "node_sql",
    "dbt_capped",
    "python_job",
    "ort_1t",
    "ort_2t",
    "sklearn",
]
#: DuckDB memory_limit of the `dbt_capped` case: the scoring run must fit (spilling if needed).
CAPPED_MEMORY = "1GB"
BUILD_VARS = {"max_training_cutoffs": 4}

SPEC = """# Benchmark spec of benchmarks/bench_scoring.py: the packaged HGB candidate only.
specs:
  - name: bench_hgb
    description: Will the customer buy in the product group within the horizon after the cutoff?
    relation: marts.fct_training_examples
    id_columns: [customer_id]
    label: label
    cutoff: as_of_date
    split: split
    weight: sample_weight
    group:
      column: product_group
      groups: {groups}
    features:
      numeric_except: []
    validation: temporal
    search:
      folds: 2
      max_rows: 5000
    candidates:
      hist_gradient_boosting:
        learning_rate: [0.1]
        max_iter: [100]
        max_leaf_nodes: [31]
        min_samples_leaf: [100]
        l2_regularization: [1.0]
    calibration: sigmoid
    threshold: max_f1
    promotion:
      metric: roc_auc
      margin: 0.005
    max_training_rows: 20000
    max_evaluation_rows: 10000
    importance_rows: 0
    random_state: 0
"""

PROFILES = """propensity:
  target: duckdb
  outputs:
    duckdb:
      type: duckdb
      path: "{{{{ env_var('PROPENSITY_WAREHOUSE') }}}}"
      threads: 2
      settings:
        preserve_insertion_order: false{memory_limit}
      plugins:
        - module: scoring.dbt_plugin
          config:
            intra_op_threads: {threads}
"""


def _workdir(customers: int) -> Path:
    return _cache() / f"c{customers}"


def _settings(customers: int):
    from models_py._settings import Settings

    work = _workdir(customers)
    return Settings(warehouse=work / "warehouse.duckdb", profiles_dir=ROOT)


def prepare(customers: int, *, reuse: bool) -> dict:
    """Generate, build and train (each step skipped with --reuse when already done)."""
    import duckdb

    from models_py._dbt import run_dbt

    work = _workdir(customers)
    facts_file = work / "facts.json"
    if reuse and facts_file.exists():
        return json.loads(facts_file.read_text())
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    settings = _settings(customers)
    facts: dict = {"customers": customers}

    start = time.perf_counter()
    subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "propensity"),
            "--warehouse",
            str(settings.warehouse),
            "generate",
            "--customers",
            str(customers),
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    facts["generate_s"] = time.perf_counter() - start
    print(f"generated {customers:,} customers in {facts['generate_s']:.0f}s", flush=True)

    start = time.perf_counter()
    run_dbt(
        settings,
        [
            "run",
            "--select",
            "+fct_scoring_features",
            "+fct_training_examples",
            "--exclude",
            "fct_propensity_scores+",
        ],
        dbt_vars=BUILD_VARS,
    )
    facts["build_s"] = time.perf_counter() - start
    print(f"built the features in {facts['build_s']:.0f}s", flush=True)

    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        groups = [
            r[0]
            for r in con.execute(
                "select distinct product_group from marts.fct_scoring_features "
                "where product_group <> 'any' order by 1"
            ).fetchall()
        ][:GROUP_COUNT]
    finally:
        con.close()
    spec = work / "bench_spec.yml"
    spec.write_text(SPEC.format(groups=json.dumps(groups)))

    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--train", "--customers", str(customers)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"training failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    facts["train_s"] = time.perf_counter() - start
    facts.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"trained {len(facts['models'])} HGB champions in {facts['train_s']:.0f}s", flush=True)
    facts_file.write_text(json.dumps(facts, indent=1))
    return facts


def train_models(customers: int) -> dict:
    """In-process training with the benchmark spec; pickles each exported estimator by model id.

    The pickles serve the sklearn baseline of this benchmark only; the registry holds ONNX.
    """
    import pickle

    import duckdb

    import models_py.training._train as train_module

    work = _workdir(customers)
    settings = _settings(customers)
    estimators = work / "estimators"
    estimators.mkdir(exist_ok=True)
    export = train_module.export_onnx

    def export_and_keep(model, **kwargs):
        model_id = kwargs["metadata"]["model_id"]
        (estimators / f"{model_id}.pkl").write_bytes(pickle.dumps(model))
        return export(model, **kwargs)

    train_module.export_onnx = export_and_keep
    report = train_module.train(settings, spec_path=work / "bench_spec.yml")
    failed = [r for r in report.results if r.status != "registered"]
    if failed:
        raise SystemExit(f"training failed: {[(r.product_group, r.message) for r in failed]}")
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        rows = con.execute(
            "select aliases.product_group, aliases.model_id, registry.feature_names "
            "from ml.model_aliases as aliases inner join ml.model_registry as registry "
            "on aliases.model_id = registry.model_id where aliases.alias = 'champion' "
            "order by 1"
        ).fetchall()
    finally:
        con.close()
    models = {}
    for group, model_id, names in rows:
        est = pickle.loads((estimators / f"{model_id}.pkl").read_bytes())
        hgb = getattr(est, "estimator", est)
        models[group] = {
            "model_id": model_id,
            "features": len(json.loads(names)),
            "trees": int(getattr(hgb, "n_iter_", 0)),
        }
    return {"models": models}


def _champions(con) -> list[tuple[str, str, list[str], bytes, str]]:
    rows = con.execute(
        "select aliases.product_group, registry.model_id, registry.feature_names, "
        "registry.onnx_model, registry.onnx_sha256 "
        "from ml.model_aliases as aliases inner join ml.model_registry as registry "
        "on aliases.model_id = registry.model_id where aliases.alias = 'champion' order by 1"
    ).fetchall()
    return [(g, m, json.loads(n), bytes(b), s) for g, m, n, b, s in rows]


def _group_matrix(con, group: str, names: list[str]):
    import scoring

    cols = ", ".join('"' + n.replace('"', '""') + '"' for n in names)
    table = con.execute(
        f"select [{cols}]::float[{len(names)}] as features from marts.fct_scoring_features "
        "where product_group = ?",
        [group],
    ).to_arrow_table()
    return scoring.features_to_matrix(table.column("features"), n_features=len(names))


def free_cores(*, seconds: float = 0.5) -> float:
    """How many cores this process can get right now: 2 threads hash (GIL released) for `seconds`.

    The sum of the threads' CPU time over the wall time: about 2.0 on an idle 2-core machine,
    about 1.0 when another job keeps one core busy. Measured before each case, so a case's wall
    time can be read against the cores it could have used.
    """
    import hashlib
    import threading

    data = os.urandom(4 << 20)
    used = []

    def work() -> None:
        start = time.thread_time()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            hashlib.sha256(data).digest()
        used.append(time.thread_time() - start)

    start = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(used) / (time.perf_counter() - start)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_case(case: str, customers: int, *, intra_op_threads: int | None) -> dict:
    """One case in this (child) process; returns seconds, rows and facts."""
    import duckdb
    import numpy as np

    settings = _settings(customers)
    out: dict = {}
    if case.startswith("dbt"):
        from models_py._dbt import dbt_target_path, run_dbt
        from models_py._settings import Settings

        if intra_op_threads is not None or case == "dbt_capped":  # a variant of the profile
            threads = intra_op_threads or 1
            limit = f"\n        memory_limit: {CAPPED_MEMORY}" if case == "dbt_capped" else ""
            profiles = _workdir(customers) / f"profiles_{threads}t_{case}"
            profiles.mkdir(exist_ok=True)
            (profiles / "profiles.yml").write_text(
                PROFILES.format(threads=threads, memory_limit=limit)
            )
            settings = Settings(warehouse=settings.warehouse, profiles_dir=profiles)
        if case == "dbt_first":
            con = duckdb.connect(str(settings.warehouse))
            con.execute("drop table if exists marts.fct_propensity_scores")
            con.close()
        run_dbt(settings, ["parse"])  # the timed run measures running, not parsing
        cpu = _children_cpu()
        start = time.perf_counter()
        run_dbt(settings, ["run", "--select", "fct_propensity_scores"])
        out["seconds"] = time.perf_counter() - start
        out["cpu_seconds"] = _children_cpu() - cpu
        target = dbt_target_path(settings)
        results = json.loads((target / "run_results.json").read_text())["results"]
        node = next(r for r in results if r["unique_id"].endswith(".fct_propensity_scores"))
        out["node_seconds"] = node["execution_time"]
        con = duckdb.connect(str(settings.warehouse), read_only=True)
        try:
            out["rows"], out["groups"] = con.execute(
                "select count(*), count(distinct product_group) from marts.fct_propensity_scores"
            ).fetchall()[0]
        finally:
            con.close()
        return out

    if case == "python_job":
        return _python_job(settings.warehouse)
    if case == "node_sql":
        return _node_sql(settings)

    con = duckdb.connect(str(settings.warehouse), read_only=True)
    con.execute("set threads = 2")
    champions = _champions(con)
    seconds = cpu_seconds = 0.0
    rows = 0
    try:
        if case in ("ort_1t", "ort_2t"):
            import scoring

            for group, model_id, names, data, sha in champions:
                model = scoring.load_model(
                    data, sha, model_id=model_id, intra_op_threads=int(case[4])
                )
                matrix = _group_matrix(con, group, names)
                feed = {model.input_name: matrix}
                start, cpu = time.perf_counter(), time.process_time()
                probabilities = model.session.run([model.output_name], feed)[0]
                seconds += time.perf_counter() - start
                cpu_seconds += time.process_time() - cpu
                rows += len(probabilities)
                del matrix, feed, probabilities
        elif case == "sklearn":
            import pickle

            estimators = _workdir(customers) / "estimators"
            for group, model_id, names, _data, _sha in champions:
                est = pickle.loads((estimators / f"{model_id}.pkl").read_bytes())
                cols = ", ".join('"' + n.replace('"', '""') + '"' for n in names)
                frame = con.execute(
                    f"select {cols} from marts.fct_scoring_features where product_group = ?",
                    [group],
                ).df()
                start, cpu = time.perf_counter(), time.process_time()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # fitted without names
                    proba = est.predict_proba(frame[names])[:, 1]
                seconds += time.perf_counter() - start
                cpu_seconds += time.process_time() - cpu
                rows += len(proba)
                assert np.isfinite(proba).all()
                del frame, proba
        else:
            raise SystemExit(f"unknown case {case}")
    finally:
        con.close()
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "rows": rows}


def _node_sql(settings) -> dict:
    """The model node's own work, without dbt: the SQL dbt ran for fct_propensity_scores in the
    last run (target/run: the delete + insert of the cutoff), executed in one connection with the
    scoring UDFs registered and the champions loaded beforehand (untimed, as dbt loads them while
    compiling). Its CPU is the node's CPU per score row that issue 17 compares with bare
    onnxruntime's."""
    import duckdb

    import scoring
    from models_py._dbt import dbt_target_path

    target = dbt_target_path(settings)
    statements = next((target / "run").rglob("fct_propensity_scores.sql")).read_text()
    if "delete from" not in statements:
        raise SystemExit(
            "node_sql replays the statements of the last dbt run of fct_propensity_scores, which "
            "was not a re-run (delete + insert): run the case dbt_rerun before it"
        )
    con = duckdb.connect(str(settings.warehouse))
    try:
        con.execute("set threads = 2")
        con.execute("set preserve_insertion_order = false")  # as the profile
        scoring.register_udfs(con, intra_op_threads=1)
        for _group, model_id, _names, data, sha in _champions(con):
            scoring.load_model(data, sha, model_id=model_id, intra_op_threads=1)
        start, cpu = time.perf_counter(), time.process_time()
        con.execute("begin")
        con.execute(statements)
        con.execute("commit")
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
        rows = con.execute("select count(*) from marts.fct_propensity_scores").fetchall()[0][0]
    finally:
        con.close()
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "rows": rows}


def _python_job(warehouse: Path) -> dict:
    """The job a user would write instead of the dbt model, timed whole: per champion, read the
    group's features from the view as Arrow, score them with onnxruntime (one intra-op thread,
    as the dbt plugin), and insert (customer, group, cutoff, model, score) into a table, all in
    one transaction that first deletes the cutoff's rows. No deciles (the dbt model computes
    them), so the comparison favours this job."""
    import duckdb
    import numpy as np
    import pyarrow as pa

    import scoring

    start, cpu = time.perf_counter(), time.process_time()
    con = duckdb.connect(str(warehouse))
    rows = 0
    try:
        con.execute("set threads = 2")
        con.execute(
            "create table if not exists marts.bench_python_job_scores (customer_id bigint, "
            "product_group varchar, as_of_date date, model_id varchar, score float)"
        )
        champions = _champions(con)
        con.execute("begin")
        con.execute("delete from marts.bench_python_job_scores")
        for group, model_id, names, data, sha in champions:
            model = scoring.load_model(data, sha, model_id=model_id, intra_op_threads=1)
            cols = ", ".join('cast("' + n.replace('"', '""') + '" as float)' for n in names)
            table = con.execute(
                f"select customer_id, as_of_date, {cols} from marts.fct_scoring_features "
                "where product_group = ?",
                [group],
            ).to_arrow_table()
            X = np.empty((table.num_rows, len(names)), dtype=np.float32)
            for j in range(len(names)):
                X[:, j] = table.column(j + 2).to_numpy(zero_copy_only=False)
            p = model.session.run([model.output_name], {model.input_name: X})[0][:, 1]
            scores = pa.table(
                {
                    "customer_id": table.column(0),
                    "product_group": pa.array([group] * table.num_rows, pa.string()),
                    "as_of_date": table.column(1),
                    "model_id": pa.array([model_id] * table.num_rows, pa.string()),
                    "score": pa.array(p, pa.float32()),
                }
            )
            con.register("job_scores", scores)
            con.execute("insert into marts.bench_python_job_scores select * from job_scores")
            con.unregister("job_scores")
            rows += table.num_rows
            del table, X, p, scores
        con.execute("commit")
    finally:
        con.close()
    return {
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        "rows": rows,
    }


def _run_child(case: str, customers: int, intra_op_threads: int | None) -> dict | None:
    command = [sys.executable, __file__, "--case", case, "--customers", str(customers)]
    if intra_op_threads is not None:
        command += ["--intra-op-threads", str(intra_op_threads)]
    proc = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode != 0:
        print(f"{case} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}", flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


WHAT = {
    "dbt_first": "`dbt run --select fct_propensity_scores`, table absent (first build)",
    "dbt_rerun": "same, re-run of the cutoff (delete + insert, the daily run)",
    "node_sql": "the model node alone: the statements `dbt_rerun` ran for it (dbt's target/run: "
    "delete + insert), in one DuckDB connection (2 threads) with the scoring UDFs and the "
    "champions loaded, no dbt",
    "dbt_capped": f"same re-run with DuckDB `memory_limit: {CAPPED_MEMORY}` in the profile",
    "python_job": "the Python job a user would write: DuckDB -> Arrow -> onnxruntime -> insert",
    "ort_1t": "bare onnxruntime, 1 intra-op thread, float32 matrix in memory",
    "ort_2t": "bare onnxruntime, 2 intra-op threads, float32 matrix in memory",
    "sklearn": "scikit-learn `predict_proba` on a pandas frame",
}


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}x"


def report(results: dict, facts_by_size: dict) -> str:
    """The markdown of section `scoring` from every size measured so far."""
    from benchmarks._report import machine

    lines = [
        "## Scoring (issue 5): N customers x 10 product groups through `dbt run`",
        "",
        "Goals: end to end >= 0.9x bare onnxruntime, >= 2.5x scikit-learn, whole scoring <= 30 s "
        "at 1M customers x 10 groups, peak memory bounded (shown at 10M score rows).",
        "",
        f"Machine: {machine()}. 2 cores shared with other jobs: the load column is the 1-minute "
        "load average at the end of each case; free cores is what two GIL-free hashing threads "
        "got just before the case (2.0 = both cores idle, 1.0 = another job held one core); "
        "cores used is CPU s / wall s of the case.",
        "",
        "Command: `.venv/bin/python benchmarks/bench_scoring.py --customers N --reuse` (the "
        "warehouse is generated, built and trained once and cached under `--workdir`, default "
        "the system temporary directory).",
        "",
    ]
    for size in sorted(results, key=int):
        facts = facts_by_size.get(size, {})
        models = facts.get("models", {})
        trees = sorted(m["trees"] for m in models.values())
        features = sorted({m["features"] for m in models.values()})
        lines += [
            f"### {int(size):,} customers",
            "",
            f"{len(models)} HGB champions (`propensity train` with the benchmark's HGB-only spec, "
            f"sigmoid-calibrated, {trees[0] if trees else '?'}-{trees[-1] if trees else '?'} trees "
            f"after early stopping, {', '.join(map(str, features))} features), scored over the "
            "scoring cutoff of `marts.fct_scoring_features` (a view joining the feature marts).",
            "",
            "| case | what is timed | score rows | wall s | rows/s | CPU s | cores used | "
            "model node s | peak MB | load | free cores |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        by_case = results[size]
        for case in CASES:
            r = by_case.get(case)
            if not r:
                continue
            node = f"{r['node_seconds']:.2f}" if "node_seconds" in r else "-"
            free = f"{r['free_cores']:.1f}" if "free_cores" in r else "-"
            lines.append(
                f"| `{case}` | {WHAT[case]} | {r['rows']:,} | {r['seconds']:.2f} | "
                f"{r['rows'] / r['seconds']:,.0f} | {r['cpu_seconds']:.2f} | "
                f"{r['cpu_seconds'] / r['seconds']:.2f} | {node} | "
                f"{r['peak_mb']:,.0f} | {r['load_1min']:.1f} | {free} |"
            )
        dbt = by_case.get("dbt_rerun") or by_case.get("dbt_first")
        orts = [by_case[c]["seconds"] for c in ("ort_1t", "ort_2t") if c in by_case]
        best_ort = min(orts) if orts else None
        skl = by_case.get("sklearn", {}).get("seconds")
        if dbt:
            used = "dbt_rerun" if "dbt_rerun" in by_case else "dbt_first"
            wall, node, cpu = dbt["seconds"], dbt["node_seconds"], dbt["cpu_seconds"]
            cpu_orts = [by_case[c]["cpu_seconds"] for c in ("ort_1t", "ort_2t") if c in by_case]
            best_ort_cpu = min(cpu_orts) if cpu_orts else None
            skl_cpu = by_case.get("sklearn", {}).get("cpu_seconds")
            lines += [
                "",
                f"Goals at this size, from `{used}`"
                " (ratios are baseline time / dbt time: above 1 means dbt is faster):",
                "",
                "| goal | dbt wall (whole `dbt run`) | model node | CPU s (dbt process) "
                "| met (wall) |",
                "|---|---:|---:|---:|---|",
                f"| >= 0.9x best bare onnxruntime | {_ratio(best_ort, wall)} | "
                f"{_ratio(best_ort, node)} | {_ratio(best_ort_cpu, cpu)} | "
                f"{'yes' if best_ort and best_ort / wall >= 0.9 else 'no'} |",
                f"| >= 2.5x scikit-learn | {_ratio(skl, wall)} | {_ratio(skl, node)} | "
                f"{_ratio(skl_cpu, cpu)} | {'yes' if skl and skl / wall >= 2.5 else 'no'} |",
                f"| whole scoring <= 30 s | {wall:.1f} s | {node:.1f} s | {cpu:.1f} s | "
                f"{'yes' if wall <= 30 else 'no'} |",
            ]
            job = by_case.get("python_job")
            if job:
                lines.append(
                    f"| faster than the hand-written Python job (issue 17) | "
                    f"{_ratio(job['seconds'], wall)} | {_ratio(job['seconds'], node)} | "
                    f"{_ratio(job['cpu_seconds'], cpu)} | "
                    f"{'yes' if job['seconds'] / wall > 1 else 'no'} |"
                )
            node_sql = by_case.get("node_sql")
            ort_1t_cpu = by_case.get("ort_1t", {}).get("cpu_seconds")
            if node_sql and ort_1t_cpu:
                ratio = node_sql["cpu_seconds"] / ort_1t_cpu
                lines.append(
                    f"| model node CPU per row <= 1.6x bare onnxruntime's (issue 17) | - | "
                    f"{ratio:.2f}x (`node_sql` CPU / `ort_1t` CPU) | "
                    f"{cpu / ort_1t_cpu:.2f}x (whole dbt process) | "
                    f"{'yes' if ratio <= 1.6 else 'no'} (node CPU) |"
                )
        lines.append("")
    sizes = sorted(results, key=int)
    for case in ("dbt_rerun", "dbt_capped"):
        peaks = [
            (results[s][case]["rows"], results[s][case]["peak_mb"])
            for s in sizes
            if case in results[s]
        ]
        if peaks:
            lines += [
                f"Peak memory of `{case}` against the number of score rows: "
                + ", ".join(f"{rows:,} rows: {mb:,.0f} MB" for rows, mb in peaks)
                + ".",
                "",
            ]
    lines += [
        "Notes: CPU s is user + system time of the timed part (for dbt the whole dbt process, "
        "start-up included). Bare onnxruntime and scikit-learn are timed on data already in "
        "memory (reading the view into a matrix or a frame is not timed); the dbt run reads the "
        "`fct_scoring_features` view (joins of the feature marts), builds the feature lists, "
        "scores, computes deciles and writes the table; `dbt_rerun` deletes the cutoff's rows and "
        "inserts the new ones straight from the select (materialization propensity_by_cutoff). "
        "The goal on the node's CPU compares `node_sql` (the same statements without dbt's "
        "start-up, parse and compile) with `ort_1t` (one thread, as the scoring plugin runs "
        "onnxruntime). With `memory_limit` in the profile DuckDB "
        "spills and the peak stays near the limit for about the same CPU time. With about one "
        "free core (free cores near 1.0) the dbt cases use one core whatever DuckDB's threads: "
        "read their wall time as CPU time. Where the time goes and what was changed: "
        "docs/scoring.md, section Performance.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="reuse the cached warehouse")
    parser.add_argument("--cases", nargs="*", default=CASES, choices=CASES)
    parser.add_argument("--intra-op-threads", type=int, help="profile variant for the dbt cases")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--train", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--workdir", type=Path, help="cache of built warehouses (default: TMPDIR/propensity-bench)"
    )
    add_lock_argument(parser)
    args = parser.parse_args()
    if args.workdir is not None:
        os.environ[_CACHE_ENV] = str(args.workdir.resolve())
    if args.case is not None or args.train:
        run(args)
        return
    with bench_lock(args.lock):
        run(args)


def run(args) -> None:
    """The benchmark itself, under the lock."""

    if args.train:  # child process: training with the export hook
        print(json.dumps(train_models(args.customers)))
        return
    if args.case:  # child process: one case, result as JSON on the last stdout line
        cores = free_cores()
        result = run_case(args.case, args.customers, intra_op_threads=args.intra_op_threads)
        result["free_cores"] = cores
        result["peak_mb"] = peak_mb()
        result["load_1min"] = os.getloadavg()[0]
        print(json.dumps(result))
        return

    facts = prepare(args.customers, reuse=args.reuse)
    results_file = _cache() / "results.json"
    stored = json.loads(results_file.read_text()) if results_file.exists() else {}
    size = str(args.customers)
    measured = stored.setdefault(size, {})
    for case in args.cases:
        r = _run_child(case, args.customers, args.intra_op_threads)
        if r is None:
            continue
        measured[case] = r
        results_file.write_text(json.dumps(stored, indent=1))  # kept if a later case fails
        node = f" node {r['node_seconds']:.2f}s" if "node_seconds" in r else ""
        print(
            f"{case:10s} {r['rows']:>11,} rows {r['seconds']:7.2f}s{node} "
            f"{r['rows'] / r['seconds']:>11,.0f} rows/s  CPU {r['cpu_seconds']:.1f}s  "
            f"peak {r['peak_mb']:,.0f} MB  load {r['load_1min']:.1f}  "
            f"free cores {r['free_cores']:.1f}",
            flush=True,
        )
    results_file.write_text(json.dumps(stored, indent=1))
    facts_by_size = {}
    for s in stored:
        f = _workdir(int(s)) / "facts.json"
        facts_by_size[s] = json.loads(f.read_text()) if f.exists() else {}
    facts_by_size[size] = facts
    body = report(stored, facts_by_size)
    print(body)
    if not args.no_write:
        from benchmarks._report import write_section

        write_section("scoring", body)


if __name__ == "__main__":
    main()
