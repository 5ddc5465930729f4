"""Splits stratified by arm x outcome, and the evaluation of uplift scores per treated arm."""

from __future__ import annotations

import numpy as np
import pytest

from models_py.uplift import (
    ArmError,
    UpliftInputError,
    evaluate_scores,
    evaluate_uplift,
    fit_t_learner,
    stratification_labels,
    stratified_kfold,
    stratified_split,
)
from tests.models_py.uplift.uplift_fixtures import ARMS, synthetic


@pytest.fixture(scope="module")
def data():
    return synthetic(8_000, 2)


def _rates(arm, y):
    return {a: (float((arm == a).mean()), float(y[arm == a].mean())) for a in ARMS}


def test_stratified_split_keeps_arm_shares_and_response_rates(data):
    train, test = stratified_split(data.arm, data.visit, test_share=0.3, seed=0)
    assert len(test) == 2_400 and len(train) == 5_600
    assert np.intersect1d(train, test).size == 0
    assert np.union1d(train, test).size == 8_000
    full = _rates(data.arm, data.visit)
    for part in (train, test):
        for a, (share, rate) in _rates(data.arm[part], data.visit[part]).items():
            assert share == pytest.approx(full[a][0], abs=0.001)
            assert rate == pytest.approx(full[a][1], abs=0.002)
    again, _ = stratified_split(data.arm, data.visit, test_share=0.3, seed=0)
    other, _ = stratified_split(data.arm, data.visit, test_share=0.3, seed=1)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)


def test_stratified_kfold_puts_every_row_in_one_test_fold(data):
    folds = stratified_kfold(data.arm, data.visit, n_splits=4, seed=0)
    tests = np.concatenate([test for _, test in folds])
    assert len(folds) == 4 and np.array_equal(np.sort(tests), np.arange(8_000))
    for train, test in folds:
        assert np.intersect1d(train, test).size == 0


def test_stratification_labels_for_continuous_outcomes():
    labels = stratification_labels(["a", "b", "a"], [0.0, 12.5, 3.0])
    assert labels.tolist() == ["a|0", "b|1", "a|1"]


def test_splits_refuse_too_few_rows_per_class():
    arm = np.array(["a"] * 10 + ["b"] * 10)
    y = np.array([1] + [0] * 19)
    with pytest.raises(UpliftInputError, match="a\\|1 \\(1\\)"):
        stratified_kfold(arm, y, n_splits=3)
    with pytest.raises(UpliftInputError, match="test_share"):
        stratified_split(arm, y, test_share=1.5)


def test_evaluate_uplift_on_held_out_rows(data):
    train, test = stratified_split(data.arm, data.visit, test_share=0.3, seed=0)
    model_set = fit_t_learner(
        data.X[train], data.arm[train], data.visit[train], control_arm="control", base="linear"
    )
    result = evaluate_uplift(model_set, data.X[test], data.arm[test], data.visit[test])
    assert set(result.arms) == {"arm_a", "arm_b"}
    a = result.arms["arm_a"]
    assert a.n_treatment == int((data.arm[test] == "arm_a").sum())
    assert a.n_control == int((data.arm[test] == "control").sum())
    assert a.qini > 0.1 and a.auuc > 0.1  # the effect is heterogeneous and well recovered
    assert a.uplift_at[0.1] > a.uplift_at[0.3] > a.observed_uplift
    assert len(a.by_decile) == 10
    assert a.by_decile["uplift"].iloc[0] > a.by_decile["uplift"].iloc[-1]
    summary = result.summary()
    assert summary.columns.tolist() == [
        "arm",
        "n_treatment",
        "n_control",
        "observed_uplift",
        "qini",
        "auuc",
        "uplift_at_10",
        "uplift_at_20",
        "uplift_at_30",
    ]


def test_evaluate_scores_continuous_and_missing_arm(data):
    score = data.X[:, 0]
    result = evaluate_scores({"arm_a": score}, data.arm, data.spend, control_arm="control")
    assert result.outcome_type == "continuous" and np.isnan(result.arms["arm_a"].auuc)
    assert np.isfinite(result.arms["arm_a"].qini)
    rows = data.arm != "arm_b"
    with pytest.raises(ArmError, match="both arm 'arm_b' and the control"):
        evaluate_scores(
            {"arm_b": score[rows]}, data.arm[rows], data.visit[rows], control_arm="control"
        )
