"""fct_uplift_scores: a generated warehouse's discount experiment, through dbt (features as of the
assignment, fct_experiment_examples), `propensity uplift train` and `dbt run`: the in-warehouse
scores equal what Python computes from the same ONNX parts and features, within 1e-5."""

from __future__ import annotations

import datetime as dt
import json
from contextlib import closing

import numpy as np
import pandas as pd
import pytest
import yaml

from models_py._dbt import run_dbt
from models_py._settings import Settings
from models_py._warehouse import connect
from models_py.cli import main
from models_py.ingest.synth import generate_warehouse
from models_py.uplift._onnx import predict_onnx

MARGIN_RATE = 0.4
COST = 0.05
OFFERS = {
    "offers": {
        "by_profit": {
            "offer_family": "discount",
            "arms": {"20": {"cost_per_contact": COST}, "25": {"cost_per_contact": COST}},
            "suppression": {"exclude_vip": True, "exclude_unsubscribed_or_no_opt_in": False},
            "holdout_share": 0.1,
            "holdout_salt": "test",
            "require_held_out_gain": False,
        },
        "gated": {
            "offer_family": "discount",
            "arms": {"20": {"cost_per_contact": COST}, "25": {"cost_per_contact": COST}},
            "suppression": {"exclude_unsubscribed_or_no_opt_in": False},
            "holdout_share": 0.0,
        },
        "budgeted": {
            "offer_family": "discount",
            "arms": {
                "20": {"cost_per_contact": COST, "max_customers": 50},
                "25": {"cost_per_contact": COST, "max_discount_spend": 30.0},
            },
            "suppression": {"exclude_unsubscribed_or_no_opt_in": False},
            "holdout_share": 0.0,
            "require_held_out_gain": False,
        },
        "rules": {
            "offer_family": "discount",
            "arms": {"20": {}, "25": {}},
            "policy": "rule_table",
            "rules": [
                {"arm": "25", "min_cate_purchase": 0.10},
                {"arm": "20", "min_cate_purchase": 0.05},
            ],
            "suppression": {"exclude_unsubscribed_or_no_opt_in": False},
            "holdout_share": 0.0,
        },
    }
}
#: Tables the module fixture reads besides what it returns.
SCORED: dict[str, pd.DataFrame] = {}


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    work = tmp_path_factory.mktemp("uplift_scores")
    path = work / "wh.duckdb"
    SCORED["path"] = path
    generate_warehouse(path, customers=6000, seed=5, days=400, end_date=dt.date(2026, 10, 1))
    settings = Settings(warehouse=path)
    run_dbt(settings, ["run"], dbt_vars={"max_training_cutoffs": 3})
    spec = yaml.safe_load(
        (settings.dbt_project_dir.parent / "models_py/training/specs/uplift.yml").read_text()
    )
    spec["specs"][0].update(min_rows_per_arm=100, selection_folds=2)
    spec_path = work / "uplift.yml"
    spec_path.write_text(yaml.safe_dump(spec))
    assert main(["--warehouse", str(path), "uplift", "train", "--spec", str(spec_path)]) == 0
    outcome = run_dbt(settings, ["run", "--select", "fct_uplift_scores"])
    assert outcome.success
    offers_path = work / "offers.yml"
    offers_path.write_text(yaml.safe_dump(OFFERS))
    assert main(["--warehouse", str(path), "offers", "set", str(offers_path)]) == 0
    assert run_dbt(
        settings, ["build", "--select", "fct_offer_assignments", "fct_offer_policy_profit"]
    ).success
    with closing(connect(path, read_only=True)) as con:
        scores = con.execute("select * from marts.fct_uplift_scores order by customer_id, arm").df()
        features = con.execute(
            "select * from marts.fct_scoring_features where product_group = 'any' "
            "order by customer_id"
        ).df()
        parts = con.execute("select part, onnx_model from ml.uplift_model_parts").fetchall()
        model_set = con.execute(
            "select feature_names, arms, control_arm from ml.uplift_model_sets"
        ).fetchone()
        examples = con.execute("select count(*) from marts.fct_experiment_examples").fetchone()[0]
        assignments = con.execute(
            "select a.*, c.is_vip from marts.fct_offer_assignments as a "
            "left join raw.customers as c using (customer_id) order by offer_id, customer_id"
        ).df()
        SCORED["policies"] = con.execute(
            "select * from marts.fct_offer_policy_profit order by offer_id, policy"
        ).df()
        SCORED["truth"] = con.execute(
            "select customer_id, arm, margin_effect from raw.oracle_offer_effects"
        ).df()
    SCORED["assignments"] = assignments
    SCORED["gate"] = gate_outcomes(settings)
    return scores, features, parts, model_set, examples


def gate_outcomes(settings) -> dict[float, pd.Series]:
    """Reasons of the gated offer with the champion's held-out policy value forced to -1, +1."""
    out = {}
    for value in (-1.0, 1.0):
        with closing(connect(settings.warehouse)) as con:
            con.execute("update ml.uplift_model_sets set held_out_policy_value = ?", [value])
        run_dbt(settings, ["run", "--select", "fct_offer_assignments"])
        with closing(connect(settings.warehouse, read_only=True)) as con:
            out[value] = con.execute(
                "select reason from marts.fct_offer_assignments where offer_id = 'gated'"
            ).df()["reason"]
    return out


def python_scores(features: pd.DataFrame, parts, model_set) -> pd.DataFrame:
    names, arms, control = json.loads(model_set[0]), json.loads(model_set[1]), model_set[2]
    X = features[names].to_numpy(np.float32)
    groups: dict[str, dict[str, bytes]] = {}
    for part, onnx_bytes in parts:
        prefix, rest = part.split("_", 1)
        groups.setdefault(prefix, {})[rest] = bytes(onnx_bytes)
    purchase = predict_onnx(groups["purchase"], X)
    revenue = predict_onnx(groups["revenue"], X)
    rows = []
    for arm, discount in arms.items():
        d = discount / 100
        expected_revenue = revenue[f"outcome__{arm}"]
        margin = expected_revenue * (MARGIN_RATE - d) / (1 - d)
        control_revenue = revenue[f"outcome__{control}"]
        control_margin = (
            control_revenue * (MARGIN_RATE - arms[control] / 100) / (1 - arms[control] / 100)
        )
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": features["customer_id"],
                    "arm": arm,
                    "expected_revenue": expected_revenue,
                    "expected_margin": margin,
                    "cate_purchase": 0.0 if arm == control else purchase[f"cate__{arm}"],
                    "cate_revenue": expected_revenue - control_revenue,
                    "cate_margin": margin - control_margin,
                }
            )
        )
    return pd.concat(rows).sort_values(["customer_id", "arm"]).reset_index(drop=True)


def test_every_customer_gets_every_arm(scored):
    scores, features, _, model_set, examples = scored
    assert examples > 900
    arms = json.loads(model_set[1])
    assert arms == {"0": 0.0, "20": 20.0, "25": 25.0}
    assert len(scores) == len(features) * 3 > 6000
    assert scores.groupby("customer_id")["arm"].nunique().eq(3).all()
    control = scores[scores["arm"] == "0"]
    assert control["is_control"].all()
    assert (control[["cate_purchase", "cate_revenue", "cate_margin"]].abs() < 1e-12).all().all()
    assert scores["p_purchase"].between(0, 1).all()


def test_in_warehouse_scores_equal_python_within_1e_5(scored):
    scores, features, parts, model_set, _ = scored
    expected = python_scores(features, parts, model_set)
    got = scores.reset_index(drop=True)
    assert (got["customer_id"].to_numpy() == expected["customer_id"].to_numpy()).all()
    for column in ("expected_revenue", "expected_margin", "cate_revenue", "cate_margin"):
        scale = max(1.0, float(expected[column].abs().max()))
        np.testing.assert_allclose(got[column], expected[column], atol=1e-5 * scale, err_msg=column)
    np.testing.assert_allclose(got["cate_purchase"], expected["cate_purchase"], atol=1e-5)


def test_a_discount_that_adds_no_revenue_loses_margin(scored):
    """The economics in the marts: where an arm's expected revenue is no higher than the
    control's, its margin effect is negative (the discount is paid on purchases that happen
    anyway), and some customers gain margin (the offer problem is not trivial)."""
    scores = scored[0]
    treated = scores[~scores["is_control"]]
    no_gain = treated[treated["cate_revenue"] <= 0]
    assert len(no_gain) > 100 and (no_gain["cate_margin"] < 0).all()
    assert (treated["cate_revenue"] > 0).any()


def scored_path():
    return SCORED["path"]


def _wide(scores: pd.DataFrame, column: str) -> pd.DataFrame:
    return scores.pivot(index="customer_id", columns="arm", values=column)


def test_profit_policy_offers_the_best_positive_arm(scored):
    scores = scored[0]
    a = SCORED["assignments"]
    a = a[a["offer_id"] == "by_profit"].set_index("customer_id")
    profit = _wide(scores, "cate_margin")[["20", "25"]] - COST
    best = profit.idxmax(axis=1).where(profit.max(axis=1) > 0, "0")
    assert len(a) == len(best)
    vip = a["is_vip"].fillna(False).astype(bool)
    assert (a.loc[vip, "reason"] == "vip").all() and (a.loc[vip, "arm"] == "0").all()
    free = a[~vip]
    chosen = best.reindex(free.index)
    # Held-out customers keep the arm they would have had; nobody else is held out.
    assert (free["arm"] == chosen).all()
    assert (free["is_offer"] == ((chosen != "0") & ~free["is_holdout"])).all()
    assert 0.05 < free.loc[chosen != "0", "is_holdout"].mean() < 0.15
    offered = free[free["is_offer"]]
    assert len(offered) > 0 and (offered["expected_incremental_profit"] > 0).all()
    assert (free.loc[chosen == "0", "reason"] == "no_positive_profit").all()
    np.testing.assert_allclose(offered["p_redeem"], offered["p_purchase"])


def test_budgets_keep_the_most_profitable_customers_per_unit_of_budget(scored):
    scores = scored[0]
    a = SCORED["assignments"]
    a = a[a["offer_id"] == "budgeted"].set_index("customer_id")
    profit = _wide(scores, "cate_margin")[["20", "25"]] - COST
    best = profit.idxmax(axis=1).where(profit.max(axis=1) > 0, "0")
    wants_20 = best[best == "20"].index
    offered_20 = a[a["is_offer"] & (a["arm"] == "20")]
    assert len(offered_20) == min(50, len(wants_20)) > 0
    # The 50 best by profit among those whose best arm is 20, the rest over budget.
    top = profit.loc[wants_20, "20"].sort_values(ascending=False)
    assert set(offered_20.index) == set(top.index[: len(offered_20)])
    over = a.loc[a["reason"] == "over_budget"]
    assert len(over) == len(wants_20) - len(offered_20) + (
        (best == "25").sum() - (a["is_offer"] & (a["arm"] == "25")).sum()
    )
    spend_25 = a.loc[a["is_offer"] & (a["arm"] == "25"), "expected_discount_spend"].sum()
    assert spend_25 <= 30.0


def test_rule_table_offers_the_first_matching_rule(scored):
    scores = scored[0]
    a = SCORED["assignments"]
    a = a[a["offer_id"] == "rules"].set_index("customer_id")
    cate = _wide(scores, "cate_purchase")
    expected = np.where(cate["25"] >= 0.10, "25", np.where(cate["20"] >= 0.05, "20", "0"))
    expected = pd.Series(expected, index=cate.index).reindex(a.index)
    assert (a["arm"] == expected).all()
    assert (a.loc[expected == "0", "reason"] == "no_rule_matched").all()
    assert set(a["arm"]) == {"0", "20", "25"}, a["arm"].value_counts()


def test_policy_profit_against_the_truth(scored):
    """fct_offer_policy_profit: true profit recomputed from raw.oracle_offer_effects, and the
    oracle policy (each customer's best true arm) is never beaten."""
    scores = scored[0]
    policies = SCORED["policies"]
    truth = SCORED["truth"]
    p = policies[policies["offer_id"] == "by_profit"].set_index("policy")
    assert {"offer", "nobody", "everyone_20", "everyone_25", "oracle"} <= set(p.index)
    base = truth[truth["customer_id"].isin(scores["customer_id"])]
    everyone_20 = (base.loc[base["arm"] == "20", "margin_effect"] - COST).sum()
    assert p.loc["everyone_20", "true_profit"] == pytest.approx(everyone_20, rel=1e-9)
    assert p.loc["everyone_20", "customers_offered"] == scores["customer_id"].nunique()
    assert p.loc["nobody", "true_profit"] == 0
    assert (p["true_profit"] <= p.loc["oracle", "true_profit"] + 1e-9).all()
    a = SCORED["assignments"]
    offered = a[(a["offer_id"] == "by_profit") & a["is_offer"]]
    assert p.loc["offer", "customers_offered"] == len(offered)
    np.testing.assert_allclose(
        p.loc["offer", "expected_profit"], offered["expected_incremental_profit"].sum()
    )


def test_the_held_out_gate_stops_offers_that_did_not_pay(scored):
    """Policy `profit` with require_held_out_gain (the default): no offer while the champion
    set's held-out policy value is <= 0; the same customers are offered when it is positive."""
    gate = SCORED["gate"]
    blocked, open_ = gate[-1.0].value_counts(), gate[1.0].value_counts()
    assert "offer" not in blocked and blocked.get("no_held_out_gain", 0) > 0
    assert open_.get("offer", 0) == blocked["no_held_out_gain"]


def test_the_champion_records_its_held_out_policy_value(scored):
    with closing(connect(scored_path(), read_only=True)) as con:
        row = con.execute(
            "select held_out_policy_value_ci_lower, held_out_policy_value_ci_upper "
            "from ml.uplift_model_sets"
        ).fetchone()
    assert row[0] is not None and row[0] < row[1]
