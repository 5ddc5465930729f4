"""Benchmark `propensity generate`: wall time, peak memory and rows at 100k and 1M customers.

Usage::

    .venv/bin/python benchmarks/bench_generate.py                      # 100k and 1M customers
    .venv/bin/python benchmarks/bench_generate.py --customers 1000000  # one size

Each size runs in its own child process (so its peak RSS is its own) and writes into a temporary
DuckDB file that is deleted afterwards. Results go to the `generator` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import add_lock_argument, bench_lock, machine, write_section  # noqa: E402

GOAL = "1M customers with about 25M order lines in a few minutes, with bounded memory"


def _child(customers: int, path: str, seed: int) -> None:
    from models_py.ingest.synth import generate_warehouse

    report = generate_warehouse(path, customers=customers, seed=seed)
    print(json.dumps({"rows": dict(report.rows), "seconds": report.seconds}))


def _run(customers: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_generate_") as tmp:
        path = Path(tmp) / "wh.duckdb"
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(customers), str(path), str(seed)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        out = proc.stdout.read() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"generation of {customers} customers failed ({proc.returncode})")
        result = json.loads(out.strip().splitlines()[-1])
        result["wall"] = time.perf_counter() - started
        result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
        result["file_mb"] = path.stat().st_size / 1024**2
        result["customers"] = customers
        return result


def _markdown(results: list[dict], command: str) -> str:
    tables = [
        "orders",
        "order_lines",
        "email_events",
        "oracle_propensity",
        "oracle_treatment_effect",
    ]
    head = "| customers | wall time | peak RSS | file | " + " | ".join(tables) + " |"
    sep = "|" + "---|" * (4 + len(tables))
    rows = [
        f"| {r['customers']:,} | {r['wall']:.0f} s | {r['peak_rss_mb']:,.0f} MB | "
        f"{r['file_mb']:,.0f} MB | " + " | ".join(f"{r['rows'][t]:,}" for t in tables) + " |"
        for r in results
    ]
    largest = max(results, key=lambda r: r["customers"])
    per_s = largest["rows"]["order_lines"] / largest["wall"]
    return "\n".join(
        [
            "## Synthetic warehouse generator (`propensity generate`)",
            "",
            f"Goal: {GOAL}.",
            "",
            f"Machine: {machine()}.",
            "The 2 cores were shared with other work while measuring, so times are upper bounds.",
            "",
            f"Command: `{command}`",
            "(each size in a child process: wall time includes Python start and imports; peak RSS",
            "is the child's `ru_maxrss`; file is the size of the DuckDB file).",
            "",
            head,
            sep,
            *rows,
            "",
            f"At {largest['customers']:,} customers: {per_s:,.0f} order lines per second overall",
            "(simulation and DuckDB writes). Customers are simulated in chunks of 100,000 and",
            "appended to staging tables that replace the raw tables in one transaction at the",
            "end; DuckDB's cache is capped at 512 MB, so peak memory is one chunk's working set",
            "plus that cap, whatever the number of customers. The oracle holds all 13 cutoffs",
            "(end_date - 30 k, k = 0..12) up to 200,000 customers and k = 0..6 above.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        _child(int(argv[1]), argv[2], int(argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, action="append", help="size to run (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/")
    add_lock_argument(parser)
    args = parser.parse_args(argv)
    with bench_lock(args.lock):
        return run(args)


def run(args) -> int:
    """The benchmark itself, under the lock."""
    sizes = args.customers or [100_000, 1_000_000]
    results = []
    for n in sizes:
        r = _run(n, args.seed)
        print(
            f"{n:>10,} customers: {r['wall']:.1f} s, peak RSS {r['peak_rss_mb']:,.0f} MB, "
            f"{r['rows']['order_lines']:,} order lines, {r['rows']['email_events']:,} email "
            "events",
            flush=True,
        )
        results.append(r)
    command = ".venv/bin/python benchmarks/bench_generate.py" + "".join(
        f" --customers {n}" for n in (args.customers or [])
    )
    if not args.no_write:
        write_section("generator", _markdown(results, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
