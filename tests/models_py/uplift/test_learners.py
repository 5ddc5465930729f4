"""Uplift learners: CATE recovery on a synthetic experiment with a known effect, the structure
of their result, the DR pseudo-outcome, and named errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from models_py._errors import ConfigError, InputDataError
from models_py.uplift import (
    ArmError,
    LengthMismatchError,
    MissingValuesError,
    UpliftConfigError,
    UpliftInputError,
    dr_pseudo_outcome,
    fit_dr_learner,
    fit_s_learner,
    fit_t_learner,
    fit_two_part,
)
from tests.models_py.uplift.uplift_fixtures import ARMS, FEATURES, synthetic


@pytest.fixture(scope="module")
def train():
    return synthetic(20_000, 0)


@pytest.fixture(scope="module")
def test():
    return synthetic(4_000, 1)


def _correlations(model_set, data, truth) -> dict[str, float]:
    predicted = model_set.predict(data.X)
    return {a: float(np.corrcoef(predicted[f"cate__{a}"], truth[a])[0, 1]) for a in ARMS[1:]}


@pytest.mark.parametrize(
    ("fit", "base"),
    [(fit_t_learner, "hgb"), (fit_dr_learner, "hgb"), (fit_t_learner, "linear")],
)
def test_cate_recovery(train, test, fit, base):
    model_set = fit(train.X, train.arm, train.visit, control_arm="control", base=base)
    correlations = _correlations(model_set, test, test.true_cate)
    assert min(correlations.values()) > 0.8, correlations


def test_two_part_recovers_the_spend_effect(train, test):
    model_set = fit_two_part(train.X, train.arm, train.spend, control_arm="control", base="hgb")
    correlations = _correlations(model_set, test, test.true_spend_cate)
    # noisier than visit: two products of estimates, one from a few thousand purchasers (0.82+)
    assert min(correlations.values()) > 0.75, correlations
    predicted = model_set.predict(test.X)
    # expected spend per arm is P(purchase) x amount: 0.1 x 50 on average for the control
    assert predicted["outcome__control"].mean() == pytest.approx(5.0, rel=0.15)


def test_result_structure_and_predict(train):
    t = fit_t_learner(
        train.X, train.arm, train.visit, control_arm="control", base="linear", outcome="visit"
    )
    assert (t.kind, t.outcome, t.outcome_type) == ("t_learner", "visit", "binary")
    assert t.treated_arms == ("arm_a", "arm_b")
    assert t.feature_names == ("x0", "x1", "x2", "x3", "x4")
    assert set(t.parts) == {"mu__control", "mu__arm_a", "mu__arm_b"}
    assert sum(t.rows_per_arm.values()) == train.X.shape[0]
    predicted = t.predict(train.X[:100])
    assert set(predicted) == {
        "outcome__control",
        "outcome__arm_a",
        "outcome__arm_b",
        "cate__arm_a",
        "cate__arm_b",
    }
    np.testing.assert_allclose(
        predicted["cate__arm_a"], predicted["outcome__arm_a"] - predicted["outcome__control"]
    )
    np.testing.assert_allclose(
        predicted["outcome__control"],
        t.parts["mu__control"].predict_proba(train.X[:100].astype(np.float32))[:, 1],
    )
    with pytest.raises(TypeError):
        t.parts["mu__extra"] = None  # the parts are read-only
    with pytest.raises(AttributeError):
        t.kind = "dr_learner"  # frozen


def test_treated_arms_restrict_the_rows_and_dataframe_columns_are_named(train):
    import pandas as pd

    frame = pd.DataFrame(train.X, columns=FEATURES)
    t = fit_t_learner(
        frame, train.arm, train.visit, control_arm="control", treated_arms=["arm_b"], base="linear"
    )
    assert t.treated_arms == ("arm_b",) and t.feature_names == FEATURES
    assert set(t.rows_per_arm) == {"control", "arm_b"}
    # columns are picked by name, whatever their order
    reordered = t.predict(frame[list(reversed(FEATURES))].iloc[:50])
    np.testing.assert_allclose(reordered["cate__arm_b"], t.predict(frame.iloc[:50])["cate__arm_b"])
    with pytest.raises(UpliftInputError, match="lack column"):
        t.predict(frame.drop(columns="x2"))


def test_s_learner_is_one_logistic_model_split_per_arm(train):
    """A constant log-odds shift per arm is the S-learner's own model class: it recovers that
    CATE almost exactly, and its parts reproduce one joint logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(9)
    X = rng.normal(size=(20_000, 3))
    arm = rng.choice(["control", "email"], 20_000)
    base = -1.0 + X[:, 0] + 0.5 * X[:, 1]
    y = (rng.random(20_000) < 1 / (1 + np.exp(-(base + 0.7 * (arm == "email"))))).astype(int)
    s = fit_s_learner(X, arm, y, control_arm="control")
    assert s.kind == "s_learner" and set(s.parts) == {"mu__control", "mu__email"}
    assert s.details["log_odds_shift"]["email"] == pytest.approx(0.7, abs=0.08)
    true_cate = 1 / (1 + np.exp(-(base + 0.7))) - 1 / (1 + np.exp(-base))
    cate = s.predict(X)["cate__email"]
    assert np.corrcoef(cate, true_cate)[0, 1] > 0.95

    X32 = X.astype(np.float32)
    scaler = StandardScaler().fit(X32)
    design = np.column_stack([scaler.transform(X32), arm == "email"])
    joint = LogisticRegression(max_iter=2000).fit(design, y)
    for a, flag in (("control", 0.0), ("email", 1.0)):
        rows = np.column_stack([scaler.transform(X32), np.full(len(X), flag)])
        np.testing.assert_allclose(
            s.predict(X)[f"outcome__{a}"], joint.predict_proba(rows)[:, 1], atol=1e-6
        )
    with pytest.raises(UpliftInputError, match="S-learner needs a binary"):
        fit_s_learner(train.X, train.arm, train.spend, control_arm="control")


def test_dr_pseudo_outcome_by_hand():
    y = np.array([1.0, 0.0, 1.0])
    treated = np.array([1, 1, 0])
    mu1, mu0, e = np.array([0.5, 0.5, 0.5]), np.array([0.2, 0.2, 0.2]), np.array([0.5, 0.5, 0.5])
    # treated row: 0.3 + (1 - 0.5) / 0.5 = 1.3; treated 0: 0.3 - 1 = -0.7; control: 0.3 - 1.6
    np.testing.assert_allclose(dr_pseudo_outcome(y, treated, mu1, mu0, e), [1.3, -0.7, -1.3])


def test_dr_propensity_options(train):
    data = (train.X[:6000], train.arm[:6000], train.visit[:6000])
    kwargs = {"control_arm": "control", "base": "linear", "n_folds": 3}
    shares = {a: float((train.arm[:6000] == a).mean()) for a in ARMS}
    default = fit_dr_learner(*data, **kwargs)
    given = fit_dr_learner(*data, propensity=shares, **kwargs)
    assert default.details["propensity"] == {"arm shares": shares}
    np.testing.assert_allclose(
        default.predict(train.X[:50])["cate__arm_a"], given.predict(train.X[:50])["cate__arm_a"]
    )
    estimated = fit_dr_learner(*data, propensity="estimate", **kwargs)
    assert estimated.details["propensity"].startswith("estimated")
    assert set(estimated.predict(train.X[:5])) == {"cate__arm_a", "cate__arm_b"}
    with pytest.raises(UpliftConfigError, match="every arm"):
        fit_dr_learner(*data, propensity={"control": 0.5, "arm_a": 0.5}, **kwargs)


def test_estimators_can_be_passed_and_searches_are_unwrapped(train):
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        {"logisticregression__C": [0.1, 1.0]},
        cv=2,
    )
    t = fit_t_learner(
        train.X[:4000],
        train.arm[:4000],
        train.visit[:4000],
        control_arm="control",
        estimator=search,
    )
    assert all(isinstance(p, Pipeline) for p in t.parts.values())
    dr = fit_dr_learner(
        train.X[:4000],
        train.arm[:4000],
        train.visit[:4000],
        control_arm="control",
        outcome_estimator=HistGradientBoostingClassifier(max_iter=20),
        effect_estimator=Ridge(),
        n_folds=2,
    )
    assert all(isinstance(p, Ridge) for p in dr.parts.values())


# --------------------------------------------------------------------------------- bad input


def _small(n=600, seed=3):
    return synthetic(n, seed)


def test_named_errors_are_project_errors():
    assert issubclass(ArmError, InputDataError) and issubclass(MissingValuesError, InputDataError)
    assert issubclass(UpliftConfigError, ConfigError)


def test_one_arm_only():
    d = _small()
    rows = d.arm == "control"
    with pytest.raises(ArmError, match="only the control arm 'control' has rows"):
        fit_t_learner(d.X[rows], d.arm[rows], d.visit[rows], control_arm="control")


def test_unknown_control_and_treated_arms():
    d = _small()
    with pytest.raises(ArmError, match="control arm 'no_email' has no row"):
        fit_t_learner(d.X, d.arm, d.visit, control_arm="no_email")
    with pytest.raises(ArmError, match="'arm_c'"):
        fit_t_learner(d.X, d.arm, d.visit, control_arm="control", treated_arms=["arm_c"])


def test_arm_with_too_few_rows():
    d = _small()
    keep = (d.arm != "arm_b") | (np.cumsum(d.arm == "arm_b") <= 30)
    with pytest.raises(ArmError, match="arm 'arm_b' has 30 rows; at least 50"):
        fit_dr_learner(d.X[keep], d.arm[keep], d.visit[keep], control_arm="control")


def test_constant_outcome_in_an_arm():
    d = _small()
    visit = np.where(d.arm == "arm_a", 0, d.visit)
    with pytest.raises(ArmError, match="arm 'arm_a' has 0 positive"):
        fit_t_learner(d.X, d.arm, visit, control_arm="control")


def test_nan_features_and_outcomes():
    d = _small()
    X = d.X.copy()
    X[[3, 9], 2] = np.nan
    with pytest.raises(MissingValuesError, match=r"1 column\(s\): x2 \(2\)"):
        fit_dr_learner(X, d.arm, d.visit, control_arm="control")
    visit = d.visit.astype(float)
    visit[0] = np.nan
    with pytest.raises(MissingValuesError, match="outcome holds 1 NaN"):
        fit_t_learner(d.X, d.arm, visit, control_arm="control")


def test_mismatched_lengths():
    d = _small()
    with pytest.raises(LengthMismatchError, match="arm has 599 labels for 600 feature rows"):
        fit_t_learner(d.X, d.arm[:-1], d.visit, control_arm="control")
    with pytest.raises(LengthMismatchError, match="outcome has 599 values"):
        fit_two_part(d.X, d.arm, d.spend[:-1], control_arm="control")


def test_refused_estimators():
    d = _small()
    with pytest.raises(UpliftConfigError, match="base must be one of"):
        fit_t_learner(d.X, d.arm, d.visit, control_arm="control", base="forest")
    with pytest.raises(UpliftConfigError, match="need a classifier"):
        fit_t_learner(d.X, d.arm, d.visit, control_arm="control", estimator=Ridge())
    with pytest.raises(UpliftConfigError, match="categorical_features is refused"):
        fit_t_learner(
            d.X,
            d.arm,
            d.visit,
            control_arm="control",
            estimator=HistGradientBoostingClassifier(categorical_features=[4]),
        )


def test_two_part_needs_zero_revenue_without_purchase():
    d = _small(3000)
    purchase = (d.spend > 0).astype(int)
    purchase[np.flatnonzero(purchase)[:3]] = 0
    with pytest.raises(UpliftInputError, match=r"3 row\(s\) have revenue without a purchase"):
        fit_two_part(d.X, d.arm, d.spend, control_arm="control", purchase=purchase)
    with pytest.raises(ArmError, match="purchases"):
        fit_two_part(d.X, d.arm, d.spend, control_arm="control", min_purchases_per_arm=500)
