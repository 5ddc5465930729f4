"""Run every benchmark, each in its own process, one after another.

Usage::

    .venv/bin/python benchmarks/run.py            # quick mode: small sizes, docs untouched
    .venv/bin/python benchmarks/run.py --full     # the sizes of docs/benchmarks.md, rewrites it

Quick mode checks that every benchmark still runs end to end (a few minutes on 2 cores); its
figures are printed, not written. The full mode takes hours (1M-customer warehouses) and
rewrites each benchmark's section of docs/benchmarks.md. `--only NAME` runs a subset.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name -> (script, quick arguments, full arguments). Quick runs never write docs/benchmarks.md.
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "generate": ("bench_generate.py", ["--customers", "20000", "--no-write"], []),
    "features": ("bench_features.py", ["--sizes", "20000", "--no-write"], []),
    "scoring": (
        "bench_scoring.py",
        ["--customers", "20000", "--no-write", "--workdir", "{tmp}/scoring"],
        [],
    ),
    "scoring_engines": (
        "bench_scoring_engines.py",
        ["--rows", "50000", "--features", "20", "--no-write"],
        [],
    ),
    "daily": (
        "bench_daily.py",
        ["--customers", "3000", "--no-write", "--workdir", "{tmp}/daily"],
        [],
    ),
    "replay": (
        "bench_replay.py",
        ["--customers", "2000", "--weeks", "6", "--no-write", "--workdir", "{tmp}/replay"],
        [],
    ),
    "oracle_gap": ("oracle_gap.py", ["--customers", "5000", "--no-write"], []),
    "oracle_posterior": (
        "oracle_posterior.py",
        ["--customers", "5000", "--no-write"],
        ["--convergence"],
    ),
    # Prints only (its figures are in docs/oracle.md, "Regime shift").
    "regime_shift_models": ("regime_shift_models.py", ["--customers", "3000", "--no-models"], []),
    "uplift_offers": (
        "uplift_offers.py",
        ["--customers", "5000", "--no-write", "--workdir", "{tmp}/offers"],
        [],
    ),
    "uplift_hillstrom": ("uplift_hillstrom.py", ["--quick"], []),
    "scale": ("scale.py", ["--sizes", "20000", "--no-write", "--workdir", "{tmp}/scale"], []),
}
#: Benchmarks of public data: skipped, saying so, when the file is not beside the repository.
REQUIRES = {"uplift_hillstrom": HERE.parent.parent / "shared" / "data" / "hillstrom.parquet"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full sizes; rewrites the docs")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="repeatable")
    args = parser.parse_args(argv)
    failed = []
    with tempfile.TemporaryDirectory(prefix="propensity-bench-quick-") as tmp:
        for name in args.only or list(BENCHMARKS):
            script, quick, full = BENCHMARKS[name]
            needed = REQUIRES.get(name)
            if needed is not None and not needed.exists():
                print(f"== {name}: skipped, {needed.name} is not in ../shared/data", flush=True)
                continue
            extra = full if args.full else [a.replace("{tmp}", tmp) for a in quick]
            cmd = [sys.executable, str(HERE / script), *extra]
            print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
            started = time.perf_counter()
            code = subprocess.run(cmd, check=False).returncode
            print(f"== {name}: exit {code} in {time.perf_counter() - started:.0f} s", flush=True)
            if code != 0:
                failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
