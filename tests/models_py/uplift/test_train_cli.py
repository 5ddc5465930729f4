"""`propensity uplift train`: a spec on a warehouse table of experiment examples (the shape of
marts.fct_experiment_examples) trains, evaluates on a held-out share and registers a model set
whose ONNX parts give the scikit-learn CATE; bad experiments stop with a named error and write
nothing."""

from __future__ import annotations

import json
from contextlib import closing

import numpy as np
import pandas as pd
import pytest
import yaml

from models_py._warehouse import connect
from models_py.cli import main
from models_py.registry._tables import ensure_ml_tables
from models_py.uplift._onnx import predict_onnx
from tests.conftest import write_tiny_warehouse
from tests.models_py.uplift.uplift_fixtures import FEATURES, synthetic

RELATION = "marts.experiment_examples"
DISCOUNTS = {"control": 0.0, "arm_a": 10.0, "arm_b": 20.0}
UPLIFT_TABLES = ("uplift_model_sets", "uplift_model_parts", "uplift_metrics", "uplift_bins")


def examples(n: int = 6000, seed: int = 3) -> pd.DataFrame:
    s = synthetic(n, seed)
    frame = pd.DataFrame(s.X, columns=list(FEATURES))
    frame.insert(0, "experiment_id", "spring")
    frame.insert(1, "customer_id", np.arange(1, n + 1))
    frame.insert(2, "arm", s.arm)
    frame.insert(3, "discount_pct", [DISCOUNTS[a] for a in s.arm])
    frame["purchased"] = (s.spend > 0).astype(int)
    frame["revenue"] = s.spend.round(2)
    d = frame["discount_pct"] / 100
    frame["margin"] = (frame["revenue"] * (0.4 - d) / (1 - d)).round(2)
    frame.attrs["true_cate"] = {
        a: np.clip(s.true_spend_cate[a], None, None) for a in s.true_spend_cate
    }
    return frame


def spec_file(tmp_path, **overrides) -> str:
    spec = {
        "name": "spring_uplift",
        "kind": "uplift",
        "relation": RELATION,
        "experiment_id": "spring",
        "offer_family": "spring",
        "control_arm": "control",
        "purchase": "purchased",
        "revenue": "revenue",
        "min_rows_per_arm": 200,
        "selection_folds": 2,
        "learners": ["t_learner", "dr_learner", "class_transformation"],
        **overrides,
    }
    path = tmp_path / "uplift.yml"
    path.write_text(yaml.safe_dump({"specs": [spec]}))
    return str(path)


def warehouse(tmp_path, frame: pd.DataFrame):
    settings = write_tiny_warehouse(tmp_path / "wh.duckdb")
    ensure_ml_tables(settings)
    with closing(connect(settings.warehouse)) as con:
        con.execute("create schema if not exists marts")
        con.register("frame", frame)
        con.execute(f"create table {RELATION} as select * from frame")
    return settings


def uplift_rows(settings) -> dict[str, int]:
    with closing(connect(settings.warehouse, read_only=True)) as con:
        return {t: con.execute(f"select count(*) from ml.{t}").fetchone()[0] for t in UPLIFT_TABLES}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uplift_train")
    frame = examples()
    settings = warehouse(tmp, frame)
    code = main(
        ["--warehouse", str(settings.warehouse), "uplift", "train", "--spec", spec_file(tmp)]
    )
    return settings, frame, code


def test_train_registers_one_champion_model_set(trained):
    settings, _, code = trained
    assert code == 0
    with closing(connect(settings.warehouse, read_only=True)) as con:
        sets = con.execute(
            "select model_set_id, learner, control_arm, arms from ml.uplift_model_sets"
        ).fetchall()
        assert len(sets) == 1
        model_set_id, learner, control, arms = sets[0]
        assert learner in ("t_learner", "dr_learner", "class_transformation")
        assert control == "control"
        assert json.loads(arms) == DISCOUNTS
        champion = con.execute(
            "select model_set_id from ml.uplift_aliases where offer_family = 'spring' "
            "and alias = 'champion'"
        ).fetchone()
        assert champion == (model_set_id,)
        roles = {
            r[0] for r in con.execute("select distinct role from ml.uplift_model_parts").fetchall()
        }
        purchase_role = {"t_learner": "mu", "dr_learner": "tau", "class_transformation": "ct"}
        assert roles == {
            f"purchase_{purchase_role[learner]}",
            "revenue_purchase",
            "revenue_revenue",
        }


def test_held_out_metrics_find_the_effect(trained):
    settings, frame, _ = trained
    with closing(connect(settings.warehouse, read_only=True)) as con:
        value = con.execute(
            "select held_out_policy_value, held_out_policy_value_ci_lower, "
            "held_out_policy_value_ci_upper, evaluation from ml.uplift_model_sets"
        ).fetchone()
        # The policy value is estimated on the held-out share with the margin rate recovered
        # from the control arm's rows (0.4 here).
        assert value[1] < value[0] < value[2]
        assert json.loads(value[3])["held_out_policy_value"]["margin_rate"] == pytest.approx(
            0.4, abs=0.01
        )
        metrics = con.execute(
            "select arm, outcome, treated, control, qini_coefficient, uplift_at_30 "
            "from ml.uplift_metrics order by outcome, arm"
        ).df()
        bins = con.execute("select count(*) from ml.uplift_bins").fetchone()[0]
        curve = con.execute(
            "select count(*) from ml.curve_points where curve like 'qini:%'"
        ).fetchone()[0]
    assert set(metrics["outcome"]) == {"purchased", "revenue"}
    assert set(metrics["arm"]) == {"arm_a", "arm_b"}
    # 30 % of 6,000 rows held out, split over the control and each treated arm.
    n_test = metrics.loc[metrics["arm"] == "arm_a", ["treated", "control"]].sum(axis=1)
    assert ((n_test > 0.3 * 0.6 * len(frame) * 0.9) & (n_test < 0.3 * 0.7 * len(frame) * 1.1)).all()
    # The synthetic effects are strong and heterogeneous: positive Qini for both arms.
    assert (metrics["qini_coefficient"] > 0.05).all(), metrics
    assert bins == 4 * 10 and curve > 100


def test_onnx_parts_reproduce_the_cate(trained):
    settings, frame, _ = trained
    with closing(connect(settings.warehouse, read_only=True)) as con:
        parts = con.execute("select part, onnx_model from ml.uplift_model_parts").fetchall()
    X = frame[list(FEATURES)].to_numpy(np.float32)[:500]
    purchase = predict_onnx(
        {p[len("purchase_") :]: bytes(b) for p, b in parts if p.startswith("purchase_")}, X
    )
    revenue = predict_onnx(
        {p[len("revenue_") :]: bytes(b) for p, b in parts if p.startswith("revenue_")}, X
    )
    assert set(purchase) >= {"cate__arm_a", "cate__arm_b"}
    assert set(revenue) >= {"outcome__control", "outcome__arm_a", "cate__arm_a"}
    # Expected revenue tracks the truth (x0 drives spend): correlation with the true CATE.
    truth = frame.attrs["true_cate"]["arm_a"][:500]
    assert np.corrcoef(revenue["cate__arm_a"], truth)[0, 1] > 0.5


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f[f["arm"] == "control"], "has one arm"),
        (lambda f: f[(f["arm"] != "arm_b") | (f.index % 20 == 0)], "arm 'arm_b' has"),
        (lambda f: f.assign(purchased=f["purchased"].where(f.index % 7 != 0)), "have no purchased"),
        (lambda f: f.assign(experiment_id="autumn"), "experiment 'spring' has no example"),
    ],
    ids=["one_arm", "small_arm", "missing_outcome", "unknown_experiment"],
)
def test_bad_experiments_stop_with_a_named_error_and_write_nothing(tmp_path, capsys, edit, message):
    settings = warehouse(tmp_path, edit(examples(n=3000)))
    code = main(
        ["--warehouse", str(settings.warehouse), "uplift", "train", "--spec", spec_file(tmp_path)]
    )
    assert code != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert uplift_rows(settings) == dict.fromkeys(UPLIFT_TABLES, 0)
