"""The observable oracle next to the latent oracle and the champion, per product group, on the
demo warehouse's test cutoff (issue 4: what is the best AUC achievable from observable data?).

Usage::

    .venv/bin/python benchmarks/oracle_posterior.py --workdir DIR
    .venv/bin/python benchmarks/oracle_posterior.py \
        --warehouse DIR/demo.duckdb --seed 0            # an existing built demo
    .venv/bin/python benchmarks/oracle_posterior.py --warehouse W --no-train --no-write

Builds the demo warehouse as benchmarks/oracle_gap.py does (50k customers, seed 0) unless
`--warehouse` is given (it must have been generated with `--seed` and the default dates), computes
the observable oracle (`models_py.ingest.synth._posterior`) for every test cutoff of
`marts.fct_training_examples`, trains the packaged spec on a copy (`propensity train`, unless
`--no-train`) and prints, per group: the latent oracle AUC (`raw.oracle_propensity`), the
observable oracle AUC, the champion AUC on the same rows, the calibration of the observable oracle
against the labels, and the compute time. `--convergence` also recomputes with 1.3-2x the
quadrature nodes and samples and reports the largest change. Results go to the
`oracle_posterior` section of docs/benchmarks.md (unless --no-write).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import add_lock_argument, bench_lock, machine, write_section  # noqa: E402
from oracle_gap import build_warehouse, measure  # noqa: E402

from models_py.ingest.synth._posterior import Quadrature, observable_oracle  # noqa: E402

EXAMPLES_SQL = """
select e.customer_id, e.product_group, e.as_of_date, e.label,
    o.probability as latent, p.probability as observable
from marts.fct_training_examples as e
inner join raw.oracle_propensity as o using (customer_id, product_group, as_of_date)
inner join posterior as p using (customer_id, product_group, as_of_date)
where e.split = 'test'
order by e.product_group, e.customer_id
"""


def test_cutoffs(warehouse: Path) -> list[dt.date]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "select distinct as_of_date from marts.fct_training_examples where split = 'test' "
            "order by 1"
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def compute(
    warehouse: Path, cutoffs: list[dt.date], seed: int, quadrature: Quadrature
) -> tuple[pa.Table, float]:
    started = time.perf_counter()
    tables = [
        observable_oracle(warehouse, cutoff=c, seed=seed, quadrature=quadrature) for c in cutoffs
    ]
    return pa.concat_tables(tables), time.perf_counter() - started


def examples(warehouse: Path, posterior: pa.Table) -> dict[str, np.ndarray]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.register("posterior", posterior)
        return con.execute(EXAMPLES_SQL).fetchnumpy()
    finally:
        con.close()


def calibration_z(y: np.ndarray, p: np.ndarray) -> float:
    """(observed positives - expected) / sd of a sum of independent Bernoulli(p)."""
    return float((y.sum() - p.sum()) / np.sqrt(max((p * (1 - p)).sum(), 1e-12)))


def group_auc(data: dict[str, np.ndarray], group: str) -> float:
    m = data["product_group"] == group
    return float(roc_auc_score(data["label"][m].astype(int), data["observable"][m]))


def deciles(y: np.ndarray, p: np.ndarray, latent: np.ndarray) -> str:
    order = np.argsort(p, kind="stable")
    lines = [
        "| decile of observable oracle | mean observable | mean latent oracle | observed rate "
        "| z |",
        "|---:|---:|---:|---:|---:|",
    ]
    for k, part in enumerate(np.array_split(order, 10), start=1):
        lines.append(
            f"| {k} | {p[part].mean():.4f} | {latent[part].mean():.4f} | {y[part].mean():.4f} | "
            f"{calibration_z(y[part], p[part]):+.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warehouse", type=Path, help="existing built demo warehouse (read only)")
    parser.add_argument("--spec", type=Path, help="spec YAML (default: the packaged spec)")
    parser.add_argument("--workdir", type=Path, help="where temporary warehouses go")
    parser.add_argument("--keep", action="store_true", help="keep the built warehouse")
    parser.add_argument("--no-train", action="store_true", help="skip the champion")
    parser.add_argument("--convergence", action="store_true", help="also run finer quadrature")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    add_lock_argument(parser)
    args = parser.parse_args(argv)
    with bench_lock(args.lock):
        return run(args)


def run(args) -> int:
    """The benchmark itself, under the lock."""

    workdir = Path(tempfile.mkdtemp(prefix="oracle_posterior_", dir=args.workdir))
    build_seconds = None
    champion: dict[str, dict] = {}
    train_seconds = None
    try:
        if args.warehouse is None:
            source = workdir / "demo.duckdb"
            # The posterior is computed (and timed) below: not in the build as well.
            build_seconds = build_warehouse(
                source, customers=args.customers, seed=args.seed, observable_cutoffs=0
            )
        else:
            source = args.warehouse
        cutoffs = test_cutoffs(source)
        posterior, seconds = compute(source, cutoffs, args.seed, Quadrature())
        n_customers = posterior.num_rows // len(set(posterior["product_group"].to_pylist()))
        data = examples(source, posterior)
        convergence = None
        if args.convergence:
            fine = Quadrature(
                z_nodes=16,
                sensitivity_nodes=9,
                rate_nodes=12,
                history_intervals=48,
                window_intervals=9,
                affinity_samples=128,
            )
            posterior2, seconds2 = compute(source, cutoffs, args.seed, fine)
            data2 = examples(source, posterior2)
            convergence = (data, data2, seconds2)
        if not args.no_train:
            copy = workdir / "train.duckdb"
            shutil.copy(source, copy)
            rows, train_seconds = measure(copy, args.spec)
            champion = {r["group"]: r for r in rows}
    finally:
        if args.keep and args.warehouse is None:
            print(f"warehouse kept: {workdir / 'demo.duckdb'}")
            (workdir / "train.duckdb").unlink(missing_ok=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    groups = sorted(set(data["product_group"].tolist()))
    lines = [
        "| group | test positives / rows | latent oracle AUC | observable oracle AUC | "
        "champion AUC | champion gap to observable | observable gap to latent | "
        "calibration z |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    gaps = []
    for g in groups:
        m = data["product_group"] == g
        y = data["label"][m].astype(int)
        lat, obs = data["latent"][m], data["observable"][m]
        a_lat, a_obs = roc_auc_score(y, lat), roc_auc_score(y, obs)
        c = champion.get(g, {})
        if c.get("status") == "registered":
            a_ch = f"{c['auc']:.4f}"
            gap = a_obs - c["auc"]
            gaps.append(gap)
            gap_s = f"{gap:+.4f}"
        else:
            a_ch = c.get("status", "not trained")
            gap_s = "-"
        lines.append(
            f"| {g} | {y.sum():,} / {len(y):,} | {a_lat:.4f} | {a_obs:.4f} | {a_ch} | {gap_s} | "
            f"{a_lat - a_obs:.4f} | {calibration_z(y, obs):+.1f} |"
        )
    table = "\n".join(lines)
    m_any = data["product_group"] == "any"
    calib = deciles(
        data["label"][m_any].astype(int), data["observable"][m_any], data["latent"][m_any]
    )
    summary = [
        f"observable oracle: {seconds:.0f} s for {n_customers:,} customers x {len(groups)} groups "
        f"at {len(cutoffs)} cutoff(s) ({', '.join(str(c) for c in cutoffs)})"
    ]
    if train_seconds is not None and gaps:
        summary.append(
            f"champion training {train_seconds:.0f} s; champion gap to the observable oracle: "
            f"{min(gaps):+.4f} .. {max(gaps):+.4f}"
        )
    if convergence is not None:
        d1, d2, s2 = convergence
        diff = np.abs(d1["observable"] - d2["observable"])
        worst_auc = max(abs(group_auc(d1, g) - group_auc(d2, g)) for g in groups)
        summary.append(
            f"finer quadrature (1.3-2x nodes and samples, {s2:.0f} s): max |change| of a "
            f"probability {diff.max():.4f} (mean {diff.mean():.5f}), of an AUC {worst_auc:.4f}"
        )
    print(table)
    print(calib)
    print("\n".join(summary))
    if not args.no_write:
        where = (
            f"{args.customers:,} customers, seed {args.seed}"
            if args.warehouse is None
            else f"warehouse {args.warehouse.name} (seed {args.seed})"
        )
        cmd = ".venv/bin/python benchmarks/oracle_posterior.py"
        if args.warehouse:
            cmd += f" --warehouse WAREHOUSE --seed {args.seed}"
        if args.convergence:
            cmd += " --convergence"
        body = (
            "## Observable oracle (posterior predictive)\n\n"
            "The best AUC achievable from observable data: the posterior predictive probability "
            "given each customer's history before T and the generator's known prior "
            "(docs/oracle.md), next to the latent-state oracle of `raw.oracle_propensity` and the "
            "champion, on the test rows of `marts.fct_training_examples`. Calibration z: "
            "(positives - sum of probabilities) / binomial sd.\n\n"
            f"Measured on {machine()}; {where}"
            + (f"; warehouse build {build_seconds:.0f}s" if build_seconds else "")
            + f".\n\n```bash\n{cmd}\n```\n\n{table}\n\nCalibration of the observable oracle, "
            f"group `any`:\n\n{calib}\n\n" + "; ".join(summary) + ".\n"
        )
        write_section("oracle_posterior", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
