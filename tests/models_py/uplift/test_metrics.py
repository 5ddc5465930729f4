"""Uplift metrics: a hand-computed example, perfect vs random rankings, bad input, and agreement
with scikit-uplift to 1e-9 on random data (skipped when sklift is not installed)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from models_py.uplift import (
    LengthMismatchError,
    MissingValuesError,
    UpliftInputError,
    qini_auc_score,
    qini_curve,
    uplift_at_k,
    uplift_auc_score,
    uplift_by_percentile,
    uplift_curve,
)

# Six customers ranked by the score 6..1 (the hand computation is in the test bodies).
Y = np.array([1, 0, 1, 0, 1, 0])
T = np.array([1, 1, 0, 0, 1, 0])
S = np.array([6.0, 5, 4, 3, 2, 1])


def test_qini_curve_by_hand():
    x, q = qini_curve(Y, S, T)
    # n=3: treated sum 1 - control sum 1 * (2 treated / 1 control) = -1; n=5: 2 - 1 * 3/2 = 0.5
    np.testing.assert_array_equal(x, [0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(q, [0, 1, 1, -1, 0, 0.5, 1])


def test_uplift_curve_by_hand():
    _, u = uplift_curve(Y, S, T)
    # n=3: (1/2 - 1/1) * 3 = -1.5; n=5: (2/3 - 1/2) * 5 = 5/6; n=6: (2/3 - 1/3) * 6 = 2
    np.testing.assert_allclose(u, [0, 1, 1, -1.5, 0, 5 / 6, 2])


def test_qini_coefficient_by_hand():
    # actual area 2.0, random line 0.5 * 6 * 1 = 3; the perfect ranking (treated responders,
    # then everyone else tied, then the control responder) has points (2, 2), (5, 2), (6, 1):
    # area 9.5. Qini = (2 - 3) / (9.5 - 3).
    assert qini_auc_score(Y, S, T) == pytest.approx(-1 / 6.5, abs=1e-12)


def test_uplift_at_k_by_hand():
    # top 3 of all rows: treated outcomes 1, 0 and the control outcome 1
    assert uplift_at_k(Y, S, T, k=0.5) == pytest.approx(-0.5)
    # top 2 of each group: treated rows 0, 1 (0.5) and control rows 2, 3 (0.5)
    assert uplift_at_k(Y, S, T, k=2, strategy="by_group") == pytest.approx(0.0)


def test_uplift_by_percentile_by_hand():
    table = uplift_by_percentile(Y, S, T, bins=2)
    assert table["percentile"].tolist() == ["0-50", "50-100"]
    assert table["n_treatment"].tolist() == [2, 1]
    assert table["n_control"].tolist() == [1, 2]
    np.testing.assert_allclose(table["uplift"], [-0.5, 1.0])
    se = np.sqrt(0.5 * 0.5 / 2)  # the top bin's treated rate 1/2 over 2 rows; control rate 1
    np.testing.assert_allclose(table["std_uplift"], [se, 0.0])
    np.testing.assert_allclose(table["ci_low"], [-0.5 - 1.959963984540054 * se, 1.0])


def _experiment(n: int, seed: int):
    """Treated customers with x > 0 respond 0.3 more often; the rest are not affected."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.2 + 0.3 * t * (x > 0)).astype(int)
    return x, t, y


def test_perfect_ranking_scores_one_and_random_about_zero():
    x, t, y = _experiment(20_000, 0)
    assert qini_auc_score(y, y * t - y * (1 - t), t) == pytest.approx(1.0)
    random_scores = np.random.default_rng(1).random(y.size)
    assert abs(qini_auc_score(y, random_scores, t)) < 0.05
    assert abs(uplift_at_k(y, random_scores, t, k=0.3) - (y[t == 1].mean() - y[t == 0].mean())) < (
        0.03
    )
    # the true effect ranks well (the perfect ranking also sorts the noise: 0.16 here), its
    # reverse badly
    assert qini_auc_score(y, x, t) > 0.1 > -0.1 > qini_auc_score(y, -x, t)
    assert uplift_auc_score(y, x, t) > 0.1 > -0.1 > uplift_auc_score(y, -x, t)
    assert uplift_at_k(y, x, t, k=0.3) == pytest.approx(0.3, abs=0.03)


def test_tied_scores_give_one_curve_point_and_zero_qini():
    _, t, y = _experiment(500, 2)
    x, _ = qini_curve(y, np.zeros(y.size), t)
    assert x.tolist() == [0, y.size]
    assert qini_auc_score(y, np.ones(y.size), t) == pytest.approx(0.0, abs=1e-12)
    # within a tie the later row ranks first: the top treated row of the tied rows 0, 1 is row 1
    tied, groups = [1.0, 1.0, 0.0, 0.0], [1, 1, 0, 0]
    assert uplift_at_k([1, 0, 0, 0], tied, groups, k=1, strategy="by_group") == 0.0
    assert uplift_at_k([0, 1, 0, 0], tied, groups, k=1, strategy="by_group") == 1.0


def test_continuous_outcome():
    rng = np.random.default_rng(4)
    t = rng.integers(0, 2, 2000)
    effect = rng.random(2000)
    spend = rng.gamma(2.0, 10.0, 2000) * (1 + t * effect)
    assert qini_auc_score(spend, effect, t) > 0.05 > -0.05 > qini_auc_score(spend, -effect, t)
    table = uplift_by_percentile(spend, effect, t, bins=5)
    assert table["uplift"].iloc[0] > table["uplift"].iloc[-1]
    with pytest.raises(UpliftInputError, match="binary 0/1 outcome"):
        uplift_auc_score(spend, effect, t)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (([1, 0, 1], [0.1, 0.2], [1, 0, 1]), LengthMismatchError, "3, 2 and 3 rows"),
        (([1, 0, 1], [0.1, np.nan, 0.3], [1, 0, 1]), MissingValuesError, "uplift holds 1 NaN"),
        (([1, 0, 1], [0.1, 0.2, 0.3], [1, 1, 1]), UpliftInputError, "only treated rows"),
        (([1, 0, 1], [0.1, 0.2, 0.3], [1, 2, 0]), UpliftInputError, "only 0 .control. and 1"),
    ],
)
def test_bad_input_is_named(args, error, match):
    with pytest.raises(error, match=match):
        qini_auc_score(*args)


@pytest.mark.parametrize("k", [0, 1.0, 6, "0.3", True])
def test_bad_k(k):
    with pytest.raises(UpliftInputError, match="k"):
        uplift_at_k(Y, S, T, k=k)


# --------------------------------------------------------------------------------- vs sklift


@pytest.fixture(scope="module")
def sklift_metrics():
    metrics = pytest.importorskip(
        "sklift.metrics", reason="scikit-uplift is not installed (pip install scikit-uplift)"
    )
    return metrics


def _random_case(seed: int, *, ties: bool):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(200, 3000))
    t = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.1 + 0.2 * rng.random(n) * t).astype(int)
    score = rng.normal(size=n)
    if ties:
        score = np.round(score, 1)  # about 60 distinct values
    return y, score, t


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():  # sklift calls deprecated sklearn helpers
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_sklift(sklift_metrics, seed, ties):
    m = sklift_metrics
    y, s, t = _random_case(seed, ties=ties)
    for ours, theirs in ((qini_curve, m.qini_curve), (uplift_curve, m.uplift_curve)):
        for a, b in zip(ours(y, s, t), _quiet(theirs, y, s, t), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    for negative_effect in (True, False):
        assert qini_auc_score(y, s, t, negative_effect=negative_effect) == pytest.approx(
            _quiet(m.qini_auc_score, y, s, t, negative_effect=negative_effect), abs=1e-9
        )
    assert uplift_auc_score(y, s, t) == pytest.approx(_quiet(m.uplift_auc_score, y, s, t), abs=1e-9)
    for strategy in ("overall", "by_group"):
        for k in (0.1, 0.3, 0.5, 57):
            assert uplift_at_k(y, s, t, k=k, strategy=strategy) == pytest.approx(
                _quiet(m.uplift_at_k, y, s, t, strategy=strategy, k=k), abs=1e-9
            )
        for bins in (10, 7):
            ours = uplift_by_percentile(y, s, t, bins=bins, strategy=strategy)
            theirs = _quiet(m.uplift_by_percentile, y, s, t, strategy=strategy, bins=bins, std=True)
            assert ours["percentile"].tolist() == theirs.index.tolist()
            for column in ("n_treatment", "n_control", "uplift", "std_uplift"):
                np.testing.assert_allclose(ours[column], theirs[column], rtol=0, atol=1e-9)
            for ours_col, theirs_col in (
                ("response_treatment", "response_rate_treatment"),
                ("response_control", "response_rate_control"),
                ("std_treatment", "std_treatment"),
            ):
                np.testing.assert_allclose(ours[ours_col], theirs[theirs_col], rtol=0, atol=1e-9)
