"""A/B of two versions of the dbt project's feature SQL on the same warehouse, same run.

Usage::

    git worktree add --detach ../before COMMIT      # the version to compare against
    .venv/bin/python benchmarks/ab_features.py --before ../before/dbt_project \
        --warehouse DIR/features_1000000.duckdb [--rounds 2]

Steps of benchmarks/bench_features.py, alternating before / after so that a busy machine
penalises both alike: one cutoff from the raw tables (one `dbt run`, scoring cutoff only) each
round, then the 13-cutoff build of fct_customer_features, fct_customer_group_features and
fct_training_examples once per version. Each step runs in a fresh child process with the
current checkout's Python (the SQL differs, the runner does not). Prints the SQL span, wall and
CPU seconds and peak memory of every step; with `--write`, the `features_ab` section of
docs/benchmarks.md. The warehouse must hold the raw tables (bench_features.py --workdir keeps one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import add_lock_argument, bench_lock, machine, write_section  # noqa: E402
from bench_features import ALL_CUTOFFS, FROM_RAW, SCORING_ONLY, _run_child  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="dbt project dir to compare")
    parser.add_argument("--after", type=Path, default=ROOT / "dbt_project")
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks.md")
    add_lock_argument(parser)
    args = parser.parse_args(argv)
    with bench_lock(args.lock):
        return run(args)


def run(args) -> int:
    wh = str(args.warehouse.resolve())
    versions = {"before": str(args.before.resolve()), "after": str(args.after.resolve())}
    rows = []

    def step(name: str, version: str, select: str, dbt_vars: dict) -> None:
        r = _run_child("dbt", wh, select, json.dumps(dbt_vars), versions[version])
        rows.append({"step": name, "version": version, **r, "load": os.getloadavg()[0]})
        print(
            f"{name:12s} {version:6s} span {r['span_seconds']:7.1f}s  wall {r['seconds']:7.1f}s  "
            f"CPU {r['cpu_seconds']:7.1f}s  peak {r['peak_mb']:,.0f} MB  "
            f"load {rows[-1]['load']:.1f}",
            flush=True,
        )

    for i in range(args.rounds):
        order = ("before", "after") if i % 2 == 0 else ("after", "before")
        for version in order:
            step("from_raw", version, FROM_RAW, SCORING_ONLY)
    for version in ("before", "after"):
        step("all_cutoffs", version, ALL_CUTOFFS, {})

    lines = [
        "## features_ab",
        "",
        "The feature SQL before and after a refactor of the dbt project, on the same warehouse in "
        "the same run (steps alternate; each in its own process).",
        "",
        f"Measured on {machine()}; warehouse `{args.warehouse.name}`.",
        "",
        "```bash",
        ".venv/bin/python benchmarks/ab_features.py --before BEFORE/dbt_project "
        f"--warehouse DIR/{args.warehouse.name} --rounds {args.rounds} --write",
        "```",
        "",
        "| step | version | SQL span s | wall s | CPU s | peak MB | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['step']} | {r['version']} | {r['span_seconds']:.1f} | {r['seconds']:.1f} | "
            f"{r['cpu_seconds']:.1f} | {r['peak_mb']:,.0f} | {r['load']:.1f} |"
        )
    for name in ("from_raw", "all_cutoffs"):
        spans = {
            v: min(r["span_seconds"] for r in rows if r["step"] == name and r["version"] == v)
            for v in versions
        }
        lines.append("")
        lines.append(
            f"- {name}: best SQL span before {spans['before']:.1f} s, after {spans['after']:.1f} s "
            f"(after / before = {spans['after'] / spans['before']:.2f})."
        )
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section("features_ab", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
