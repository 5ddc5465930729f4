"""`validation: stratified_kfold` on a customer-level table without a time axis: a held-out
stratified test share, shuffled stratified k folds for the search, sigmoid calibration and the
threshold on out-of-fold predictions, the protocol in the registry, one model or one per arm."""

from __future__ import annotations

import json
from contextlib import closing

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from models_py import ConfigError, parse_specs, train
from models_py._errors import InputDataError
from models_py._warehouse import connect
from models_py.training._candidates import kfold_search, stratified_folds
from models_py.training._export import read_metadata
from tests.models_py.training.training_fixtures import copy_warehouse, template_warehouse

pytestmark = pytest.mark.filterwarnings("ignore:Field onnx.AttributeProto:DeprecationWarning")

ARMS = ("control", "treatment")


def make_customers(n: int = 2000, seed: int = 7) -> tuple[pa.Table, pa.Table]:
    """(customers, oracle): one row per customer, no date column, an experiment arm."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50, 15, n)
    recency = rng.integers(0, 100, n)
    kids = rng.integers(0, 3, n)
    web_visits = rng.poisson(5, n)
    arm = rng.choice(ARMS, n)
    logit = (
        -1.3
        + 0.05 * (income - 50)
        - 0.025 * (recency - 50)
        - 0.5 * kids
        + 0.1 * web_visits
        + 0.6 * (arm == "treatment")
    )
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < p).astype(np.int32)
    ids = np.arange(1, n + 1, dtype=np.int64)
    customers = pa.table(
        {
            "customer_id": ids,
            "arm": arm,
            "income": income,
            "recency": recency.astype(np.int64),
            "kids": kids.astype(np.int32),
            "web_visits": web_visits.astype(np.int64),
            "education": rng.choice(["basic", "graduate", "phd"], n),  # text: not a feature
            "response": y,
        }
    )
    oracle = pa.table({"customer_id": ids, "arm": arm, "probability": p})
    return customers, oracle


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    settings = copy_warehouse(
        template_warehouse(tmp_path_factory), tmp_path_factory.mktemp("kfold") / "wh.duckdb"
    )
    customers, oracle = make_customers()
    with closing(connect(settings.warehouse)) as con:
        con.execute("create schema if not exists personality")
        con.register("customers_view", customers)
        con.execute("create table personality.customers as select * from customers_view")
        con.register("oracle_view", oracle)
        con.execute("create table personality.oracle as select * from oracle_view")
    return settings


def spec_yaml(name: str, extra: str = "") -> str:
    return f"""
specs:
  - name: {name}
    relation: personality.customers
    id_columns: [customer_id]
    label: response
    validation: stratified_kfold
    search: {{folds: 3}}
    test_share: 0.25
    candidates:
      logistic_regression: {{C: [0.01, 1.0]}}
      hist_gradient_boosting: {{max_iter: [30], max_leaf_nodes: [7], min_samples_leaf: [40]}}
    oracle: {{relation: personality.oracle, probability: probability}}
    random_state: 3
{extra}"""


def _registry(settings, model_id: str) -> dict:
    with closing(connect(settings.warehouse, read_only=True)) as con:
        cur = con.execute("select * from ml.model_registry where model_id = ?", [model_id])
        names = [d[0] for d in cur.description]
        row = dict(zip(names, cur.fetchone(), strict=True))
        metrics = con.execute(
            "select split, examples, positives, roc_auc, oracle_roc_auc from ml.model_metrics "
            "where model_id = ? order by split",
            [model_id],
        ).fetchall()
    row["metric_rows"] = metrics
    return row


@pytest.fixture(scope="module")
def single(warehouse):
    """One model for the whole table (no group; `arm` is text, so not a feature)."""
    return train(warehouse, specs=parse_specs(_load(spec_yaml("personality_response"))))


def _load(text: str):
    import yaml

    return yaml.safe_load(text)


def test_kfold_trains_one_model_without_a_group(warehouse, single):
    assert [r.status for r in single.results] == ["registered"], single.results[0].message
    r = single.results[0]
    assert r.product_group == "personality_response" and r.promoted
    # Held-out test share: 25% of 2000, stratified on the label.
    assert r.rows["test"] == 500 and r.rows["train"] == 1500 and r.rows["validation"] == 1500
    row = _registry(warehouse, r.model_id)
    (test_split, te_n, te_pos, te_auc, oracle_auc), (val_split, va_n, va_pos, va_auc, _) = (
        row["metric_rows"][0],
        row["metric_rows"][1],
    )
    assert (test_split, val_split) == ("test", "validation")
    assert te_n == 500 and va_n == 1500
    overall = te_pos + va_pos
    assert abs(te_pos / te_n - overall / 2000) < 0.01  # stratified
    # The model learns the logistic ground truth: close to the oracle on the same test rows.
    assert oracle_auc is not None and te_auc > oracle_auc - 0.05
    # The registry says the protocol instead of cutoffs.
    assert json.loads(row["train_cutoffs"]) == ["stratified_kfold k=3: training share 0.75"]
    assert "out-of-fold" in json.loads(row["validation_cutoffs"])[0]
    assert "held-out test share 0.25" in json.loads(row["test_cutoffs"])[0]
    metrics = json.loads(row["metrics"])
    assert metrics["protocol"] == "stratified_kfold k=3 test_share=0.25"
    cv = metrics["cv"]
    assert cv["folds"] == 3 and len(cv["fold_roc_auc"]) == 3
    assert cv["roc_auc_mean"] == pytest.approx(np.mean(cv["fold_roc_auc"]))
    assert cv["roc_auc_std"] == pytest.approx(np.std(cv["fold_roc_auc"]))
    assert 0.6 < cv["roc_auc_mean"] < 0.95 and cv["roc_auc_std"] < 0.1
    assert metrics["calibration"]["fitted_on"] == "out-of-fold predictions"
    assert "out-of-fold" in metrics["threshold_note"]
    # Out-of-fold metrics (validation row) come from the CV of the chosen candidate.
    assert abs(va_auc - cv["roc_auc_mean"]) < 0.03
    assert r.cv is not None and r.cv["roc_auc_mean"] == pytest.approx(cv["roc_auc_mean"])
    with closing(connect(warehouse.warehouse, read_only=True)) as con:
        onnx_bytes = bytes(
            con.execute(
                "select onnx_model from ml.model_registry where model_id = ?", [r.model_id]
            ).fetchone()[0]
        )
    meta = read_metadata(onnx_bytes)
    assert meta["validation_protocol"] == "stratified_kfold k=3 test_share=0.25"
    # Text columns are not features; the label and ids never are.
    assert json.loads(meta["feature_names"]) == ["income", "recency", "kids", "web_visits"]


def test_kfold_calibration_is_honest_on_the_test_share(warehouse, single):
    """Platt scaling fitted out of fold: the mean predicted probability on the held-out test
    share is close to its observed rate."""
    r = single.results[0]
    with closing(connect(warehouse.warehouse, read_only=True)) as con:
        bins = con.execute(
            "select sum(examples * mean_predicted) / sum(examples), "
            "sum(examples * observed_rate) / sum(examples) from ml.calibration_bins "
            "where model_id = ?",
            [r.model_id],
        ).fetchone()
    assert abs(bins[0] - bins[1]) < 0.04


def test_kfold_one_model_per_arm(warehouse):
    extra = "    group: {column: arm, groups: [control, treatment]}\n"
    report = train(warehouse, specs=parse_specs(_load(spec_yaml("per_arm", extra))))
    assert [r.product_group for r in report.results] == list(ARMS)
    assert all(r.status == "registered" for r in report.results), report.summary_rows()
    with closing(connect(warehouse.warehouse, read_only=True)) as con:
        arms = dict(
            con.execute("select arm, count(*) from personality.customers group by arm").fetchall()
        )
        champions = dict(
            con.execute(
                "select product_group, model_id from ml.model_aliases where alias = 'champion'"
            ).fetchall()
        )
    for r in report.results:
        # Each arm's model sees only its arm's rows.
        assert r.rows["train"] + r.rows["test"] == arms[r.product_group]
        assert champions[r.product_group] == r.model_id
    # The oracle is joined on (customer_id, arm): reported per arm.
    assert all(r.test_metrics["oracle_roc_auc"] is not None for r in report.results)


def test_kfold_group_defaults_to_every_value(warehouse):
    from models_py import plan_training

    extra = "    group: {column: arm}\n"
    targets = plan_training(warehouse, specs=parse_specs(_load(spec_yaml("arms_all", extra))))
    assert [t.product_group for t in targets] == list(ARMS)
    with pytest.raises(ConfigError, match="no rows"):
        plan_training(
            warehouse,
            specs=parse_specs(
                _load(spec_yaml("arms_bad", "    group: {column: arm, groups: [placebo]}\n"))
            ),
        )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    cutoff: as_of_date\n", "cutoff belong to validation: temporal"),
        ("    split: split\n", "split belong to validation: temporal"),
        ("    test_share: 0.9\n", "test_share must be"),
    ],
)
def test_kfold_spec_errors(extra, message):
    raw = _load(spec_yaml("bad", ""))
    raw["specs"][0].update(_load(extra))
    with pytest.raises(ConfigError, match=message):
        parse_specs(raw)


def test_kfold_needs_two_folds_and_temporal_refuses_test_share():
    raw = _load(spec_yaml("bad"))
    raw["specs"][0]["search"] = {"folds": 1}
    with pytest.raises(ConfigError, match=r"search\.folds must be an integer >= 2"):
        parse_specs(raw)
    raw = _load(spec_yaml("bad"))
    raw["specs"][0].update(validation="temporal", cutoff="as_of_date")
    with pytest.raises(ConfigError, match="test_share applies to validation: stratified_kfold"):
        parse_specs(raw)
    default = _load(spec_yaml("ok"))
    del default["specs"][0]["search"], default["specs"][0]["test_share"]
    spec = parse_specs(default)[0]
    assert (spec.search_folds, spec.test_share) == (5, 0.2)


def test_stratified_folds_and_out_of_fold_predictions():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(900, 3)).astype(np.float32)
    y = (rng.random(900) < 1 / (1 + np.exp(-2 * X[:, 0]))).astype(int)
    folds = stratified_folds(y, n_folds=4, random_state=0)
    seen = np.concatenate([va for _, va in folds])
    assert sorted(seen) == list(range(900))  # every row validated exactly once
    for tr, va in folds:
        assert not set(tr) & set(va)
        assert abs(y[va].mean() - y.mean()) < 0.02
    result = kfold_search(
        "logistic_regression",
        {"C": [1e-4, 1.0]},
        X,
        y,
        n_folds=4,
        categorical_idx=[],
        random_state=0,
        max_rows=600,
    )
    assert len(result.oof_index) == 600 and len(result.oof_proba) == 600
    assert result.best_score == pytest.approx(np.mean(result.fold_auc))
    assert abs(roc_auc_score(y[result.oof_index], result.oof_proba) - result.best_score) < 0.03
    with pytest.raises(InputDataError, match="at least 5 rows of each class"):
        stratified_folds(np.array([0] * 50 + [1] * 3), n_folds=5, random_state=0)


def test_kfold_too_few_positives_fails_that_target_only(warehouse):
    with closing(connect(warehouse.warehouse)) as con:
        con.execute(
            "create table personality.rare as select * replace "
            "(case when customer_id <= 3 then 1 else 0 end as response) "
            "from personality.customers"
        )
    raw = _load(spec_yaml("rare"))
    raw["specs"][0]["relation"] = "personality.rare"
    raw["specs"][0].pop("oracle")
    report = train(warehouse, specs=parse_specs(raw))
    assert report.results[0].status == "failed"
    assert "at least 3 rows of each class" in report.results[0].message


def test_kfold_summary_shows_the_cv_auc(single):
    from rich.console import Console

    from models_py.cli import render_train_summary

    console = Console(record=True, width=160)
    render_train_summary(single, console)
    text = console.export_text()
    cv = single.results[0].cv
    assert "CV AUC" in text
    assert f"{cv['roc_auc_mean']:.3f} ± {cv['roc_auc_std']:.3f}" in text
    row = single.summary_rows()[0]
    assert row["cv_roc_auc_mean"] == cv["roc_auc_mean"]


def test_ensembles_without_a_time_axis_use_the_out_of_fold_scores(warehouse):
    """Soft voting and stacking from the candidates' out-of-fold search scores: soft voting's
    fold AUCs are those of the mean out-of-fold score on the search's own folds; the chosen model
    follows the margin rule and passes the parity gate."""
    from models_py.training._candidates import SearchResult
    from models_py.training._ensembles import fit_ensembles_kfold
    from models_py.training._examples import load_examples
    from models_py.training._train import choose_candidate, plan_training

    specs = parse_specs(
        _load(spec_yaml("with_ensembles", "    ensembles: [soft_voting, stacking]\n"))
    )
    (target,) = plan_training(warehouse, specs=specs)
    with closing(connect(warehouse.warehouse, read_only=True)) as con:
        ex = load_examples(con, target)
    choice = choose_candidate(target, ex, on_step=lambda _s: None)
    singles = ("logistic_regression", "hist_gradient_boosting")
    searches: dict[str, SearchResult] = {a: choice.fitted[a][1] for a in singles}
    index = searches[singles[0]].oof_index
    y = ex.part("train")[1][index]
    mean_oof = np.mean([searches[a].oof_proba for a in singles], axis=0)
    folds = stratified_folds(y, n_folds=3, random_state=3)
    by_name = {c.algorithm: c for c in choice.candidates}
    assert by_name["soft_voting"].fold_auc == pytest.approx(
        [roc_auc_score(y[va], mean_oof[va]) for _, va in folds], abs=1e-12
    )
    assert by_name["stacking"].validation_auc == pytest.approx(
        np.mean(by_name["stacking"].fold_auc), abs=1e-12
    )
    best_single = max(by_name[a].validation_auc for a in singles)
    eligible = [
        c for c in choice.candidates if c.algorithm in singles or c.validation_auc >= best_single
    ]
    assert choice.best.algorithm == max(eligible, key=lambda c: c.validation_auc).algorithm
    # every ensemble's members are the fitted candidates themselves
    X_tr, y_tr, _ = ex.part("train")
    members = {a: choice.fitted[a][0] for a in singles}
    (voting, _), (stack, stack_search) = fit_ensembles_kfold(
        ("soft_voting", "stacking"), members, searches, X_tr, y_tr, n_folds=3, random_state=3
    )
    assert voting.estimator.estimators_ == list(members.values())
    assert stack_search.oof_proba.shape == y.shape
    # stacking's meta-model is fitted on the out-of-fold member scores
    from sklearn.linear_model import LogisticRegression

    P = np.column_stack([searches[a].oof_proba for a in singles])
    np.testing.assert_allclose(
        stack.estimator.final_estimator_.coef_, LogisticRegression().fit(P, y).coef_
    )
    # trained through `train`: registered, whatever won, behind the parity gate
    report = train(warehouse, specs=specs)
    (r,) = report.results
    assert r.status == "registered" and r.parity_max_abs_diff < 1e-5
    assert {c.algorithm for c in r.candidates} == {*singles, "soft_voting", "stacking"}
