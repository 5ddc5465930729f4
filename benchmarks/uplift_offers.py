"""Offer policies against the truth (issue 15): the true incremental profit of each policy applied
to every customer at the scoring cutoff, from the generator's per-arm effects.

    .venv/bin/python benchmarks/uplift_offers.py [--customers 50000] [--reuse]

Builds (or, with ``--reuse``, reuses) a demo warehouse in ``--workdir`` with `propensity demo`,
which trains the propensity champions and the packaged uplift spec (``discount_uplift``,
models_py/training/specs/uplift.yml) and assigns the packaged offers
(models_py/offers/default.yml). Then, with raw.oracle_offer_effects (the true effect of each
discount arm offered at the scoring cutoff on the customer's expected margin; docs/oracle.md):

- true profit of a policy = sum over the customers it gives a treated arm of (true margin effect
  of that arm - cost per contact); the expected profit is the same sum with the model's
  cate_margin (fct_uplift_scores); both from marts.fct_offer_policy_profit;
- policies: the project's `discount_by_profit` and `discount_rule_table` offers
  (fct_offer_assignments), the oracle policy (each customer's arm with the highest true profit,
  when positive), everyone 20 %, nobody, the top propensity decile (group `any`) gets 25 %;
- the held-out Qini coefficient of the CATE estimate against the oracle CATE's on the same rows
  (ml.uplift_metrics of the champion set).

Goals: the project's policy >= 90 % of the oracle's true profit and above the three simple
policies; Qini >= 80 % of the oracle's. Writes docs/benchmarks.md section ``uplift_offers``
unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from benchmarks._report import (  # noqa: E402
    DEFAULT_WORKDIR,
    add_lock_argument,
    bench_lock,
    machine,
    write_section,
)

COST = 0.05  # cost per contact of models_py/offers/default.yml
PROJECT_OFFERS = ("discount_by_profit", "discount_by_profit_ungated", "discount_rule_table")


def build(args) -> Path:
    """The demo warehouse (built unless --reuse finds it)."""
    from rich.console import Console

    from models_py._demo import run_demo
    from models_py._settings import Settings

    path = args.workdir / f"offers_{args.customers}.duckdb"
    if args.reuse and path.exists():
        return path
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    run_demo(
        Settings(warehouse=path),
        customers=args.customers,
        seed=args.seed,
        console=Console(stderr=True),
        report_dir=args.workdir / "report",
    )
    logging.info("demo warehouse built in %.0f s", time.perf_counter() - started)
    return path


def add_ungated_offer(path: Path, workdir: Path) -> None:
    """The packaged offers plus `discount_by_profit_ungated` (the same offer without the
    held-out gate), then the offer marts rebuilt."""
    import yaml

    from models_py._dbt import run_dbt
    from models_py._settings import Settings
    from models_py.offers import set_offers
    from models_py.offers._config import DEFAULT_OFFERS

    config = yaml.safe_load(DEFAULT_OFFERS.read_text())
    ungated = dict(config["offers"]["discount_by_profit"], require_held_out_gain=False)
    config["offers"]["discount_by_profit_ungated"] = ungated
    offers = workdir / "offers.yml"
    offers.write_text(yaml.safe_dump(config))
    set_offers(path, offers)
    run_dbt(
        Settings(warehouse=path),
        ["build", "--select", "fct_offer_assignments", "fct_offer_policy_profit"],
    )


def feature_limited_oracle(con) -> dict:
    """The best any model of these features can do: a regressor fitted on the TRUE margin
    effect of each arm (not on noisy outcomes), cross-fitted over every customer (5 folds);
    its policy (the arm with the highest predicted profit, if positive) scored against the
    truth. Also how much of the latent price sensitivity, which decides the sign of the
    effect, the features explain (cross-fitted R^2)."""
    import json

    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import cross_val_predict

    names = json.loads(
        con.execute(
            "select s.feature_names from ml.uplift_model_sets as s inner join "
            "ml.uplift_aliases as a using (model_set_id) where a.alias = 'champion'"
        ).fetchone()[0]
    )
    features = con.execute(
        "select * from marts.fct_scoring_features where product_group = 'any' order by customer_id"
    ).df()
    truth = con.execute(
        "select customer_id, arm, margin_effect from raw.oracle_offer_effects "
        "where as_of_date = (select max(as_of_date) from marts.fct_uplift_scores)"
    ).df()
    wide = truth.pivot(index="customer_id", columns="arm", values="margin_effect")
    wide = wide.reindex(features["customer_id"])
    state = con.execute("select customer_id, price_sensitivity from raw.oracle_customer_state").df()
    sensitivity = state.set_index("customer_id")["price_sensitivity"].reindex(
        features["customer_id"]
    )
    X = features[names].to_numpy(np.float32)
    arms = [a for a in wide.columns if a != "0"]

    def fit(y):
        model = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=0)
        return cross_val_predict(model, X, y, cv=5)

    predicted = np.column_stack([fit(wide[a].to_numpy()) for a in arms]) - COST
    true = np.column_stack([wide[a].to_numpy() for a in arms]) - COST
    offer = predicted.max(axis=1) > 0
    profit = float(true[np.arange(len(true)), predicted.argmax(axis=1)][offer].sum())
    s = sensitivity.to_numpy()
    r2 = 1 - float(((s - fit(s)) ** 2).sum() / ((s - s.mean()) ** 2).sum())
    return {"customers": int(offer.sum()), "true": profit, "sensitivity_r2": r2}


def measure(path: Path) -> dict:
    with closing(duckdb.connect(str(path), read_only=True)) as con:
        rows = con.execute(
            "select offer_id, policy, customers_offered, expected_profit, true_profit "
            "from marts.fct_offer_policy_profit order by offer_id, policy"
        ).fetchall()
        policies = {}
        for offer_id, policy, customers, expected, true in rows:
            # The simple policies are the same for both offers (same arms and costs).
            name = offer_id if policy == "offer" else policy
            policies[name] = {"customers": customers, "expected": expected, "true": true}
        base = con.execute(
            "select count(distinct customer_id) from marts.fct_uplift_scores"
        ).fetchone()[0]
        qini = con.execute(
            "select m.arm, m.outcome, m.treated, m.control, m.qini_coefficient, "
            "m.oracle_qini_coefficient from ml.uplift_metrics as m "
            "inner join ml.uplift_aliases as a on m.model_set_id = a.model_set_id "
            "where a.alias = 'champion' order by m.outcome, m.arm"
        ).fetchall()
        learner = con.execute(
            "select s.learner, s.model_set_id, s.held_out_policy_value, "
            "s.held_out_policy_value_ci_lower, s.held_out_policy_value_ci_upper "
            "from ml.uplift_model_sets as s inner join "
            "ml.uplift_aliases as a using (model_set_id) where a.alias = 'champion'"
        ).fetchone()
        limited = feature_limited_oracle(con)
    policies["feature_limited_oracle"] = {
        "customers": limited["customers"],
        "expected": float("nan"),
        "true": limited["true"],
    }
    return {
        "policies": policies,
        "base": base,
        "qini": qini,
        "learner": learner,
        "sensitivity_r2": limited["sensitivity_r2"],
    }


def report(args, facts: dict) -> str:
    p = facts["policies"]
    oracle = p["oracle"]["true"]
    order = [
        "oracle",
        "feature_limited_oracle",
        *[o for o in PROJECT_OFFERS if o in p],
        "nobody",
        "everyone_20",
        "everyone_25",
        "top_propensity_decile_25",
    ]
    lines = [
        "## Uplift: offer policies against the truth",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()} with "
        f"`.venv/bin/python benchmarks/uplift_offers.py --customers {args.customers}`: demo "
        f"warehouse (seed {args.seed}), {facts['base']:,} customers at the scoring cutoff, "
        f"champion uplift set `{facts['learner'][0]}` for purchase plus the two-part revenue "
        f"model; cost per contact {COST}. True profit from raw.oracle_offer_effects (margin "
        "effect of the arm minus the contact cost, summed over the customers offered).",
        "",
        "| policy | customers offered | expected profit (model) | true profit | share of oracle |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in order:
        r = p.get(name)
        if r is None:
            continue
        share = r["true"] / oracle if oracle else float("nan")
        expected = "-" if r["expected"] != r["expected"] else f"{r['expected']:,.0f}"
        true = round(r["true"]) + 0  # no "-0"
        lines.append(f"| {name} | {r['customers']:,} | {expected} | {true:,} | {share + 0:.1%} |")
    _, _, value, low, high = facts["learner"]
    if value is not None:
        lines += [
            "",
            f"Held-out policy value of the champion set (its profit policy on the experiment's "
            f"held-out share, no contact cost, against no offer): {value:+.3f} per customer "
            f"(95% CI {low:+.3f} .. {high:+.3f}). `discount_by_profit` keeps the default "
            "`require_held_out_gain`, so it offers nothing while this value is <= 0 "
            "(reason `no_held_out_gain`); `discount_by_profit_ungated` is the same offer with "
            "`require_held_out_gain: false`.",
        ]
    lines += [
        "",
        "Why the oracle is out of reach: the sign of a customer's effect is decided by the latent "
        "price sensitivity (docs/oracle.md), which the features explain to a cross-fitted R^2 of "
        f"{facts['sensitivity_r2']:.3f}. `feature_limited_oracle` is a regressor fitted on the "
        "*true* margin effects of every customer (5-fold cross-fitted; no model trained on "
        "outcomes can do better with these features): its policy is the attainable bar.",
    ]
    lines += [
        "",
        "Held-out Qini coefficient of the champion set against the oracle CATE's on the same "
        "rows (purchase; the revenue rows have no oracle Qini):",
        "",
        "| arm | outcome | treated / control | Qini | oracle Qini | share |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for arm, outcome, treated, control, q, oq in facts["qini"]:
        share = f"{q / oq:.1%}" if oq else "-"
        oq_text = f"{oq:.4f}" if oq is not None else "-"
        lines.append(
            f"| {arm} | {outcome} | {treated:,} / {control:,} | {q:.4f} | {oq_text} | {share} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="reuse the warehouse if it exists")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR / "offers",
        help="the demo warehouse and report (default: TMPDIR/propensity-bench/offers)",
    )
    add_lock_argument(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args.workdir.mkdir(parents=True, exist_ok=True)
    with bench_lock(args.lock):
        path = build(args)
        add_ungated_offer(path, args.workdir)
    body = report(args, measure(path))
    print(body)
    if not args.no_write:
        write_section("uplift_offers", body)


if __name__ == "__main__":
    main()
