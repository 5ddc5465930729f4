"""The label-stratified training sample against uniform ones: test ROC AUC per product group and
training time, on one demo-sized generated warehouse, every variant trained on its own copy in
the same run (docs/training.md, "Subsampling").

Usage::

    .venv/bin/python benchmarks/training_sample.py                    # 50k customers, seed 0
    .venv/bin/python benchmarks/training_sample.py --warehouse DIR/demo.duckdb --no-write

Variants (the packaged spec with `max_training_rows` / `max_positive_share` replaced):
uniform 150k (the packaged spec before the stratified sample), stratified 60k (the packaged spec
now), stratified 80k, and uniform 60k (the same rows without stratification). Validation and
test rows are the same uniform sample in every variant, so the AUCs are compared on the same
test rows. Results go to the `training_sample` section of docs/benchmarks.md (unless
--no-write).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import add_lock_argument, bench_lock, cpu_seconds, machine, write_section  # noqa: E402
from oracle_gap import build_warehouse, measure  # noqa: E402

#: name -> (max_training_rows, max_positive_share)
VARIANTS = {
    "uniform 150k": (150_000, None),
    "stratified 60k": (60_000, 0.5),
    "stratified 80k": (80_000, 0.5),
    "uniform 60k": (60_000, None),
}


def spec_variant(path: Path, rows: int, share: float | None) -> Path:
    """The packaged spec with the sampling settings replaced, written to `path`."""
    from models_py.training._specs import DEFAULT_SPEC_PATH

    config = yaml.safe_load(Path(DEFAULT_SPEC_PATH).read_text())
    for spec in config["specs"]:
        spec["max_training_rows"] = rows
        spec["max_positive_share"] = share
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warehouse", type=Path, help="existing built warehouse (not modified)")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: system temp)")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    add_lock_argument(parser)
    args = parser.parse_args(argv)
    with bench_lock(args.lock):
        return run(args)


def run(args) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="training_sample_", dir=args.workdir))
    results: dict[str, tuple[dict[str, dict], float, float]] = {}
    try:
        source = args.warehouse
        if source is None:
            source = workdir / "demo.duckdb"
            build_warehouse(source, customers=args.customers, seed=args.seed)
        for name, (rows, share) in VARIANTS.items():
            copy = workdir / "train.duckdb"
            shutil.copy(source, copy)
            spec = spec_variant(workdir / "spec.yml", rows, share)
            cpu, started = cpu_seconds(), time.perf_counter()
            measured, _ = measure(copy, spec)
            wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
            results[name] = ({r["group"]: r for r in measured}, wall, cpu)
            copy.unlink()
            print(f"{name}: {wall:.0f} s wall, {cpu:.0f} s CPU")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    names = list(VARIANTS)
    groups = sorted(results[names[0]][0])
    lines = [
        "| group | test positives | "
        + " | ".join(f"AUC {n}" for n in names)
        + " | "
        + " | ".join(f"{n} - {names[0]}" for n in names[1:])
        + " |",
        "|---|---:|" + "---:|" * (2 * len(names) - 1),
    ]
    diffs: dict[str, list[float]] = {n: [] for n in names[1:]}
    for g in groups:
        aucs = [results[n][0][g]["auc"] for n in names]
        for n, a in zip(names[1:], aucs[1:], strict=True):
            diffs[n].append(a - aucs[0])
        lines.append(
            f"| {g} | {results[names[0]][0][g]['positives']:,} | "
            + " | ".join(f"{a:.4f}" for a in aucs)
            + " | "
            + " | ".join(f"{a - aucs[0]:+.4f}" for a in aucs[1:])
            + " |"
        )
    lines += [
        "",
        "| variant | train rows per group | training wall | training CPU |",
        "|---|---:|---:|---:|",
    ]
    for n in names:
        rows, share = VARIANTS[n]
        label = f"{rows:,}" + (f", positives up to {share:.0%} per cutoff" if share else "")
        lines.append(f"| {n} | {label} | {results[n][1]:.0f} s | {results[n][2]:.0f} s |")
    observable = {
        n: [
            r["observable_gap"]
            for r in results[n][0].values()
            if r.get("observable_gap") is not None
        ]
        for n in names
    }
    if any(observable.values()):
        lines += [
            "",
            "| variant | worst gap to the observable oracle | groups within 0.01 | mean gap |",
            "|---|---:|---:|---:|",
        ]
        for n in names:
            gaps = observable[n]
            if gaps:
                worst = max(results[n][0].values(), key=lambda r: r.get("observable_gap") or -1)
                lines.append(
                    f"| {n} | {max(gaps):.4f} ({worst['group']}) | "
                    f"{sum(g <= 0.01 for g in gaps)} of {len(gaps)} | {sum(gaps) / len(gaps):.4f} |"
                )
    summary = "; ".join(
        f"{n} vs {names[0]}: AUC {min(d):+.4f}..{max(d):+.4f} (mean {sum(d) / len(d):+.4f}), "
        f"time x{results[n][1] / results[names[0]][1]:.2f}"
        for n, d in diffs.items()
    )
    out = "\n".join(lines)
    print(out)
    print(summary)
    if not args.no_write:
        where = (
            f"{args.customers:,} customers, seed {args.seed}"
            if args.warehouse is None
            else f"warehouse {args.warehouse.name}"
        )
        body = (
            "## Training sample: label-stratified against uniform\n\n"
            "Goal (issue 17): a sampled training set whose weights keep the model's quality "
            "(test ROC AUC within noise of the larger uniform sample) at a fraction of the "
            "rows.\n\n"
            f"Measured on {machine()}; {where}.\n\n"
            "```bash\n.venv/bin/python benchmarks/training_sample.py\n```\n\n"
            f"{out}\n\n{summary}.\n"
        )
        write_section("training_sample", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
