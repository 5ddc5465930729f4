"""Gap between the champion's test ROC AUC and the oracle AUC, per product group, on a demo-sized
generated warehouse (issue 4: within 0.02 of the oracle, goal 0.01, for groups with enough
positives).

Usage::

    .venv/bin/python benchmarks/oracle_gap.py                       # 50k customers, seed 0
    .venv/bin/python benchmarks/oracle_gap.py --workdir /work/tmp/x --keep
    .venv/bin/python benchmarks/oracle_gap.py --warehouse /work/tmp/x/demo.duckdb
    .venv/bin/python benchmarks/oracle_gap.py --spec my_specs.yml --no-write

Builds the warehouse as `propensity demo` does (generate, default campaigns, dbt build without
the scoring models) unless `--warehouse` points at an existing one, trains the spec (default: the
packaged one) on a copy, and prints the table group, test positives, champion algorithm, model
AUC, oracle AUC (true probabilities on the same test rows) and gap. Results go to the
`oracle_gap` section of docs/benchmarks.md (unless --no-write).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import machine, write_section  # noqa: E402

GOAL = (
    "champion test AUC within 0.02 of the oracle AUC (goal 0.01) for groups with enough positives"
)
ENOUGH_POSITIVES = 500


def build_warehouse(path: Path, *, customers: int, seed: int) -> float:
    from models_py._dbt import run_dbt
    from models_py._demo import _set_default_campaigns
    from models_py._settings import Settings
    from models_py.synth import generate_warehouse

    started = time.perf_counter()
    settings = Settings(warehouse=path)
    generate_warehouse(path, customers=customers, seed=seed)
    _set_default_campaigns(settings)
    run_dbt(settings, ["build", "--exclude", "fct_propensity_scores+"])
    return time.perf_counter() - started


def measure(warehouse: Path, spec: Path | None) -> tuple[list[dict], float]:
    from models_py import Settings, train

    report = train(Settings(warehouse=warehouse), spec_path=spec)
    rows = []
    for r in report.results:
        m = r.test_metrics
        auc, oracle = m.get("roc_auc"), m.get("oracle_roc_auc")
        rows.append(
            {
                "group": r.product_group,
                "status": r.status,
                "positives": m.get("positives"),
                "examples": m.get("examples"),
                "algorithm": r.algorithm,
                "auc": auc,
                "oracle": oracle,
                "gap": None if auc is None or oracle is None else oracle - auc,
                "seconds": r.seconds,
            }
        )
    return rows, report.seconds


def table(rows: list[dict]) -> str:
    lines = [
        "| group | test positives / rows | champion | model AUC | oracle AUC | gap |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        if r["status"] != "registered":
            lines.append(f"| {r['group']} | - | {r['status']} | - | - | - |")
            continue
        lines.append(
            f"| {r['group']} | {r['positives']:,} / {r['examples']:,} | {r['algorithm']} | "
            f"{r['auc']:.4f} | {r['oracle']:.4f} | {r['gap']:.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warehouse", type=Path, help="existing built warehouse (not modified)")
    parser.add_argument("--spec", type=Path, help="spec YAML (default: the packaged spec)")
    parser.add_argument("--keep", action="store_true", help="keep the built warehouse")
    parser.add_argument(
        "--workdir", type=Path, help="where the ~0.5 GB temporary warehouses go (default: TMPDIR)"
    )
    parser.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="oracle_gap_", dir=args.workdir))
    try:
        build_seconds = None
        if args.warehouse is None:
            source = workdir / "demo.duckdb"
            build_seconds = build_warehouse(source, customers=args.customers, seed=args.seed)
        else:
            source = args.warehouse
        copy = workdir / "train.duckdb"
        shutil.copy(source, copy)
        rows, seconds = measure(copy, args.spec)
    finally:
        if args.keep and args.warehouse is None:
            print(f"warehouse kept: {workdir / 'demo.duckdb'}")
            (workdir / "train.duckdb").unlink(missing_ok=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    out = table(rows)
    enough = [r for r in rows if r["gap"] is not None and r["positives"] >= ENOUGH_POSITIVES]
    worst = max((r["gap"] for r in enough), default=float("nan"))
    summary = (
        f"training time {seconds:.0f}s for {len(rows)} groups; worst gap among groups with >= "
        f"{ENOUGH_POSITIVES} test positives: {worst:.4f}"
    )
    print(out)
    print(summary)
    if not args.no_write:
        where = (
            f"{args.customers:,} customers, seed {args.seed}"
            if args.warehouse is None
            else f"warehouse {args.warehouse.name}"
        )
        cmd = "flock /work/bench.lock .venv/bin/python benchmarks/oracle_gap.py"
        if args.warehouse:
            cmd += f" --warehouse {args.warehouse}"
        if args.spec:
            cmd += f" --spec {args.spec}"
        body = (
            f"## Oracle gap (training)\n\nGoal: {GOAL}.\n\n"
            f"Measured on {machine()}; {where}"
            + (f"; warehouse build {build_seconds:.0f}s" if build_seconds else "")
            + f".\n\n```bash\n{cmd}\n```\n\n{out}\n\n{summary}.\n"
        )
        write_section("oracle_gap", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
