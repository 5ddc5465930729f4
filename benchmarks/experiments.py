"""Experiments (issue 16): design, assignment and analysis against the truth.

    .venv/bin/python benchmarks/experiments.py [--customers 50000] [--runs 200] [--reuse]

On a generated warehouse (``propensity generate``, seed 0) with experiments.yml describing the
generator's discount experiment (``discount_2026q3`` in raw.treatments: arms 0 %, 20 %, 25 %)
and assigning an A/A split of every customer on the day that experiment's window closes
(``aa_sept``, salted hash, 30 days), after ``dbt build`` of the experiment marts:

- the discount experiment: each discount against 0 % on conversion, revenue and margin per
  customer, with 95 % intervals, plain and CUPED, against the true average effect over the
  experiment's customers (raw.oracle_treatment_effect, docs/oracle.md); how much CUPED narrows
  the intervals;
- ``--runs`` re-assignments of the A/A split with other salts, in one SQL query: the share of
  runs whose difference is significant at 5 % (the false-positive rate; goal 5 % +- 2 %);
- sample sizes of `propensity experiment design` against statsmodels' for the same inputs;
- Hillstrom (when ``../shared/data/hillstrom.parquet`` is there): the arms' visit and
  conversion rates against the published ones, lifts with intervals, the sample ratio test.

Writes the ``experiments`` section of docs/benchmarks.md unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import (  # noqa: E402
    DEFAULT_WORKDIR,
    add_lock_argument,
    bench_lock,
    machine,
    peak_mb,
    write_section,
)

EXPERIMENTS_YML = """
experiments:
  discount_2026q3:
    assignment: external
    arms: {"0": {share: 0.3334}, "20": {share: 0.3333}, "25": {share: 0.3333}}
    control: "0"
    primary_metric: conversion
  aa_sept:
    description: A/A split of every customer (no treatment).
    audience: {all_customers: true}
    arms: {a: {share: 0.5}, b: {share: 0.5}}
    control: a
    salt: aa-2026
    assigned_at: 2026-09-01
    window_days: 30
"""
MARTS = ["+fct_experiment_results", "+fct_experiment_balance", "+fct_experiment_cumulative"]
HILLSTROM = ROOT.parent / "shared" / "data" / "hillstrom.parquet"
PUBLISHED = {
    "visit": {"mens_email": 0.1828, "womens_email": 0.1514, "no_email": 0.1062},
    "conversion": {"mens_email": 0.0125, "womens_email": 0.0088, "no_email": 0.0057},
}
DESIGNS = [  # (metric, baseline or sd, mde, arms, power, alpha)
    ("conversion", 0.05, 0.01, 3, 0.8, 0.05),
    ("conversion", 0.05, 0.01, 2, 0.8, 0.05),
    ("conversion", 0.20, 0.02, 4, 0.9, 0.01),
    ("revenue", 58.6, 2.0, 2, 0.8, 0.05),
    ("revenue", 58.6, 5.0, 3, 0.8, 0.05),
]


def build(args) -> tuple[Path, dict[str, float]]:
    from models_py._dbt import run_dbt
    from models_py._settings import Settings
    from models_py.experiments import assign_experiments
    from models_py.ingest.synth import generate_warehouse

    path = args.workdir / f"experiments_{args.customers}.duckdb"
    timings: dict[str, float] = {}
    if args.reuse and path.exists():
        return path, timings
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    generate_warehouse(path, customers=args.customers, seed=args.seed)
    timings["generate"] = time.perf_counter() - started
    config = args.workdir / "experiments.yml"
    config.write_text(EXPERIMENTS_YML)
    settings = Settings(warehouse=path)
    started = time.perf_counter()
    assign_experiments(settings, config)
    timings["assign"] = time.perf_counter() - started
    started = time.perf_counter()
    run_dbt(settings, ["build", "--select", *MARTS])
    timings["dbt build of the experiment marts (features at the assignment days included)"] = (
        time.perf_counter() - started
    )
    return path, timings


def measure(path: Path, runs: int) -> dict:
    import duckdb

    from models_py.experiments import aa_false_positive_rate, analyse_experiment

    out: dict = {"timings": {}}
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("set enable_progress_bar = false")
        started = time.perf_counter()
        out["discount"] = analyse_experiment(con, "discount_2026q3")
        out["timings"]["analyse discount_2026q3 (Python, from the mart)"] = (
            time.perf_counter() - started
        )
        out["aa"] = analyse_experiment(con, "aa_sept")
        truth = con.execute(
            "select arm, avg(effect), avg(revenue_effect), avg(margin_effect), "
            "avg(treated_probability) / avg(baseline_probability) - 1 "
            "from raw.oracle_treatment_effect group by arm order by arm"
        ).fetchall()
        out["truth"] = {
            arm: {"conversion": p, "revenue": r, "margin": m, "relative": rel}
            for arm, p, r, m, rel in truth
        }
        out["aa_runs"] = {}
        for n in (runs, 5 * runs):
            for metric, covariate in (
                ("purchased", "pre_period_orders"),
                ("revenue", "pre_period_revenue"),
            ):
                started = time.perf_counter()
                out["aa_runs"][metric, n] = aa_false_positive_rate(
                    con,
                    "marts.fct_experiment_outcomes",
                    metric=metric,
                    covariate=covariate,
                    runs=n,
                    where="experiment_id = 'aa_sept'",
                )
                out["timings"][f"{n} A/A re-assignments of {metric} (one SQL query + tests)"] = (
                    time.perf_counter() - started
                )
    return out


def designs() -> list[dict]:
    from statsmodels.stats.power import NormalIndPower, TTestIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    from models_py.experiments._design import sample_size

    rows = []
    for metric, base, mde, arms, power, alpha in DESIGNS:
        alpha_per = alpha / (arms - 1)
        if metric == "conversion":
            n, _, _ = sample_size(
                metric, baseline=base, mde=mde, arms=arms, power=power, alpha=alpha
            )
            h = proportion_effectsize(base + mde, base)
            ref = NormalIndPower().solve_power(effect_size=h, alpha=alpha_per, power=power)
            what = f"conversion {base:.0%} -> {base + mde:.0%}"
            call = f"NormalIndPower, h = proportion_effectsize({base + mde:g}, {base:g})"
        else:
            n, _, _ = sample_size(metric, sd=base, mde=mde, arms=arms, power=power, alpha=alpha)
            ref = TTestIndPower().solve_power(effect_size=mde / base, alpha=alpha_per, power=power)
            what = f"revenue +{mde:g} per customer (sd {base:g})"
            call = f"TTestIndPower, d = {mde:g} / {base:g}"
        rows.append(
            {
                "what": what,
                "arms": arms,
                "power": power,
                "alpha": alpha,
                "alpha_per": alpha_per,
                "n": n,
                "ref": math.ceil(ref),
                "call": call,
            }
        )
    return rows


def hillstrom(workdir: Path, data: Path):
    if not data.exists():
        return None
    import duckdb

    from models_py.experiments import analyse_relation
    from models_py.ingest.loaders import load_hillstrom
    from models_py.reporting._results import HILLSTROM_EXPERIMENT

    path = workdir / "hillstrom.duckdb"
    path.unlink(missing_ok=True)
    load_hillstrom(data, path)
    spec = dict(HILLSTROM_EXPERIMENT)
    with duckdb.connect(str(path), read_only=True) as con:
        return analyse_relation(con, spec.pop("relation"), **spec)


def _pct(x: float) -> str:
    return f"{x * 100:+.2f}"


def report(args, built: dict[str, float], m: dict, design_rows: list[dict], hill) -> str:
    from models_py.experiments._analyse import change, level

    a = m["discount"]
    lines = [
        "## Experiments (issue 16): lifts against the truth, A/A false positives, design",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}. Command: `.venv/bin/python "
        f"benchmarks/experiments.py --customers {args.customers} --runs {args.runs}`. Generated "
        f"warehouse: {args.customers:,} customers, seed {args.seed}; experiments.yml describes the "
        "generator's discount experiment (raw.treatments) and assigns an A/A split of every "
        "customer on 2026-09-01; then `dbt build` of the experiment marts and "
        "`propensity experiment analyse` (docs/experiments.md).",
        "",
        "### The generated discount experiment against the truth",
        "",
        f"`discount_2026q3`: {sum(a.sample_ratio.counts.values()):,} customers "
        + " / ".join(f"{arm} {n:,}" for arm, n in a.sample_ratio.counts.items())
        + f" (sample ratio p = {a.sample_ratio.p_value:.2f}). True effect = the mean over the "
        "experiment's customers of the generator's effect of the arm (raw.oracle_treatment_effect: "
        "purchase probability, expected revenue and margin in the 30-day window).",
        "",
        "| metric | arm vs 0 | estimate | 95 % CI | true | in CI | CUPED estimate | CUPED 95 % CI "
        "| in CI | CI width CUPED / plain | variance reduction |",
        "|---|---|---:|---|---:|---|---:|---|---|---:|---:|",
    ]
    contained, total = 0, 0
    for metric in ("conversion", "revenue", "margin"):
        for c in a.for_metric(metric):
            true = m["truth"][c.arm][metric]
            k = c.kind
            plain_in = c.ci_lower < true < c.ci_upper
            cuped_in = c.cuped_ci_lower < true < c.cuped_ci_upper
            contained += plain_in + cuped_in
            total += 2
            lines.append(
                f"| {metric} | {c.arm} | {change(k, c.difference)} | {change(k, c.ci_lower)} .. "
                f"{change(k, c.ci_upper)} | {change(k, true)} | {'yes' if plain_in else 'NO'} | "
                f"{change(k, c.cuped_difference)} | {change(k, c.cuped_ci_lower)} .. "
                f"{change(k, c.cuped_ci_upper)} | {'yes' if cuped_in else 'NO'} | "
                f"{c.ci_width_ratio:.3f} | {c.variance_reduction:.1%} |"
            )
    rel = [
        f"{c.arm}: {c.relative_lift:+.1%} (95 % CI {c.relative_lift_ci_lower:+.1%} .. "
        f"{c.relative_lift_ci_upper:+.1%}; true {m['truth'][c.arm]['relative']:+.1%})"
        for c in a.for_metric("conversion")
    ]
    widths = [c.ci_width_ratio for c in a.comparisons]
    lines += [
        "",
        f"{contained} of {total} intervals contain the true effect. Relative lift of conversion: "
        + "; ".join(rel)
        + f". CUPED (pre-period of 90 days: purchase orders for conversion and orders, revenue "
        f"for revenue and margin) narrows the intervals to {min(widths):.0%} .. {max(widths):.0%} "
        "of their plain width.",
        "",
        "Verdict printed by `propensity experiment analyse discount_2026q3`:",
        "",
        *[f"- {line}" for line in a.verdict()],
        "",
        f"### A/A: {args.runs} re-assignments",
        "",
        f"`aa_sept` splits every customer in two with a salted hash (salt aa-2026), nothing is "
        f"sent: sample ratio p = {m['aa'].sample_ratio.p_value:.2f}; "
        + "; ".join(
            f"{c.metric} difference {change(c.kind, c.difference)} (p = {c.p_value:.2f})"
            for c in m["aa"].comparisons
            if c.metric in ("conversion", "revenue")
        )
        + f". The same customers and outcomes (marts.fct_experiment_outcomes) re-split {args.runs} "
        "times with the salts aa-0 .. aa-N in one SQL query (runs x customers md5 hashes, "
        "grouped by run and half), each run tested as a real analysis is. Goal: 5 % +- 2 % "
        "significant at alpha 5 %.",
        "",
        "| metric | customers | runs | false positives (plain) | rate | 95 % CI (Clopper-Pearson) "
        "| CUPED false positives | CUPED rate |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for (metric, _), r in m["aa_runs"].items():
        lo, hi = r.rate_interval()
        lines.append(
            f"| {metric} | {r.customers:,} | {r.runs:,} | {r.false_positives} | {r.rate:.1%} | "
            f"{lo:.1%} .. {hi:.1%} | {r.cuped_false_positives} | {r.cuped_rate:.1%} |"
        )
    lines += [
        "",
        f"With {args.runs} runs the rate's own standard deviation is "
        f"{math.sqrt(0.05 * 0.95 / args.runs):.1%} (binomial, at 5 %), so 5 % +- 2 % is a band "
        f"of about 1.3 standard deviations; the {5 * args.runs:,} runs (salts continuing the "
        "same series) pin the rates closer.",
    ]
    lines += [
        "",
        "### Design: sample sizes against statsmodels",
        "",
        "`propensity experiment design` (models_py/experiments/_design.py) against a direct "
        "statsmodels call with the same inputs (two-sided, equal arms; several arms: alpha / "
        "(arms - 1) per comparison with the control).",
        "",
        "| design | arms | power | alpha (per comparison) | customers per arm | statsmodels | "
        "statsmodels call |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for r in design_rows:
        lines.append(
            f"| {r['what']} | {r['arms']} | {r['power']:.0%} | {r['alpha']:g} "
            f"({r['alpha_per']:.4g}) | {r['n']:,} | {r['ref']:,} | {r['call']} |"
        )
    if hill is None:
        lines += ["", "### Hillstrom: skipped (hillstrom.parquet is not in ../shared/data)"]
    else:
        sr = hill.sample_ratio
        lines += [
            "",
            "### Hillstrom (MineThatData 2008)",
            "",
            "`propensity experiment analyse hillstrom_2008_email --relation datasets.hillstrom` "
            "(after `propensity load hillstrom`): rates against the published ones, each e-mail "
            "against no e-mail, Holm over the two e-mails, CUPED with last year's spend "
            f"(`history`). Sample ratio: chi-square {sr.chi_square:.2f} (df {sr.df}), p = "
            f"{sr.p_value:.2f}: {'MISMATCH' if sr.is_mismatch else 'passes'}.",
            "",
            "| metric | arm | rate | published | no e-mail | published | difference (95 % CI) "
            "| relative lift (95 % CI) | Holm p | variance reduction |",
            "|---|---|---:|---:|---:|---:|---|---|---:|---:|",
        ]
        for c in hill.comparisons:
            pub = PUBLISHED.get(c.metric)
            published = f"{pub[c.arm]:.2%}" if pub else "-"
            published_control = f"{pub['no_email']:.2%}" if pub else "-"
            lines.append(
                f"| {c.metric} | {c.arm} | {level(c.kind, c.mean)} | {published} | "
                f"{level(c.kind, c.control_mean)} | {published_control} | "
                f"{change(c.kind, c.difference)} ({change(c.kind, c.ci_lower)} .. "
                f"{change(c.kind, c.ci_upper)}) | {c.relative_lift:+.1%} "
                f"({c.relative_lift_ci_lower:+.1%} .. {c.relative_lift_ci_upper:+.1%}) | "
                f"{c.p_value_holm:.2g} | {c.variance_reduction:.1%} |"
            )
    lines += ["", "### Time", "", "| step | seconds |", "|---|---:|"]
    for name, seconds in {**built, **m["timings"]}.items():
        lines.append(f"| {name} | {seconds:.1f} |")
    lines += ["", f"Peak memory (this process or dbt): {peak_mb():,.0f} MB."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=200, help="A/A re-assignments")
    parser.add_argument("--reuse", action="store_true", help="reuse the warehouse if it exists")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR / "experiments",
        help="the warehouses (default: TMPDIR/propensity-bench/experiments)",
    )
    parser.add_argument(
        "--hillstrom",
        type=Path,
        default=HILLSTROM,
        help="the Hillstrom file (default: ../shared/data/hillstrom.parquet beside the repository)",
    )
    add_lock_argument(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args.workdir.mkdir(parents=True, exist_ok=True)
    with bench_lock(args.lock):
        path, built = build(args)
        measured = measure(path, args.runs)
        hill = hillstrom(args.workdir, args.hillstrom)
    body = report(args, built, measured, designs(), hill)
    print(body)
    if not args.no_write:
        write_section("experiments", body)


if __name__ == "__main__":
    main()
