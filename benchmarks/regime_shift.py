"""Regime shift of the synthetic generator: is it visible to drift monitoring and does it decay a
model trained before it? (docs/oracle.md, "Regime shift").

Usage::

    .venv/bin/python benchmarks/regime_shift.py --customers 50000 --workdir /tmp/shift

Generates the same warehouse (same seed) without and with a 'price_rise' shift at
end_date - 120 days and prints:

- PSI (the bins of marts.fct_feature_drift) of order and email features, computed in SQL from
  raw as dbt's fct_customer_features defines them, between the training period (cutoffs
  shift - 30 k, k = 1..6, every customer created before the cutoff) and the cutoffs 0, 7 and 14
  days after the shift, with and without the shift;
- ROC AUC on the labels 'any purchase in [T, T + 30 days)' at T = shift + 30 days of the
  pre-shift oracle (the oracle of the warehouse without the shift), of the true oracle, and of a
  gradient-boosting model trained on cutoffs before the shift.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import duckdb
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from models_py.ingest.synth import generate_warehouse
from models_py.training._reference import numeric_edges

END = dt.date(2026, 10, 1)
FEATURES = (
    "spend_7d",
    "spend_30d",
    "order_count_7d",
    "order_count_30d",
    "avg_order_value",
    "spend_total",
    "email_opens_30d",
    "email_open_rate_30d",
    "days_since_last_open",
    "days_since_last_order",
)
FEATURES_SQL = """
with orders as (
    select
        o.customer_id,
        o.ordered_at,
        round(sum(l.quantity * l.unit_price), 2) as net_amount,
        max(l.quantity) > 0 as is_purchase
    from raw.orders as o
    inner join raw.order_lines as l on o.order_id = l.order_id
    where o.ordered_at < $cutoff
    group by all
),

agg as (
    select
        customer_id,
        sum(net_amount) as spend_total,
        sum(is_purchase::int) as order_count,
        sum(case when ordered_at >= $cutoff - interval 7 day then net_amount else 0 end)
            as spend_7d,
        sum(case when ordered_at >= $cutoff - interval 30 day then net_amount else 0 end)
            as spend_30d,
        sum(case when is_purchase and ordered_at >= $cutoff - interval 7 day then 1 else 0 end)
            as order_count_7d,
        sum(case when is_purchase and ordered_at >= $cutoff - interval 30 day then 1 else 0 end)
            as order_count_30d
    from orders
    group by customer_id
),

emails as (
    select
        customer_id,
        sum(case when event_type = 'sent' then 1 else 0 end) as sends_30d,
        sum(case when event_type = 'open' then 1 else 0 end) as opens_30d
    from raw.email_events
    where occurred_at < $cutoff and occurred_at >= $cutoff - interval 30 day
    group by customer_id
),

last_open as (
    select customer_id, max(occurred_at)::date as last_open_date
    from raw.email_events
    where occurred_at < $cutoff and event_type = 'open'
    group by customer_id
),

last_order as (
    select customer_id, max(ordered_at)::date as last_order_date
    from orders
    where is_purchase
    group by customer_id
),

labels as (
    select distinct customer_id
    from raw.orders as o
    inner join raw.order_lines as l on o.order_id = l.order_id
    where l.quantity > 0 and o.ordered_at >= $cutoff and o.ordered_at < $cutoff + interval 30 day
)

select
    c.customer_id,
    coalesce(a.spend_7d, 0)::double as spend_7d,
    coalesce(a.spend_30d, 0)::double as spend_30d,
    coalesce(a.order_count_7d, 0)::double as order_count_7d,
    coalesce(a.order_count_30d, 0)::double as order_count_30d,
    case when a.order_count > 0 then round(a.spend_total / a.order_count, 2) else 0 end::double
        as avg_order_value,
    coalesce(a.spend_total, 0)::double as spend_total,
    coalesce(e.opens_30d, 0)::double as email_opens_30d,
    case when e.sends_30d > 0 then least(1, e.opens_30d / e.sends_30d) else 0 end::double
        as email_open_rate_30d,
    coalesce(least(date_diff('day', lo.last_open_date, $cutoff::date), 3650), 3650)::double
        as days_since_last_open,
    coalesce(least(date_diff('day', lr.last_order_date, $cutoff::date), 3650), 3650)::double
        as days_since_last_order,
    date_diff('day', c.created_at::date, $cutoff::date)::double as tenure_days,
    (labels.customer_id is not null)::int as label
from raw.customers as c
left join agg as a on c.customer_id = a.customer_id
left join emails as e on c.customer_id = e.customer_id
left join last_open as lo on c.customer_id = lo.customer_id
left join last_order as lr on c.customer_id = lr.customer_id
left join labels on c.customer_id = labels.customer_id
where c.created_at < $cutoff
order by c.customer_id
"""


def features(con, cutoff: dt.date) -> dict[str, np.ndarray]:
    rel = con.execute(FEATURES_SQL, {"cutoff": dt.datetime.combine(cutoff, dt.time())})
    cols = [d[0] for d in rel.description]
    rows = rel.fetchnumpy()
    return {c: np.asarray(rows[c]) for c in cols}


def psi(reference: np.ndarray, current: np.ndarray, epsilon: float = 1e-4) -> float:
    """PSI over the drift marts' bins (`numeric_edges`: 10 quantile bins of the reference, one
    per value for at most 10 values, plus below and above the reference range), shares floored
    at `epsilon` (dbt var drift_psi_epsilon)."""
    edges = numeric_edges(reference)
    bins = edges.size + 1

    def shares(x: np.ndarray) -> np.ndarray:
        index = np.searchsorted(edges, np.asarray(x, dtype=np.float32), side="right")
        return np.maximum(np.bincount(index, minlength=bins) / len(x), epsilon)

    e, a = shares(reference), shares(current)
    return float(np.sum((a - e) * np.log(a / e)))


def oracle_any(con, cutoff: dt.date) -> tuple[np.ndarray, np.ndarray]:
    rows = con.execute(
        "select customer_id, probability from raw.oracle_propensity "
        "where product_group = 'any' and as_of_date = ? order by customer_id",
        [cutoff],
    ).fetchnumpy()
    return np.asarray(rows["customer_id"]), np.asarray(rows["probability"])


def oracle_cutoffs_around(con, shift_at: dt.date) -> tuple[dt.date, dt.date]:
    """The newest oracle cutoff whose label window ends by the shift, and the first at least
    30 days after it (else the first after it): the generator stores the oracle every 30 days
    back from the end date only."""
    dates = [
        r[0]
        for r in con.execute(
            "select distinct as_of_date from raw.oracle_propensity order by 1"
        ).fetchall()
    ]
    before = [d for d in dates if d + dt.timedelta(days=30) <= shift_at]
    after = [d for d in dates if d >= shift_at + dt.timedelta(days=30)] or [
        d for d in dates if d >= shift_at
    ]
    if not before or not after:
        raise SystemExit(
            f"no oracle cutoff on both sides of the shift {shift_at} (oracle cutoffs: "
            f"{', '.join(map(str, dates))}): choose --shift-before-end between 60 and "
            f"{(END - dates[0]).days if dates else 0} days"
        )
    return before[-1], after[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shift", default="migration")
    parser.add_argument("--shift-before-end", type=int, default=120)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    shift_at = END - dt.timedelta(days=args.shift_before_end)
    paths = {"no shift": args.workdir / "no_shift.duckdb", "shift": args.workdir / "shift.duckdb"}
    started = time.perf_counter()
    for name, path in paths.items():
        generate_warehouse(
            path,
            customers=args.customers,
            seed=args.seed,
            days=args.days,
            end_date=END,
            shift_at=shift_at if name == "shift" else None,
            shift=args.shift,
        )
    cons = {name: duckdb.connect(str(p), read_only=True) for name, p in paths.items()}
    print(
        f"customers {args.customers}, days {args.days}, seed {args.seed}, "
        f"shift {args.shift!r} at {shift_at}"
    )

    ref_cutoffs = [shift_at - dt.timedelta(days=30 * k) for k in range(1, 7)]
    ref_parts = [features(cons["no shift"], t) for t in ref_cutoffs]
    reference = {f: np.concatenate([p[f] for p in ref_parts]) for f in FEATURES}
    print("\nPSI vs the training period (cutoffs shift - 30 k, k = 1..6)")
    print(f"{'feature':<22}{'days':>10}{'no shift':>14}{'shift':>14}")
    for days_after in (0, 7, 14):
        cutoff = shift_at + dt.timedelta(days=days_after)
        cur = {name: features(con, cutoff) for name, con in cons.items()}
        for f in FEATURES:
            values = [psi(reference[f], cur[name][f]) for name in cons]
            print(f"{f:<22}{days_after:>10}" + "".join(f"{v:>14.3f}" for v in values))

    # Decay: the same customers at the generator's oracle cutoffs nearest to shift + 30 (after)
    # and shift - 30 (before): exactly those when the shift is end - 120.
    t_pre, t_post = oracle_cutoffs_around(cons["no shift"], shift_at)
    print("\nROC AUC, label: any purchase in [T, T + 30 days)")
    for t in (t_pre, t_post):
        ids_n, p_pre = oracle_any(cons["no shift"], t)
        ids_s, p_true = oracle_any(cons["shift"], t)
        assert (ids_n == ids_s).all()
        y = {name: features(con, t)["label"] for name, con in cons.items()}
        print(
            f"T = {t}: pre-shift oracle on no-shift labels "
            f"{roc_auc_score(y['no shift'], p_pre):.4f}, on shifted labels "
            f"{roc_auc_score(y['shift'], p_pre):.4f}; true (shifted) oracle on shifted labels "
            f"{roc_auc_score(y['shift'], p_true):.4f}"
        )

    columns = [*FEATURES, "tenure_days"]
    train_cutoffs = [shift_at - dt.timedelta(days=30 * k) for k in range(2, 8)]
    parts = [features(cons["no shift"], t) for t in train_cutoffs]
    x = np.column_stack([np.concatenate([p[f] for p in parts]) for f in columns])
    y = np.concatenate([p["label"] for p in parts])
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=0)
    model.fit(x, y)
    for t in (t_pre, t_post):
        line = []
        for name, con in cons.items():
            cur = features(con, t)
            score = model.predict_proba(np.column_stack([cur[f] for f in columns]))[:, 1]
            line.append(f"{name} {roc_auc_score(cur['label'], score):.4f}")
        print(
            f"gradient boosting (trained on cutoffs shift - 30 k, k = 2..7), T = {t}: "
            + ", ".join(line)
        )
    print(f"\ndone in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
