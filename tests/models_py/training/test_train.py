"""Training end to end on a fake `marts.fct_training_examples` with a known ground truth: temporal
folds, refused inputs, the parity gate, metrics written to schema `ml`, champions per group, and
the evaluation helpers against scikit-learn's own functions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from models_py._errors import ConfigError
from models_py._warehouse import connect
from models_py.cli import main
from models_py.training._candidates import search_algorithm, temporal_folds
from models_py.training._evaluate import (
    binary_metrics,
    calibration_bins,
    choose_threshold,
    lift_by_decile,
)
from models_py.training._export import ParityError, feature_hash, onnx_predict_proba, read_metadata
from models_py.training._specs import ThresholdRule, parse_specs
from models_py.training._train import TrainProgress, plan_training, train, train_target
from tests.models_py.training.training_fixtures import (
    CUTOFFS,
    FAST_SPEC,
    GROUPS,
    copy_warehouse,
    template_warehouse,
)

pytestmark = pytest.mark.filterwarnings("ignore:Field onnx.AttributeProto:DeprecationWarning")


# ----------------------------------------------------------------------------- temporal folds


@pytest.mark.parametrize("n_folds", [1, 2, 3, 10])
def test_temporal_folds_never_train_on_later_cutoffs(n_folds):
    rng = np.random.default_rng(n_folds)
    days = np.array(["2024-01-01", "2024-01-31", "2024-03-01", "2024-03-31", "2024-04-30"])
    cutoffs = rng.choice(days.astype("datetime64[D]"), size=500)
    folds = temporal_folds(cutoffs, n_folds=n_folds)
    assert len(folds) == min(n_folds, len(days) - 1)
    previous_train = -1
    for train_idx, val_idx in folds:
        assert len(np.unique(cutoffs[val_idx])) == 1
        assert cutoffs[train_idx].max() < cutoffs[val_idx].min()
        assert set(train_idx) == set(np.flatnonzero(cutoffs < cutoffs[val_idx][0]))
        assert len(train_idx) > previous_train  # expanding window
        previous_train = len(train_idx)
    # The newest cutoff always validates the last fold.
    assert cutoffs[folds[-1][1]][0] == cutoffs.max()
    assert temporal_folds(cutoffs, n_folds=0) == []


def test_search_picks_the_better_configuration_on_temporal_folds():
    rng = np.random.default_rng(0)
    n = 3000
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (rng.random(n) < 1 / (1 + np.exp(-3 * X[:, 0] * X[:, 1]))).astype(int)  # interaction
    cutoffs = np.repeat(np.arange(5).astype("datetime64[D]"), n // 5)
    # Stumps cannot see an interaction; depth-6 trees can.
    result = search_algorithm(
        "random_forest",
        {"max_depth": [1, 6], "n_estimators": [20], "n_jobs": [1]},
        X,
        y,
        cutoffs,
        n_folds=2,
        categorical_idx=[],
        random_state=0,
        max_rows=2000,
    )
    assert result.best_params["max_depth"] == 6
    assert len(result.trials) == 2 and all(len(t["fold_auc"]) == 2 for t in result.trials)
    assert result.best_score > 0.7
    single = search_algorithm(
        "logistic_regression",
        {"C": [0.5]},
        X,
        y,
        cutoffs,
        n_folds=2,
        categorical_idx=[],
        random_state=0,
    )
    assert single.best_params == {"C": 0.5} and single.best_score is None


# ------------------------------------------------------------------------ evaluation helpers


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(5)
    p = rng.beta(2, 5, 2003)
    y = (rng.random(2003) < p).astype(int)
    return y, p


def test_binary_metrics_match_sklearn(scored):
    y, p = scored
    m = binary_metrics(y, p, 0.35, oracle=p)
    pred = (p >= 0.35).astype(int)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(log_loss(y, p), abs=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert m["precision"] == pytest.approx(precision_score(y, pred))
    assert m["recall"] == pytest.approx(recall_score(y, pred))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["true_positives"] == int(((pred == 1) & (y == 1)).sum())
    assert m["false_positives"] == int(((pred == 1) & (y == 0)).sum())
    assert m["true_negatives"] + m["false_negatives"] == int((pred == 0).sum())
    assert m["base_rate"] == pytest.approx(y.mean())
    assert m["oracle_roc_auc"] == m["roc_auc"]
    assert m["observable_oracle_roc_auc"] is None


def test_observable_oracle_auc_uses_the_rows_where_it_is_known(scored):
    y, p = scored
    blurred = np.where(np.arange(len(y)) % 3 == 0, np.nan, np.sqrt(p) * (1 + 0.1 * (y == 0)))
    m = binary_metrics(y, p, 0.35, observable_oracle=blurred)
    known = ~np.isnan(blurred)
    assert m["observable_oracle_roc_auc"] == pytest.approx(
        roc_auc_score(y[known], blurred[known]), abs=1e-12
    )
    assert m["observable_oracle_roc_auc"] != pytest.approx(m["roc_auc"], abs=1e-3)
    assert m["oracle_roc_auc"] is None
    all_missing = binary_metrics(y, p, 0.35, observable_oracle=np.full(len(y), np.nan))
    assert all_missing["observable_oracle_roc_auc"] is None


def test_lift_by_decile_matches_an_independent_computation(scored):
    y, p = scored
    rows = lift_by_decile(y, p)
    frame = pd.DataFrame({"y": y, "p": p}).sort_values("p", ascending=False, kind="stable")
    frame["decile"] = np.arange(len(frame)) * 10 // len(frame) + 1
    expected = frame.groupby("decile")["y"].agg(["count", "sum", "mean"])
    assert [r["customers"] for r in rows] == expected["count"].tolist()
    assert [r["positives"] for r in rows] == expected["sum"].tolist()
    for r, rate in zip(rows, expected["mean"], strict=True):
        assert r["response_rate"] == pytest.approx(rate)
        assert r["lift"] == pytest.approx(rate / y.mean())
    assert rows[-1]["cumulative_gains"] == pytest.approx(1.0)
    assert rows[-1]["cumulative_customers"] == len(y)
    assert rows[0]["lift"] > 1.5 > rows[-1]["lift"]


def test_calibration_bins_match_calibration_curve(scored):
    y, p = scored
    rows = calibration_bins(y, p, n_bins=10)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    np.testing.assert_allclose([r["observed_rate"] for r in rows], prob_true)
    np.testing.assert_allclose([r["mean_predicted"] for r in rows], prob_pred)
    assert sum(r["examples"] for r in rows) == len(y)


def test_threshold_rules(scored):
    y, p = scored
    t, _ = choose_threshold(y, p, ThresholdRule(kind="max_f1"))
    grid = np.unique(p)
    best = max(f1_score(y, (p >= g).astype(int)) for g in grid[::20])
    assert f1_score(y, (p >= t).astype(int)) >= best - 1e-12
    t, note = choose_threshold(y, p, ThresholdRule(kind="precision_at", value=0.5))
    assert precision_score(y, (p >= t).astype(int)) >= 0.5
    lower = grid[grid < t]
    assert precision_score(y, (p >= lower[-1]).astype(int)) < 0.5  # the lowest that reaches it
    y4, p4 = np.array([0, 1, 0, 1]), np.array([0.9, 0.8, 0.7, 0.6])
    t, note = choose_threshold(y4, p4, ThresholdRule(kind="precision_at", value=0.9))
    assert "unreachable" in note and t == pytest.approx(0.6)  # best precision 0.5, most recall


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train the fast spec through the CLI on a copy of the fake warehouse."""
    work = tmp_path_factory.mktemp("trained")
    settings = copy_warehouse(template_warehouse(tmp_path_factory), work / "wh.duckdb")
    spec_path = work / "specs.yml"
    spec_path.write_text(FAST_SPEC)
    code = main(["--warehouse", str(settings.warehouse), "train", "--spec", str(spec_path)])
    assert code == 0
    return settings, spec_path


def _test_rows(con, group, features):
    cols = ", ".join(f'"{f}"' for f in features)
    rows = con.execute(
        f"select label, {cols} from marts.fct_training_examples e where product_group = ? "
        "and split = 'test' order by customer_id",
        [group],
    ).fetchall()
    arr = np.asarray(rows, dtype=np.float64)
    return arr[:, 1:].astype(np.float32), arr[:, 0].astype(int)


def test_train_registers_a_champion_per_group(trained):
    settings, _ = trained
    con = connect(settings.warehouse, read_only=True)
    champions = dict(
        con.execute(
            "select product_group, model_id from ml.model_aliases where alias = 'champion'"
        ).fetchall()
    )
    assert sorted(champions) == sorted(GROUPS)  # the inactive group `empty` is not trained
    for group, model_id in champions.items():
        row = con.execute(
            "select feature_names, feature_hash, onnx_model, metrics, test_cutoffs, threshold "
            "from ml.model_registry where model_id = ?",
            [model_id],
        ).fetchone()
        features = json.loads(row[0])
        assert row[1] == feature_hash(features)
        assert "label" not in features and "customer_id" not in features
        metrics = json.loads(row[3])
        assert metrics["parity_max_abs_diff"] <= 1e-5
        assert json.loads(row[4]) == [str(CUTOFFS[-1])]
        meta = read_metadata(bytes(row[2]))
        assert meta["model_id"] == model_id and meta["product_group"] == group
        assert json.loads(meta["feature_names"]) == features
        assert float(meta["threshold"]) == pytest.approx(row[5])

        # ONNX from the registry reproduces the metrics computed from scikit-learn probabilities.
        X, y = _test_rows(con, group, features)
        p = onnx_predict_proba(bytes(row[2]), X)[:, 1]
        stored = con.execute(
            "select roc_auc, pr_auc, log_loss, brier, examples, positives, true_positives, "
            "false_positives, oracle_roc_auc, observable_oracle_roc_auc from ml.model_metrics "
            "where model_id = ? and split = 'test'",
            [model_id],
        ).fetchone()
        assert stored[0] == pytest.approx(roc_auc_score(y, p), abs=1e-4)
        assert stored[1] == pytest.approx(average_precision_score(y, p), abs=1e-4)
        assert stored[2] == pytest.approx(log_loss(y, p), abs=1e-5)
        assert stored[3] == pytest.approx(brier_score_loss(y, p), abs=1e-6)
        assert (stored[4], stored[5]) == (len(y), int(y.sum()))
        pred = p >= row[5]
        assert abs(stored[6] - int((pred & (y == 1)).sum())) <= 1
        assert abs(stored[7] - int((pred & (y == 0)).sum())) <= 1

        # The oracle AUC is the true probabilities' AUC on the same test rows, and the model is
        # close to it.
        oracle = con.execute(
            "select o.probability, e.label from marts.fct_training_examples e "
            "join raw.oracle_propensity o using (customer_id, product_group, as_of_date) "
            "where e.product_group = ? and e.split = 'test'",
            [group],
        ).fetchall()
        oracle_auc = roc_auc_score([r[1] for r in oracle], [r[0] for r in oracle])
        assert stored[8] == pytest.approx(oracle_auc, abs=1e-9)
        assert stored[0] > oracle_auc - 0.05, (group, stored[0], oracle_auc)
        # The observable oracle column of the spec's oracle table, on the same rows.
        observable = con.execute(
            "select o.observable_probability, e.label from marts.fct_training_examples e "
            "join raw.oracle_propensity o using (customer_id, product_group, as_of_date) "
            "where e.product_group = ? and e.split = 'test'",
            [group],
        ).fetchall()
        observable_auc = roc_auc_score([r[1] for r in observable], [r[0] for r in observable])
        assert stored[9] == pytest.approx(observable_auc, abs=1e-9)
        assert abs(stored[9] - oracle_auc) > 1e-4  # a different column was read

        lift = con.execute(
            "select decile, customers, cumulative_gains from ml.lift_by_decile "
            "where model_id = ? order by decile",
            [model_id],
        ).fetchall()
        assert [r[0] for r in lift] == list(range(1, 11))
        assert sum(r[1] for r in lift) == len(y)
        assert lift[-1][2] == pytest.approx(1.0)
        bins = con.execute(
            "select sum(examples) from ml.calibration_bins where model_id = ?", [model_id]
        ).fetchone()[0]
        assert bins == len(y)
        importance = {
            r[0]: r[1:]
            for r in con.execute(
                "select feature_name, importance_rank, mean_abs_shap, shap_rank, shap_method "
                "from ml.feature_importance where model_id = ?",
                [model_id],
            ).fetchall()
        }
        assert set(importance) == set(features)
        assert importance["noise"][0] > 3  # pure noise is not among the top features
        # Mean |SHAP| beside it, on the same 500 test rows, in the algorithm's units.
        algorithm = con.execute(
            "select algorithm from ml.model_registry where model_id = ?", [model_id]
        ).fetchone()[0]
        assert {m for *_, m in importance.values()} == {
            {
                "logistic_regression": "linear_shap_log_odds_500_rows",
                "random_forest": "tree_shap_probability_500_rows",
            }.get(algorithm, "tree_shap_log_odds_500_rows")
        }
        assert all(v[1] >= 0 for v in importance.values())
        assert sorted(v[2] for v in importance.values()) == list(range(1, len(features) + 1))
        assert importance["noise"][2] > 3
    con.close()


def test_retraining_keeps_the_champion_within_the_margin(trained, tmp_path):
    settings, spec_path = trained
    settings = copy_warehouse(settings, tmp_path / "again.duckdb")
    con = connect(settings.warehouse, read_only=True)
    before = con.execute(
        "select model_id from ml.model_aliases where alias = 'champion' and product_group = 'wine'"
    ).fetchone()[0]
    con.close()
    events: list[TrainProgress] = []
    report = train(settings, spec_path=spec_path, groups=["wine"], progress=events.append)
    (result,) = report.results
    assert result.status == "registered" and not result.promoted
    assert "does not beat champion" in result.promotion_reason
    assert [e.completed for e in events] == list(range(1, events[-1].total + 1))
    # The installed candidates (LightGBM only with the extra), export, register.
    from models_py.training._candidates import lightgbm_available

    assert events[-1].total == (4 if lightgbm_available() else 3) + 2
    con = connect(settings.warehouse, read_only=True)
    aliases = dict(
        con.execute(
            "select alias, model_id from ml.model_aliases where product_group = 'wine'"
        ).fetchall()
    )
    con.close()
    assert aliases == {"champion": before, "challenger": result.model_id}


def test_fitting_groups_one_at_a_time_gives_the_same_models(trained, tmp_path):
    """The fixture fitted two groups at once (the default); one at a time gives the same
    metrics, and progress still counts every step once."""
    settings, spec_path = trained
    settings = copy_warehouse(settings, tmp_path / "serial.duckdb")
    events: list[TrainProgress] = []
    report = train(settings, spec_path=spec_path, jobs=1, progress=events.append)
    assert [e.completed for e in events] == list(range(1, events[-1].total + 1))
    con = connect(settings.warehouse, read_only=True)
    by_run = con.execute(
        "select r.product_group, m.roc_auc, m.brier, r.metrics->>'$.rows' "
        "from ml.model_registry r join ml.model_metrics m using (model_id) "
        "where m.split = 'test' order by r.trained_at"
    ).fetchall()
    con.close()
    parallel = {g: (auc, brier, rows) for g, auc, brier, rows in by_run[: len(GROUPS)]}
    serial = {g: (auc, brier, rows) for g, auc, brier, rows in by_run[len(GROUPS) :]}
    assert {r.product_group for r in report.results} == set(GROUPS) == set(serial) == set(parallel)
    for group in GROUPS:
        assert serial[group][0] == pytest.approx(parallel[group][0], abs=1e-12)
        assert serial[group][1] == pytest.approx(parallel[group][1], abs=1e-12)
        assert serial[group][2] == parallel[group][2]


def _tamper(blob: bytes) -> bytes:
    """The ONNX model with its calibration intercept moved: it misses the parity gate."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_model_from_string(blob)
    for init in proto.graph.initializer:
        if init.name == "calib_intercept":
            value = numpy_helper.to_array(init) + np.float32(0.1)
            init.CopyFrom(numpy_helper.from_array(value, init.name))
    return proto.SerializeToString()


def test_a_candidate_missing_the_parity_gate_gives_way_to_the_next_best(trained, tmp_path):
    settings, spec_path = trained
    settings = copy_warehouse(settings, tmp_path / "fallback.duckdb")
    (target,) = plan_training(settings, spec_path=spec_path, groups=["sweets"])
    calls = []

    def tamper_first(blob: bytes) -> bytes:
        calls.append(blob)
        return _tamper(blob) if len(calls) == 1 else blob

    result = train_target(settings, target, export_hook=tamper_first)
    assert len(calls) == 2 and result.status == "registered", result
    con = connect(settings.warehouse, read_only=True)
    try:
        algorithm, metrics = con.execute(
            "select algorithm, metrics from ml.model_registry where model_id = ?",
            [result.model_id],
        ).fetchone()
    finally:
        con.close()
    ranked = sorted(
        json.loads(metrics)["candidates"], key=lambda c: c["validation_auc"], reverse=True
    )
    assert algorithm == ranked[1]["algorithm"]  # the runner-up, not the tampered best


def test_parity_failure_registers_nothing(trained, tmp_path):
    settings, spec_path = trained
    settings = copy_warehouse(settings, tmp_path / "parity.duckdb")
    (target,) = plan_training(settings, spec_path=spec_path, groups=["sweets"])
    tamper = _tamper

    def counts():
        con = connect(settings.warehouse, read_only=True)
        out = [
            con.execute(f"select count(*) from ml.{t}").fetchone()[0]
            for t in ("model_registry", "model_metrics", "alias_history", "feature_importance")
        ]
        con.close()
        return out

    before = counts()
    with pytest.raises(ParityError, match=r"model sweets-\w+-.*differ by up to"):
        train_target(settings, target, export_hook=tamper)
    assert counts() == before


def test_nan_features_are_refused_before_training(trained, tmp_path):
    settings, spec_path = trained
    settings = copy_warehouse(settings, tmp_path / "nan.duckdb")
    con = connect(settings.warehouse)
    con.execute(
        "update marts.fct_training_examples set spend_total = null "
        "where product_group = 'wine' and customer_id < 4"
    )
    con.close()
    specs = parse_specs(__import__("yaml").safe_load(spec_path.read_text()))
    with pytest.raises(ConfigError, match=r"spend_total \(\d+ rows\).*NaN in tree inputs"):
        train(settings, specs=specs, groups=["wine"])


@pytest.mark.slow
def test_dbt_marts_expose_the_evaluation_tables(trained, tmp_path):
    from models_py._dbt import run_dbt

    settings, _ = trained
    settings = copy_warehouse(settings, tmp_path / "evaluation.duckdb")
    outcome = run_dbt(settings, ["build", "--select", "+path:models/marts/ml"])
    assert outcome.count("fail") == 0 and outcome.statuses["fct_model_metrics"] == "success"
    con = connect(settings.warehouse, read_only=True)
    models = con.execute("select count(*) from ml.model_registry").fetchone()[0]
    assert con.execute("select count(*) from marts.fct_model_metrics").fetchone()[0] == 2 * models
    champions = "select product_group, model_id from {} where {} order by 1"
    assert (
        con.execute(champions.format("marts.dim_models", "is_champion")).fetchall()
        == con.execute(champions.format("ml.model_aliases", "alias = 'champion'")).fetchall()
    )
    top = con.execute(
        "select min(lift), max(cumulative_gains) from marts.fct_lift_by_decile where decile = 1"
    ).fetchone()
    assert top[0] > 1 and top[1] < 1
    assert con.execute(
        "select count(*), count(mean_abs_shap) filter (where shap_rank = 1) "
        "from marts.fct_feature_importance where is_champion"
    ).fetchone() == (
        con.execute(
            "select count(*) from ml.feature_importance i join ml.model_aliases a "
            "on a.model_id = i.model_id and a.alias = 'champion'"
        ).fetchone()[0],
        len(GROUPS),
    )
    assert con.execute("select count(*) from marts.fct_calibration_bins").fetchone()[0] > 0
    # Both oracle gaps on the test rows (the fake oracle table has both columns).
    gaps = con.execute(
        "select roc_auc - observable_oracle_roc_auc, roc_auc_gap_to_observable_oracle, "
        "roc_auc - oracle_roc_auc, roc_auc_gap_to_oracle "
        "from marts.fct_model_metrics where split = 'test'"
    ).fetchall()
    assert gaps and all(g[0] is not None and g[2] is not None for g in gaps)
    assert all(g[0] == pytest.approx(g[1]) and g[2] == pytest.approx(g[3]) for g in gaps)
    con.close()


def test_curve_points_trace_the_test_roc(trained):
    settings, _ = trained
    con = connect(settings.warehouse, read_only=True)
    rows = con.execute(
        """
        select c.model_id, m.roc_auc, list(c.x order by c.point), list(c.y order by c.point)
        from ml.curve_points as c
        join ml.model_metrics as m on m.model_id = c.model_id and m.split = 'test'
        where c.curve = 'roc' and c.split = 'test'
        group by c.model_id, m.roc_auc
        """
    ).fetchall()
    con.close()
    assert rows
    for _, auc, xs, ys in rows:
        assert xs[0] == 0.0 and xs[-1] == 1.0 and len(xs) <= 200
        assert np.trapezoid(ys, xs) == pytest.approx(auc, abs=0.01)


def test_report_is_built_from_warehouse_tables(trained, tmp_path, capsys):
    settings, _ = trained
    out = tmp_path / "report"
    assert main(["--warehouse", str(settings.warehouse), "report", "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    for group in GROUPS:
        assert f"<h2>{group}</h2>" in page
    # ROC, PR, lift, gains, calibration and importance per group (no scores table here)
    assert page.count("data:image/png;base64,") == 6 * len(GROUPS)
    assert "oracle_roc_auc" in page
    assert f"report: {out / 'index.html'}" in capsys.readouterr().out


def test_report_without_registry_is_a_plain_error(tmp_path, capsys):
    from tests.conftest import write_tiny_warehouse

    settings = write_tiny_warehouse(tmp_path / "wh.duckdb")
    code = main(["--warehouse", str(settings.warehouse), "report", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1
    assert "has no model registry: run `dbt build` and `propensity train` first" in err
    assert "Traceback" not in err
