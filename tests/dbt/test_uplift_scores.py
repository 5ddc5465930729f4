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


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    work = tmp_path_factory.mktemp("uplift_scores")
    path = work / "wh.duckdb"
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
    return scores, features, parts, model_set, examples


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
