"""Small synthetic uplift registry rows and offer marts for the report tests, written directly
with DuckDB in the shapes `propensity uplift train` and dbt write (no training).

One offer family, ``discount``: a champion model set with two treated arms (10 % and 20 % off)
and two outcomes, plus an older challenger set that the report must not show. Values with HTML
specials (a segment ``<new>``) check the escaping.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from models_py._warehouse import connect

FAMILY = "discount"
CHAMPION = "discount-20240701T060000-c0ffee"
CHALLENGER = "discount-20240601T060000-0ld5e7"
ARMS = {"control": 0.0, "pct_10": 10.0, "pct_20": 20.0}
TREATED = ("pct_10", "pct_20")
OUTCOMES = ("purchased", "revenue")
OFFER_ID = "autumn_discount"
AS_OF = dt.date(2024, 7, 1)
SEGMENTS = ("champions", "loyal", "at_risk", "<new>")
#: Reasons as fct_offer_assignments records them (offer, holdout, none chosen, over budget).
REASONS = ("offer", "holdout", "no_positive_profit", "over_budget")
POLICIES = ("project", "everyone_20", "nobody", "top_propensity_decile_25", "oracle")
CUSTOMERS = 400
#: Images of the section: a Qini curve per outcome, the decile chart, arm mix, policy profit.
IMAGES_MODEL = len(OUTCOMES) + 1
IMAGES_OFFERS = 2


def _model_set(model_set_id: str, trained_at: dt.datetime) -> dict:
    return {
        "model_set_id": model_set_id,
        "spec_name": "discount_uplift",
        "offer_family": FAMILY,
        "experiment_id": "exp_spring",
        "learner": "dr_learner",
        "outcomes": json.dumps(list(OUTCOMES)),
        "control_arm": "control",
        "arms": json.dumps(ARMS),
        "trained_at": trained_at,
        "training_relation": "marts.fct_experiment_examples",
        "feature_names": json.dumps(["recency_days", "order_count"]),
        "feature_hash": "0" * 16,
        "hyperparameters": json.dumps({"base": "hgb"}),
        "evaluation": json.dumps(
            {
                "selection_qini": {},
                "metrics": [],
                "held_out_policy_value": {
                    "incremental_margin_per_customer": 0.125,
                    "ci_lower": -0.05,
                    "ci_upper": 0.3,
                    "offered_share": 0.2,
                    "rows": 1000,
                    "margin_rate": 0.4,
                },
            }
        ),
        "library_versions": json.dumps({}),
    }


def _metrics(model_set_id: str, scale: float) -> list[dict]:
    rows = []
    for i, arm in enumerate(TREATED):
        for outcome in OUTCOMES:
            money = outcome == "revenue"
            unit = 4.0 if money else 0.01
            rows.append(
                {
                    "model_set_id": model_set_id,
                    "offer_family": FAMILY,
                    "arm": arm,
                    "outcome": outcome,
                    "split": "test",
                    "treated": 610 + 7 * i,
                    "control": 598,
                    "qini_coefficient": scale * unit * (2.1 + i),
                    "auuc": None if money else 0.021 + 0.004 * i,
                    "uplift_at_10": scale * unit * (6 + 2 * i),
                    "uplift_at_20": scale * unit * (5 + 2 * i),
                    "uplift_at_30": scale * unit * (4 + 2 * i),
                    "oracle_qini_coefficient": None if money else unit * (3.4 + i),
                    "evaluated_at": dt.datetime(2024, 7, 1, 6),
                }
            )
    return rows


def _bins(model_set_id: str) -> list[dict]:
    rows = []
    for i, arm in enumerate(TREATED):
        for outcome in OUTCOMES:
            unit = 4.0 if outcome == "revenue" else 0.01
            for b in range(1, 11):
                uplift = unit * (9 - b + 2 * i)
                half = unit * 3.5
                empty = outcome == "purchased" and arm == "pct_20" and b == 10
                rows.append(
                    {
                        "model_set_id": model_set_id,
                        "offer_family": FAMILY,
                        "arm": arm,
                        "outcome": outcome,
                        "split": "test",
                        "bin": b,
                        "treated": 0 if empty else 61,
                        "control": 60,
                        "mean_treated": None if empty else 0.05 + uplift,
                        "mean_control": 0.05,
                        "uplift": None if empty else uplift,
                        "ci_lower": None if empty or b == 5 else uplift - half,
                        "ci_upper": None if empty or b == 5 else uplift + half,
                    }
                )
    return rows


def _curves(model_set_id: str) -> list[dict]:
    rows = []
    for i, arm in enumerate(TREATED):
        n = 1208 + 7 * i
        for outcome in OUTCOMES:
            total = (40.0 if outcome == "purchased" else 1600.0) * (1 + 0.3 * i)
            x = np.linspace(0, n, 25)
            share = x / n
            y = total * share * (1.8 - 0.8 * share)  # concave: above the diagonal
            rows += [
                {
                    "model_id": model_set_id,
                    "product_group": FAMILY,
                    "split": "test",
                    "curve": f"qini:{outcome}:{arm}",
                    "point": p,
                    "x": float(x[p]),
                    "y": float(y[p]),
                    "threshold": None,
                }
                for p in range(len(x))
            ]
    return rows


def _scores(rng) -> pa.Table:
    rows = []
    for c in range(1, CUSTOMERS + 1):
        base = float(rng.uniform(0.02, 0.2))
        for arm, pct in ARMS.items():
            effect = 0.0 if arm == "control" else float(rng.normal(0.01 * pct / 10, 0.01))
            revenue = 55.0 * (base + effect)
            rows.append(
                {
                    "customer_id": c,
                    "as_of_date": AS_OF,
                    "offer_family": FAMILY,
                    "model_set_id": CHAMPION,
                    "arm": arm,
                    "is_control": arm == "control",
                    "discount_pct": pct,
                    "p_purchase": base + effect,
                    "expected_revenue": revenue,
                    "expected_margin": revenue * (0.4 - pct / 100) / (1 - pct / 100),
                    "cate_purchase": effect,
                    "cate_revenue": 55.0 * effect,
                    "cate_margin": 55.0 * effect * 0.3 - 55.0 * base * pct / 100,
                }
            )
    return pa.Table.from_pylist(rows)


def _reason(arm: str, holdout: bool, customer: int) -> str:
    if holdout:
        return "holdout"
    if arm == "control":
        return "over_budget" if customer % 7 == 0 else "no_positive_profit"
    return "offer"


def _assignments(rng) -> pa.Table:
    rows = []
    for c in range(1, CUSTOMERS + 1):
        arm = str(rng.choice(list(ARMS), p=[0.4, 0.35, 0.25]))
        holdout = arm != "control" and rng.random() < 0.15  # shows the arm it would have had
        offer = arm != "control" and not holdout
        profit = float(rng.gamma(2.0, 1.5)) if arm != "control" else 0.0
        rows.append(
            {
                "offer_id": OFFER_ID,
                "customer_id": c,
                "as_of_date": AS_OF,
                "offer_family": FAMILY,
                "model_set_id": CHAMPION,
                "policy": "profit",
                "arm": arm,
                "discount_pct": ARMS[arm],
                "is_offer": offer,
                "is_holdout": holdout,
                "expected_incremental_profit": profit,
                "expected_incremental_margin": profit * 1.3,
                "expected_discount_spend": 0.0 if arm == "control" else ARMS[arm] * 0.4,
                "cate_purchase": profit / 100,
                "p_purchase": float(rng.uniform(0.02, 0.3)),
                "p_redeem": float(rng.uniform(0.1, 0.6)),
                "reason": _reason(arm, holdout, c),
                "segment": SEGMENTS[c % len(SEGMENTS)],
            }
        )
    return pa.Table.from_pylist(rows)


def _policy_profit() -> pa.Table:
    expected = {"project": 412.5, "everyone_20": -220.0, "nobody": 0.0, "oracle": 455.0}
    true = {"project": 380.2, "everyone_20": -251.7, "nobody": 0.0, "oracle": 530.9}
    offered = {"project": 212, "everyone_20": CUSTOMERS, "nobody": 0, "oracle": 190}
    return pa.Table.from_pylist(
        [
            {
                "offer_id": OFFER_ID,
                "as_of_date": AS_OF,
                "policy": p,
                "customers_offered": offered.get(p, 40),
                "expected_profit": expected.get(p, 95.0),
                "true_profit": true.get(p, 60.3),
            }
            for p in POLICIES
        ]
    )


def _insert(con, table: str, rows: list[dict]) -> None:
    con.register("rows_view", pa.Table.from_pylist(rows))
    con.execute(f"insert into ml.{table} by name select * from rows_view")
    con.unregister("rows_view")


def write_uplift_registry(warehouse: Path) -> None:
    """The champion and challenger model sets with their evaluation rows and aliases."""
    con = connect(warehouse)
    try:
        _insert(
            con,
            "uplift_model_sets",
            [
                _model_set(CHALLENGER, dt.datetime(2024, 6, 1, 6)),
                _model_set(CHAMPION, dt.datetime(2024, 7, 1, 6)),
            ],
        )
        at = dt.datetime(2024, 7, 1, 6)
        _insert(
            con,
            "uplift_aliases",
            [
                {"offer_family": FAMILY, "alias": a, "model_set_id": m, "updated_at": at}
                for a, m in (("champion", CHAMPION), ("challenger", CHALLENGER))
            ],
        )
        for model_set_id, scale in ((CHAMPION, 1.0), (CHALLENGER, 0.5)):
            _insert(con, "uplift_metrics", _metrics(model_set_id, scale))
            _insert(con, "uplift_bins", _bins(model_set_id))
            _insert(con, "curve_points", _curves(model_set_id))
    finally:
        con.close()


def write_offer_marts(warehouse: Path, *, offers: bool = True) -> None:
    """marts.fct_uplift_scores, and with `offers` the two offer marts."""
    rng = np.random.default_rng(11)
    tables = {"fct_uplift_scores": _scores(rng)}
    if offers:
        tables["fct_offer_assignments"] = _assignments(rng)
        tables["fct_offer_policy_profit"] = _policy_profit()
    con = connect(warehouse)
    try:
        con.execute("create schema if not exists marts")
        for name, table in tables.items():
            con.register("table_view", table)
            con.execute(f"create or replace table marts.{name} as select * from table_view")
            con.unregister("table_view")
    finally:
        con.close()
