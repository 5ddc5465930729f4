"""What limits the gap to the oracle AUC: a quick experiment on a built demo warehouse.

For each product group, one histogram gradient boosting model (the packaged spec's settings,
unweighted) is fitted on a hashed sample of the train cutoffs and scored on the test cutoff, with

- ``base``: the features of ``marts.fct_training_examples``;
- ``+lifetime group``: candidate SQL features computed here from the intermediate models
  (lifetime purchase orders and order lines of the group before the cutoff, all lines, their
  shares, days observed since max(created_at, first order date in the warehouse));
- ``+latent rate``, ``+latent alive``, ``+latent rate+alive``: the generator's latent state from
  ``raw.oracle_customer_state`` (NOT observable: it shows how much of the gap is the unobservable
  purchase rate and churn time that the oracle knows).

Usage::

    .venv/bin/python benchmarks/oracle_gap_features.py WAREHOUSE --groups any,wine --per-cutoff 4000

Prints one line per (group, variant); nothing is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

KEYS = {"customer_id", "product_group", "as_of_date", "split", "label", "sample_weight"}
EXTRA = (
    "group_orders_all",
    "group_lines_all",
    "lines_all",
    "days_observed",
    "group_order_share",
    "group_line_share",
    "orders_per_observed_day",
)
LATENT = ("log_rate", "alive_at_t", "alive_days_in_window")
VARIANTS = {
    "base": (),
    "+lifetime group": EXTRA,
    "+latent rate": ("log_rate",),
    "+latent alive": ("alive_at_t", "alive_days_in_window"),
    "+latent rate+alive": LATENT,
}

SQL = """
with examples as (
    select e.*, o.probability
    from marts.fct_training_examples as e
    left join raw.oracle_propensity as o using (customer_id, product_group, as_of_date)
    where e.product_group = $g and e.split = $s
    qualify row_number() over (
        partition by e.as_of_date order by hash(e.customer_id, e.as_of_date, 0)
    ) <= $cap
),
data_start as (select min(order_date) as first_day from intermediate.int_orders_summarised),
group_orders as (
    select distinct customer_id, order_id, order_date
    from intermediate.int_order_groups_summarised
    where is_purchase and product_group = $g
),
group_orders_before as (
    select examples.customer_id, examples.as_of_date, count(g.order_id) as group_orders_all
    from examples
    left join group_orders as g
        on g.customer_id = examples.customer_id and g.order_date < examples.as_of_date
    group by all
),
lines as (
    select o.customer_id, o.order_date, count(*) as n,
        count(*) filter (where m.product_group is not null) as n_group
    from intermediate.int_orders_summarised as o
    inner join staging.stg_raw__order_lines as l using (order_id)
    left join intermediate.int_products_mapped_to_groups as m
        on m.product_id = l.product_id and m.product_group = $g
    where o.is_purchase and l.quantity > 0
    group by all
),
lines_before as (
    select examples.customer_id, examples.as_of_date,
        coalesce(sum(lines.n), 0) as lines_all, coalesce(sum(lines.n_group), 0) as group_lines_all
    from examples
    left join lines
        on lines.customer_id = examples.customer_id and lines.order_date < examples.as_of_date
    group by all
),
final as (
    select examples.*, b.group_orders_all, lb.group_lines_all, lb.lines_all,
        date_diff(
            'day', greatest(cast(c.created_at as date), d.first_day), examples.as_of_date
        ) as days_observed,
        ln(s.purchase_rate) as log_rate,
        cast(s.churned_at > examples.as_of_date as integer) as alive_at_t,
        least(30, greatest(0, date_diff('day', examples.as_of_date, cast(s.churned_at as date))))
            as alive_days_in_window
    from examples
    inner join group_orders_before as b using (customer_id, as_of_date)
    inner join lines_before as lb using (customer_id, as_of_date)
    inner join staging.stg_raw__customers as c using (customer_id)
    inner join raw.oracle_customer_state as s using (customer_id)
    cross join data_start as d
)
select *,
    (group_orders_all + 0.2) / (order_count + 1.0) as group_order_share,
    (group_lines_all + 0.2) / (lines_all + 1.0) as group_line_share,
    order_count / (days_observed + 1.0) as orders_per_observed_day
from final
"""

PARAMS = {
    "learning_rate": 0.1,
    "max_iter": 200,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 100,
    "l2_regularization": 1.0,
    "early_stopping": True,
    "random_state": 0,
}


def load(con, group: str, split: str, cap: int) -> dict[str, np.ndarray]:
    return con.execute(SQL, {"g": group, "s": split, "cap": cap}).fetchnumpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="oracle gap: feature experiment")
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("--groups", default="any,wine,alcohol,books")
    parser.add_argument("--per-cutoff", type=int, default=4000, help="train rows per cutoff")
    args = parser.parse_args(argv)
    con = duckdb.connect(str(args.warehouse), read_only=True)
    cols = [r[0] for r in con.sql("describe marts.fct_training_examples").fetchall()]
    base = [c for c in cols if c not in KEYS]
    with threadpool_limits(1):
        for group in args.groups.split(","):
            tr = load(con, group, "train", args.per_cutoff)
            te = load(con, group, "test", 10**7)
            oracle = roc_auc_score(te["label"], te["probability"])
            for name, extra in VARIANTS.items():
                names = [*base, *extra]
                X_tr = np.column_stack([tr[c].astype(np.float32) for c in names])
                X_te = np.column_stack([te[c].astype(np.float32) for c in names])
                model = HistGradientBoostingClassifier(**PARAMS).fit(X_tr, tr["label"])
                auc = roc_auc_score(te["label"], model.predict_proba(X_te)[:, 1])
                print(
                    f"{group:8s} train={len(X_tr):7d} {name:20s} auc={auc:.4f} "
                    f"oracle={oracle:.4f} gap={oracle - auc:.4f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
