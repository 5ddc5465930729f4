"""What a regime shift of the generator does to the oracle (latent and observable), to a model
trained before it and to the feature distributions the drift marts compare, over the weekly
steps of a replay (docs/oracle.md, "Regime shift"; benchmarks/regime_shift.py is the quicker
PSI-from-SQL view).

Usage::

    .venv/bin/python benchmarks/regime_shift_models.py               # 50k customers, seed 0
    .venv/bin/python benchmarks/regime_shift_models.py --customers 5000 --no-models
    .venv/bin/python benchmarks/regime_shift_models.py --workdir DIR --keep --features-only
    .venv/bin/python benchmarks/regime_shift_models.py --workdir DIR --reuse --groups any

Generates the warehouse twice with the same seed, without and with the shift (default
``email_fatigue`` at end_date - 114 days: week 13 of a 26-week replay whose last step's label window
ends at end_date), then prints:

1. **Oracle**: per 30-day oracle cutoff and group, the ROC AUC against the realised labels of
   the shifted warehouse of its own oracle (the new regime) and of the unshifted warehouse's
   oracle (the same latent state under the old regime: the best a model of the old regime can
   do), and the calibration z of the shifted oracle ((positives - sum p) / binomial sd).
2. **Models** (unless --no-models): features at the 26 weekly steps of the replay and at the 12
   monthly cutoffs before its first step (dbt, groups restricted to --groups), a gradient-boosting
   model per group trained on the monthly cutoffs as the replay's first training does (the
   "stale" model), and, at each step, a model fitted on the same step's period (half of the
   customers; both evaluated on the other half): the stale model's AUC before and after the
   shift and its gap to the same-period model.
3. **Drift**: PSI of every monitored feature at every step against the stale model's training
   rows, binned as `ml.reference_distributions` bins them (models_py/training/_reference.py):
   the features at warn (>= 0.1) and alert (>= 0.25) per step.

Nothing is written to the docs; the figures in docs/oracle.md come from this script.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import add_lock_argument, bench_lock, machine  # noqa: E402

END = dt.date(2026, 10, 1)
WEEKS = 26
STEP = 7
HORIZON = 30
#: Features the drift marts report without a status (dbt var drift_ignore_features).
IGNORED = ("tenure_days", "btyd_age_days", "btyd_recency_days")
CATEGORICAL = ("rfm_segment_code",)
PSI_WARN, PSI_ALERT, PSI_EPSILON = 0.1, 0.25, 1e-4
MAX_TRAIN_ROWS = 150_000

LABELS_SQL = """
with cutoffs as (
    select distinct as_of_date from raw.oracle_propensity where as_of_date < $end
),

events as (
    select distinct cutoffs.as_of_date, orders.customer_id, member.product_group
    from cutoffs
    inner join raw.orders as orders
        on orders.ordered_at >= cutoffs.as_of_date
        and orders.ordered_at < cutoffs.as_of_date + interval 30 day
    inner join raw.order_lines as lines on orders.order_id = lines.order_id and lines.quantity > 0
    inner join member on lines.product_id = member.product_id
)

select
    shifted.as_of_date,
    shifted.customer_id,
    shifted.product_group,
    shifted.probability,
    unshifted.probability as unshifted_probability,
    events.customer_id is not null as label
from raw.oracle_propensity as shifted
inner join unshifted.raw.oracle_propensity as unshifted
    using (customer_id, product_group, as_of_date)
left join events using (as_of_date, customer_id, product_group)
where shifted.as_of_date < $end
"""


def replay_dates(end: dt.date) -> tuple[list[dt.date], list[dt.date]]:
    """The replay's weekly steps (the last one's label window ends at `end`) and the 12 monthly
    training cutoffs of its first training (newest first)."""
    last = end - dt.timedelta(days=HORIZON)
    first = last - dt.timedelta(days=STEP * (WEEKS - 1))
    steps = [first + dt.timedelta(days=STEP * k) for k in range(WEEKS)]
    training = [first - dt.timedelta(days=HORIZON + 30 * k) for k in range(12)]
    return steps, training


def generate(workdir: Path, *, customers: int, seed: int, shift_at: dt.date, shift: str):
    from models_py.ingest.synth import generate_warehouse

    paths = {}
    for name, kwargs in (("unshifted", {}), ("shifted", {"shift_at": shift_at, "shift": shift})):
        path = workdir / f"{name}.duckdb"
        started = time.perf_counter()
        generate_warehouse(path, customers=customers, seed=seed, end_date=END, **kwargs)
        print(f"generated {name} in {time.perf_counter() - started:.0f} s")
        paths[name] = path
    return paths


def oracle_table(paths: dict[str, Path], *, seed: int, groups: list[str]) -> str:
    import pyarrow as pa
    from sklearn.metrics import roc_auc_score

    from models_py._warehouse import connect
    from models_py.ingest.synth._posterior import generator_parts

    _, catalog = generator_parts(seed=seed, end_date=END, days=730)
    pid, gid = np.nonzero(catalog.membership)
    member = pa.table(
        {
            "product_id": pa.array(catalog.product_id[pid].tolist(), pa.string()),
            "product_group": pa.array([catalog.groups[g] for g in gid], pa.string()),
        }
    )
    con = connect(paths["shifted"], read_only=True)
    try:
        con.register("member", member)
        con.execute(f"attach '{paths['unshifted']}' as unshifted (read_only)")
        r = con.execute(LABELS_SQL, {"end": END}).fetchnumpy()
    finally:
        con.close()
    lines = [
        "| cutoff | group | positives / rows | AUC, oracle of the new regime | AUC, oracle of the "
        "old regime | loss | calibration z |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for cutoff in sorted(set(r["as_of_date"].tolist()))[-6:]:
        for group in groups:
            m = (r["as_of_date"] == cutoff) & (r["product_group"] == group)
            y, p, old = r["label"][m], r["probability"][m], r["unshifted_probability"][m]
            new_auc, old_auc = roc_auc_score(y, p), roc_auc_score(y, old)
            z = (y.sum() - p.sum()) / np.sqrt((p * (1 - p)).sum())
            day = cutoff.date() if hasattr(cutoff, "date") else cutoff
            lines.append(
                f"| {day} | {group} | {int(y.sum()):,} / {len(y):,} | {new_auc:.4f} | "
                f"{old_auc:.4f} | {new_auc - old_auc:+.4f} | {z:+.1f} |"
            )
    return "\n".join(lines)


def observable_table(
    paths: dict[str, Path],
    *,
    seed: int,
    shift_at: dt.date,
    shift: str,
    cutoffs: list[dt.date],
    groups: list[str],
) -> str:
    """AUC against the realised labels of the observable oracle of the new regime and of the
    posterior of the old regime on the same observations (the best a model of the old regime
    can do), with the latent oracle of the new regime for reference."""
    import pyarrow as pa
    from sklearn.metrics import roc_auc_score

    from models_py._warehouse import connect
    from models_py.ingest.synth._posterior import (
        generator_parts,
        load_observed,
        observable_oracle,
        posterior_probabilities,
    )

    calendar, catalog = generator_parts(seed=seed, end_date=END, days=730)
    pid, gid = np.nonzero(catalog.membership)
    member = pa.table(
        {
            "product_id": pa.array(catalog.product_id[pid].tolist(), pa.string()),
            "product_group": pa.array([catalog.groups[g] for g in gid], pa.string()),
        }
    )
    lines = [
        "| cutoff | group | positives / rows | latent oracle, new regime | observable oracle, new "
        "regime | posterior of the old regime | loss |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for cutoff in cutoffs:
        started = time.perf_counter()
        new = observable_oracle(
            paths["shifted"],
            cutoff=cutoff,
            seed=seed,
            end_date=END,
            shift_at=shift_at,
            shift=shift,
        )
        con = connect(paths["shifted"], read_only=True)
        try:
            obs = load_observed(con, cutoff=cutoff, calendar=calendar, catalog=catalog)
            con.register("member", member)
            con.register("observable", new)
            r = con.execute(
                LABELS_SQL.replace("unshifted.raw.oracle_propensity", "observable").replace(
                    "unshifted.probability", "unshifted.probability"
                ),
                {"end": END},
            ).fetchnumpy()
        finally:
            con.close()
        old = posterior_probabilities(
            obs, cutoff=cutoff, calendar=calendar, catalog=catalog, seed=seed
        )
        for group in groups:
            m = (r["as_of_date"] == np.datetime64(cutoff)) & (r["product_group"] == group)
            order = np.argsort(r["customer_id"][m])
            y = r["label"][m][order]
            latent = r["probability"][m][order]
            observable = r["unshifted_probability"][m][order]
            a_old = roc_auc_score(y, old[:, catalog.groups.index(group)])
            a_new = roc_auc_score(y, observable)
            lines.append(
                f"| {cutoff} | {group} | {int(y.sum()):,} / {len(y):,} | "
                f"{roc_auc_score(y, latent):.4f} | {a_new:.4f} | {a_old:.4f} | "
                f"{a_new - a_old:+.4f} |"
            )
        print(f"observable oracle at {cutoff} in {time.perf_counter() - started:.0f} s", flush=True)
    return "\n".join(lines)


def build_features(path: Path, *, groups: list[str], dates: list[dt.date]) -> None:
    """dbt: training examples at `dates` for `groups` only (the other rules are deleted)."""
    from models_py._dbt import run_dbt
    from models_py._settings import Settings
    from models_py._warehouse import connect

    con = connect(path)
    try:
        con.execute(
            "delete from raw.product_group_rules where not list_contains($groups, product_group)",
            {"groups": groups},
        )
    finally:
        con.close()
    run_dbt(
        Settings(warehouse=path),
        ["run", "--select", "+fct_training_examples"],
        dbt_vars={
            "training_cutoffs": [d.isoformat() for d in sorted(dates)],
            "scoring_cutoff": END.isoformat(),
        },
    )


def load_examples(path: Path, group: str):
    from models_py._warehouse import connect

    con = connect(path, read_only=True)
    try:
        rel = con.execute(
            "select * exclude (product_group, split) from marts.fct_training_examples "
            "where product_group = ? order by as_of_date, customer_id",
            [group],
        )
        names = [d[0] for d in rel.description]
        data = rel.fetchnumpy()
    finally:
        con.close()
    features = [n for n in names if n not in ("customer_id", "as_of_date", "label")]
    numeric = [n for n in features if np.asarray(data[n]).dtype.kind in "biuf"]
    x = np.column_stack([np.asarray(data[n], dtype=np.float32) for n in numeric])
    cutoff = np.asarray(data["as_of_date"]).astype("datetime64[D]").astype(object)
    return (
        numeric,
        x,
        np.asarray(data["label"], dtype=bool),
        cutoff,
        np.asarray(data["customer_id"]),
    )


def fit(x: np.ndarray, y: np.ndarray, *, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    if len(y) > MAX_TRAIN_ROWS:
        keep = np.random.default_rng(seed).choice(len(y), MAX_TRAIN_ROWS, replace=False)
        x, y = x[keep], y[keep]
    model = HistGradientBoostingClassifier(
        learning_rate=0.1,
        max_iter=200,
        max_leaf_nodes=31,
        min_samples_leaf=100,
        l2_regularization=1.0,
        random_state=seed,
    )
    return model.fit(x, y)


def psi(reference: np.ndarray, current: np.ndarray, *, categorical: bool) -> float:
    from models_py.training._reference import numeric_edges

    if categorical:
        cats = np.unique(reference)
        r = np.array([np.mean(reference == c) for c in cats] + [0.0])
        c = np.array([np.mean(current == c) for c in cats] + [np.mean(~np.isin(current, cats))])
    else:
        edges = numeric_edges(reference)
        bins = len(edges) + 1
        r = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=bins)
        c = np.bincount(np.searchsorted(edges, current, side="right"), minlength=bins)
        r, c = r / r.sum(), c / c.sum()
    r, c = np.maximum(r, PSI_EPSILON), np.maximum(c, PSI_EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def models_and_drift(path: Path, *, groups: list[str], shift_at: dt.date, seed: int) -> None:
    """Print, group by group, the stale and same-period models' AUC per step and the drift."""
    from sklearn.metrics import roc_auc_score

    steps, training = replay_dates(END)
    train_cutoffs = set(training[2:])  # the replay's 'train' role: all but test and validation
    out = []
    for group in groups:
        started = time.perf_counter()
        names, x, y, cutoff, customer = load_examples(path, group)
        train = np.isin(cutoff, list(train_cutoffs))
        stale = fit(x[train], y[train], seed=seed)
        odd = customer % 2 == 1
        horizon = dt.timedelta(days=HORIZON)
        periods = {
            "before": [s for s in steps if s + horizon <= shift_at],
            "after": [s for s in steps if s >= shift_at],
        }
        rows = []
        for period_steps in periods.values():
            in_period = np.isin(cutoff, period_steps)
            same = fit(x[in_period & ~odd], y[in_period & ~odd], seed=seed)
            for s in period_steps:
                at = (cutoff == s) & odd
                a_stale = roc_auc_score(y[at], stale.predict_proba(x[at])[:, 1])
                a_same = roc_auc_score(y[at], same.predict_proba(x[at])[:, 1])
                rows.append((s, int(y[at].sum()), int(at.sum()), a_stale, a_same))
        # Steps whose label window straddles the shift: the stale model only.
        for s in steps:
            if s < shift_at < s + horizon:
                at = (cutoff == s) & odd
                a_stale = roc_auc_score(y[at], stale.predict_proba(x[at])[:, 1])
                rows.append((s, int(y[at].sum()), int(at.sum()), a_stale, float("nan")))
        rows.sort()
        out.append(f"\n### {group}: stale model vs a model of the same period (odd customers)\n")
        out.append("| step | cutoff | positives / rows | stale AUC | same-period AUC | gap |")
        out.append("|---:|---|---:|---:|---:|---:|")
        for s, pos, n, a_stale, a_same in rows:
            gap = "-" if np.isnan(a_same) else f"{a_same - a_stale:+.4f}"
            same_text = "-" if np.isnan(a_same) else f"{a_same:.4f}"
            k = steps.index(s)
            out.append(f"| {k} | {s} | {pos:,} / {n:,} | {a_stale:.4f} | {same_text} | {gap} |")
        for label, period in (
            ("before (label window ends by the shift)", "before"),
            ("after (cutoff on or after the shift)", "after"),
        ):
            sel = [r for r in rows if r[0] in periods[period]]
            if sel:
                out.append(
                    f"\nmean {label}: stale {np.mean([r[3] for r in sel]):.4f}, same-period "
                    f"{np.mean([r[4] for r in sel]):.4f}, gap "
                    f"{np.mean([r[4] - r[3] for r in sel]):+.4f} ({len(sel)} steps)"
                )

        # Drift of every monitored feature against the stale model's training rows.
        out.append(f"\n{group}: drift per step (PSI against the training rows)\n")
        out.append("| step | cutoff | alert (>= 0.25) | warn (>= 0.1) | largest PSI |")
        out.append("|---:|---|---|---|---|")
        for k, s in enumerate(steps):
            at = cutoff == s
            values = []
            for j, name in enumerate(names):
                if name in IGNORED:
                    continue
                values.append((psi(x[train, j], x[at, j], categorical=name in CATEGORICAL), name))
            values.sort(reverse=True)
            alert = [f"{n} {v:.2f}" for v, n in values if v >= PSI_ALERT]
            warn = [f"{n} {v:.2f}" for v, n in values if PSI_WARN <= v < PSI_ALERT]
            out.append(
                f"| {k} | {s} | {', '.join(alert) or '-'} | {', '.join(warn) or '-'} | "
                f"{values[0][1]} {values[0][0]:.3f} |"
            )
        out.append(f"\n({group}: models and drift in {time.perf_counter() - started:.0f} s)")
        print("\n".join(out), flush=True)  # one group at a time
        out = []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shift", default="email_fatigue")
    parser.add_argument(
        "--shift-at",
        type=dt.date.fromisoformat,
        default=END - dt.timedelta(days=114),
        help="default end_date - 114 days: week 13 of a 26-week replay",
    )
    parser.add_argument(
        "--groups", nargs="+", default=["any", "sweets", "gifts"], help="groups to model"
    )
    parser.add_argument("--oracle-groups", nargs="+", default=["any", "sweets", "wine", "gifts"])
    parser.add_argument("--no-models", action="store_true", help="no features, models, drift")
    parser.add_argument(
        "--features-only",
        action="store_true",
        help="build the features, fit nothing (then --reuse)",
    )
    parser.add_argument(
        "--observable",
        nargs="*",
        type=dt.date.fromisoformat,
        default=[],
        help="cutoffs at which to compute the observable oracle (about 2 ms per customer)",
    )
    parser.add_argument("--workdir", type=Path, help="where the warehouses go (default: TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the warehouses")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the warehouses of --workdir (built and kept)"
    )
    add_lock_argument(parser)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="propensity-shift-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with bench_lock(args.lock):
            print(
                f"{machine()}; {args.customers:,} customers, seed {args.seed}, "
                f"{args.shift} from {args.shift_at}, end {END}"
            )
            if args.reuse:
                paths = {name: workdir / f"{name}.duckdb" for name in ("unshifted", "shifted")}
            else:
                paths = generate(
                    workdir,
                    customers=args.customers,
                    seed=args.seed,
                    shift_at=args.shift_at,
                    shift=args.shift,
                )
            print(oracle_table(paths, seed=args.seed, groups=args.oracle_groups), flush=True)
            if args.observable:
                table = observable_table(
                    paths,
                    seed=args.seed,
                    shift_at=args.shift_at,
                    shift=args.shift,
                    cutoffs=args.observable,
                    groups=args.oracle_groups,
                )
                print(table, flush=True)
            if not args.no_models:
                steps, training = replay_dates(END)
                started = time.perf_counter()
                if not args.reuse:
                    build_features(paths["shifted"], groups=args.groups, dates=steps + training)
                print(f"features in {time.perf_counter() - started:.0f} s", flush=True)
                if args.features_only:
                    return 0
                models_and_drift(
                    paths["shifted"], groups=args.groups, shift_at=args.shift_at, seed=args.seed
                )
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
