"""Growth with the number of customers (issue 17): the same steps at 100k, 1M and 10M customers.

    .venv/bin/python benchmarks/scale.py                       # 100,000, 1,000,000, 10,000,000
    .venv/bin/python benchmarks/scale.py --sizes 100000 1000000 --workdir /tmp/scale

Per size, each step in its own child process (peak = the largest resident set of the step's
processes, dbt's included; CPU = user + system of the step's processes):

1. ``generate``: the synthetic warehouse (`models_py.ingest.synth.generate_warehouse`, seed 1,
   the oracle at one cutoff only: the steps below do not read it). Cached under ``--workdir``
   (generated once, kept out of the repository: 10M customers is about 8 GB).
2. ``features_one_cutoff``: one cutoff's features from the raw tables in one ``dbt run``
   (staging, intermediate tables, fct_customer_features and fct_customer_group_features for the
   scoring cutoff; ``feature_cutoff_roles: [scoring]``), the first step of a daily build, dbt
   with 2 threads (independent models at once).
3. ``intermediate_tables``: the same intermediate tables and the cutoffs, dbt with 1 thread (one
   model at a time, each with DuckDB's 2 threads): what a 10M build needs to stay in memory.
4. ``training_set``: the training sample, the features of the 13 training cutoffs (sampled
   customers only) and fct_training_examples, dbt with 1 thread (benchmarks/training_set.py
   measures the same models with 2 threads at 100k and 1M).
5. ``features_scoring_cutoff``: the two feature marts of the scoring cutoff (every customer), the
   intermediate tables built, dbt with 1 thread.
6. ``train``: ``propensity train`` (the packaged spec, 11 groups: search, calibration, ONNX export
   behind the parity gate, registration, champions) on the training set of step 4.
7. ``daily``: ``propensity run daily`` with ``PROPENSITY_THREADS=1``: the intermediate tables
   brought up to date, the new cutoff's features, every champion's scores, audiences,
   monitoring, reason codes and the serving snapshot, with the daily selector's data tests.
8. ``daily_top_deciles``: the same, reason codes for deciles 1-2 only
   (``score_reasons_max_decile: 2``).
9. ``daily_no_reasons``: the same without reason codes (``score_reasons_max_decile: 0``): the
   daily run as issue 17 defines it (new cutoff features, scores, audiences), with monitoring,
   data tests and the serving snapshot.

``--steps`` runs some of them (the others keep their stored results).

DuckDB runs under the profile's ``memory_limit`` (``PROPENSITY_DUCKDB_MEMORY_LIMIT``, set here to
``--memory-limit``, default 12GB, so that a step's peak stays under the issue's 16 GB with the
Python processes around it) and spills to the warehouse's ``.tmp`` directory beyond it.

Results go to docs/benchmarks.md, section ``scale`` (sizes measured so far are kept in
``--workdir``/scale.json).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_features import FROM_RAW, SCORING_ONLY  # noqa: E402
from training_set import TRAINING_ROLES, TRAINING_SET, UPSTREAM  # noqa: E402

from benchmarks._report import (  # noqa: E402
    DEFAULT_WORKDIR,
    DOC,
    add_lock_argument,
    bench_lock,
    commit,
    cpu_model,
    cpu_seconds,
    machine_size,
    peak_mb,
    span_seconds,
    write_section,
)

SIZES = (100_000, 1_000_000, 10_000_000)
STEPS = {
    "generate": "generate the warehouse (orders, lines, e-mail events; oracle at one cutoff)",
    "features_one_cutoff": "one cutoff's features from the raw tables in one `dbt run` "
    "(staging, intermediate tables, the two feature marts; dbt 2 threads)",
    "intermediate_tables": "the intermediate tables and the cutoffs (dbt 1 thread: one model at "
    "a time)",
    "training_set": "the training sample, the features of the 13 training cutoffs (sampled "
    "customers) and the training examples (dbt 1 thread)",
    "features_scoring_cutoff": "the scoring cutoff's two feature marts, every customer, the "
    "intermediate tables built (dbt 1 thread)",
    "train": "`propensity train`, 11 groups (rows: the training rows it reads)",
    "daily": "`propensity run daily` (dbt 1 thread): features of the new cutoff, scores of every "
    "champion, audiences, monitoring, reason codes, serving snapshot, data tests",
    "daily_top_deciles": "the same with `--vars '{score_reasons_max_decile: 2}'`: reason codes "
    "for the top 20% of each group",
    "daily_no_reasons": "the same with `--vars '{score_reasons_max_decile: 0}'`: no reason codes",
}
#: step -> (dbt selection, vars, dbt threads, table counted, what its rows are)
DBT_STEPS = {
    "features_one_cutoff": (
        FROM_RAW,
        SCORING_ONLY,
        2,
        "marts.fct_customer_features",
        "feature rows",
    ),
    "intermediate_tables": (
        UPSTREAM,
        SCORING_ONLY,
        1,
        "intermediate.int_orders_summarised",
        "orders",
    ),
    "training_set": (
        TRAINING_SET,
        TRAINING_ROLES,
        1,
        "marts.fct_training_examples",
        "training rows",
    ),
    "features_scoring_cutoff": (
        "fct_customer_features fct_customer_group_features",
        SCORING_ONLY,
        1,
        "marts.fct_customer_features",
        "feature rows",
    ),
}


#: step -> (propensity command, table or query counted, what its rows are); dbt 1 thread
CLI_STEPS = {
    "train": (["train"], "marts.fct_training_examples", "training rows"),
    "daily": (
        ["run", "daily"],
        "(select * from marts.fct_propensity_scores where as_of_date = "
        "(select max(as_of_date) from marts.fct_propensity_scores))",
        "score rows",
    ),
}
CLI_STEPS["daily_top_deciles"] = (
    [*CLI_STEPS["daily"][0], "--vars", "{score_reasons_max_decile: 2}"],
    *CLI_STEPS["daily"][1:],
)
CLI_STEPS["daily_no_reasons"] = (
    [*CLI_STEPS["daily"][0], "--vars", "{score_reasons_max_decile: 0}"],
    *CLI_STEPS["daily"][1:],
)
MEASURED = [*DBT_STEPS, *CLI_STEPS]


def _count(warehouse: str, counted: str) -> int:
    import duckdb

    con = duckdb.connect(warehouse, read_only=True)
    try:
        return con.execute(f"select count(*) from {counted}").fetchone()[0]
    finally:
        con.close()


def _dbt_nodes(warehouse: str) -> dict:
    """The slowest nodes and the SQL span of the last dbt invocation on `warehouse`."""
    from models_py._dbt import dbt_target_path
    from models_py._settings import Settings

    results = dbt_target_path(Settings(warehouse=Path(warehouse))) / "run_results.json"
    nodes = [r for r in json.loads(results.read_text())["results"] if r.get("timing")]
    slowest = sorted(
        ((r["unique_id"].split(".")[-1], r["execution_time"]) for r in nodes),
        key=lambda x: -x[1],
    )[:4]
    return {"slowest": slowest, "span_seconds": span_seconds(nodes)}


def _child_generate(warehouse: str, customers: int) -> dict:
    from models_py.ingest.synth import generate_warehouse

    generate_warehouse(warehouse, customers=customers, seed=1, oracle_cutoffs=1)
    return {"rows": _count(warehouse, "raw.order_lines"), "rows_what": "order lines"}


def _child_dbt(step: str, warehouse: str) -> dict:
    from models_py._dbt import run_dbt
    from models_py._settings import Settings

    select, dbt_vars, threads, counted, rows_what = DBT_STEPS[step]
    settings = Settings(warehouse=Path(warehouse), threads=threads)
    run_dbt(settings, ["run", "--full-refresh", "--select", *select.split()], dbt_vars=dbt_vars)
    return {"rows": _count(warehouse, counted), "rows_what": rows_what, **_dbt_nodes(warehouse)}


def _child_cli(step: str, warehouse: str) -> dict:
    from models_py.cli import main

    command, counted, rows_what = CLI_STEPS[step]
    os.environ["PROPENSITY_THREADS"] = "1"
    if main(["--warehouse", warehouse, *command]) != 0:
        raise SystemExit(f"propensity {' '.join(command)} failed")
    out = {"rows": _count(warehouse, counted), "rows_what": rows_what}
    if step.startswith("daily"):  # train runs no dbt node
        out.update(_dbt_nodes(warehouse))
    return out


def _child(step: str, warehouse: str, customers: int) -> None:
    started, cpu = time.perf_counter(), cpu_seconds()
    if step == "generate":
        out = _child_generate(warehouse, customers)
    elif step in CLI_STEPS:
        out = _child_cli(step, warehouse)
    else:
        out = _child_dbt(step, warehouse)
    out.update(
        seconds=time.perf_counter() - started,
        cpu_seconds=cpu_seconds() - cpu,
        peak_mb=peak_mb(),
    )
    print(json.dumps(out))


def _run_step(step: str, warehouse: Path, customers: int, memory_limit: str) -> dict:
    env = {**os.environ, "PROPENSITY_DUCKDB_MEMORY_LIMIT": memory_limit}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", step, str(warehouse), str(customers)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    measured = {"memory_limit": memory_limit, "commit": commit(), "cpu": cpu_model()}
    if proc.returncode != 0:
        return {"failed": (proc.stdout + proc.stderr)[-1500:], **measured}
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), **measured}


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


def rows_from_docs(text: str) -> dict:
    """The rows of the `scale` section of docs/benchmarks.md, as `scale.json` stores them.

    The measured results live in `--workdir`, which a new machine does not have; a partial re-run
    there starts from the published rows instead of dropping them. Rows published before the CPU
    was recorded per row take the section's machine line.
    """
    section = re.search(r"<!-- BEGIN scale -->(.*?)<!-- END scale -->", text, re.S)
    if not section:
        return {}
    machine_line = re.search(r"^Machine: ([^,.]+)", section.group(1), re.M)
    default_cpu = machine_line.group(1).strip() if machine_line else "-"
    results: dict = {}
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 10 or cells[0] not in STEPS or not cells[1].replace(",", "").isdigit():
            continue
        row: dict = {"memory_limit": cells[2], "commit": cells[9]}
        row["cpu"] = cells[10] if len(cells) > 10 else default_cpu
        if cells[3].startswith("failed: "):
            row["failed"] = cells[3].removeprefix("failed: ")
        else:
            count, what = cells[3].split(" ", 1)
            row.update(
                rows=int(_number(count)),
                rows_what=what,
                seconds=_number(cells[4]),
                cpu_seconds=_number(cells[6]),
                peak_mb=_number(cells[7]),
                slowest=[
                    [name, float(t)]
                    for name, t in (item.rsplit(" ", 1) for item in cells[8].split(", "))
                ]
                if cells[8] != "-"
                else [],
            )
            if cells[5] != "-":
                row["span_seconds"] = _number(cells[5])
        results.setdefault(str(int(_number(cells[1]))), {})[cells[0]] = row
    return results


def report(results: dict, memory_limit: str) -> str:
    lines = [
        "## Scale (issue 17): the same steps at 100k, 1M and 10M customers",
        "",
        f"Machine: {machine_size()}; the CPU model of each row is in its last column (the "
        "growth lines below say when two rows come from different CPUs). Command: "
        "`.venv/bin/python benchmarks/scale.py` (sizes "
        "100,000, 1,000,000, 10,000,000; warehouses cached under `--workdir`, default the "
        "system temporary directory). DuckDB `memory_limit` as in the table (profile variable "
        "`PROPENSITY_DUCKDB_MEMORY_LIMIT`; option `--memory-limit`), DuckDB 2 threads, dbt "
        "threads as in the step's description. Each step in its "
        "own process: wall time "
        "including start-up; SQL span = first dbt node's start to the last one's end; CPU = user + "
        "system of its processes, peak = their largest resident set; commit = the code the row "
        "was measured with (steps are re-run one at a time, so rows differ).",
        "",
        "| step | customers | memory_limit | rows | wall s | SQL span s | CPU s | peak MB "
        "| slowest dbt nodes (s) | commit | CPU |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for step in STEPS:
        for size in sorted(results, key=int):
            r = results[size].get(step)
            if not r:
                continue
            limit = r.get("memory_limit", memory_limit)
            if "failed" in r:
                reason = r["failed"].strip().splitlines()[-1][:400].replace("|", "/")
                lines.append(
                    f"| {step} | {int(size):,} | {limit} | failed: {reason} | - | - | - | - | - "
                    f"| {r.get('commit', '-')} | {r.get('cpu', '-')} |"
                )
                continue
            slow = ", ".join(f"{n} {t:.1f}" for n, t in r.get("slowest", [])) or "-"
            span = f"{r['span_seconds']:.1f}" if "span_seconds" in r else "-"
            lines.append(
                f"| {step} | {int(size):,} | {limit} | {r['rows']:,} {r['rows_what']} | "
                f"{r['seconds']:.1f} | {span} | {r['cpu_seconds']:.1f} | {r['peak_mb']:,.0f} | "
                f"{slow} | {r.get('commit', '-')} | {r.get('cpu', '-')} |"
            )
    lines += ["", "Steps: " + "; ".join(f"`{k}`: {v}" for k, v in STEPS.items()) + "."]
    lines += [
        "",
        "Rows measured before per-row commits were recorded carry the commit the section named "
        "then; `-` where it is not known.",
    ]
    sizes = sorted(results, key=int)
    for step in STEPS:
        ok = [(int(s), results[s][step]) for s in sizes if "seconds" in results[s].get(step, {})]
        for (a, ra), (b, rb) in itertools.pairwise(ok):
            cpus = "" if ra.get("cpu") == rb.get("cpu") else " (measured on different CPUs)"
            lines.append(
                f"`{step}` {a:,} -> {b:,} customers: {b / a:.0f}x the customers, "
                f"{rb['rows'] / ra['rows']:.1f}x the rows, {rb['seconds'] / ra['seconds']:.1f}x "
                f"the wall time, {rb['peak_mb'] / ra['peak_mb']:.1f}x the peak{cpus}."
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--memory-limit", default="12GB")
    parser.add_argument("--steps", nargs="+", choices=MEASURED, default=MEASURED)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR / "scale")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/")
    parser.add_argument(
        "--report-only", action="store_true", help="write the section from the stored results"
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    add_lock_argument(parser)
    args = parser.parse_args()
    if args.child:
        step, warehouse, customers = args.child
        _child(step, warehouse, int(customers))
        return
    with bench_lock(args.lock):
        args.workdir.mkdir(parents=True, exist_ok=True)
        store = args.workdir / "scale.json"
        # The published rows, overridden by what this machine's store holds.
        results = rows_from_docs(DOC.read_text() if DOC.exists() else "")
        for size, steps in (json.loads(store.read_text()) if store.exists() else {}).items():
            results.setdefault(size, {}).update(steps)
        for size in [] if args.report_only else args.sizes:
            warehouse = args.workdir / f"scale_{size}.duckdb"
            measured = results.setdefault(str(size), {})
            if not warehouse.exists() or "seconds" not in measured.get("generate", {}):
                warehouse.unlink(missing_ok=True)
                measured["generate"] = _run_step("generate", warehouse, size, args.memory_limit)
                store.write_text(json.dumps(results, indent=1))
            for step in (s for s in MEASURED if s in args.steps):
                measured[step] = _run_step(step, warehouse, size, args.memory_limit)
                store.write_text(json.dumps(results, indent=1))
            print(json.dumps({size: measured}), flush=True)
        body = report(results, args.memory_limit)
        print(body)
        if not args.no_write:
            write_section("scale", body)


if __name__ == "__main__":
    main()
