"""Contributions of tree-ensemble champions from their ONNX trees (models_py.explain): Saabas
contributions add up to the base estimator's raw output, exact TreeSHAP from the ONNX trees is
``shap``'s TreeSHAP of the fitted estimator, and reasons keep the largest positive
contributions."""

from __future__ import annotations

import numpy as np
import pytest
import shap
from skl2onnx import to_onnx
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression

from models_py.explain import (
    ExplainError,
    build_explainer,
    feature_labels,
    parse_tree_ensemble,
    top_reasons,
)
from models_py.explain._trees import tree_shap_values

N_FEATURES = 6


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(19)
    X = rng.normal(size=(4000, N_FEATURES)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=len(X)) > 0.3).astype(int)
    X_missing = X.copy()
    X_missing[rng.random(X.shape) < 0.05] = np.nan
    return X, X_missing, y


def onnx_of(est, X) -> bytes:
    return to_onnx(
        est, X[:1], options={id(est): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 1}
    ).SerializeToString()


def test_saabas_contributions_add_up_to_the_raw_output(data):
    X, X_missing, y = data
    hgb = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(X_missing, y)
    ens = parse_tree_ensemble(onnx_of(hgb, X), model_id="hgb", n_features=N_FEATURES)
    assert ens.units == "log-odds"
    explainer = build_explainer(ens, X_missing)
    c = explainer.contributions(X_missing[:500])
    raw = c.sum(axis=1) + explainer.expected_value
    np.testing.assert_allclose(raw, hgb.decision_function(X_missing[:500]), atol=1e-4)

    rf = RandomForestClassifier(20, max_depth=6, random_state=0).fit(X, y)
    ens = parse_tree_ensemble(onnx_of(rf, X), model_id="rf", n_features=N_FEATURES)
    assert ens.units == "probability"
    explainer = build_explainer(ens, X)
    c = explainer.contributions(X[:500])
    np.testing.assert_allclose(
        c.sum(axis=1) + explainer.expected_value, rf.predict_proba(X[:500])[:, 1], atol=1e-5
    )


def test_tree_shap_of_the_onnx_trees_is_shaps_tree_shap_of_the_estimator(data):
    X, X_missing, y = data
    hgb = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(X_missing, y)
    ens = parse_tree_ensemble(onnx_of(hgb, X), model_id="hgb", n_features=N_FEATURES)
    rows = X_missing[:300]
    ours = tree_shap_values(ens, X_missing, rows)  # covers from the training rows
    exact = np.asarray(shap.TreeExplainer(hgb).shap_values(rows))
    np.testing.assert_allclose(ours, exact, atol=2e-3)
    # Computed once per decision pattern of each tree: the values of shap called on every row
    # (trees of more than 63 splits too: a random forest of depth 8).
    rf = RandomForestClassifier(10, max_depth=8, random_state=0).fit(X, y)
    for est, data in ((hgb, X_missing), (rf, X)):
        ens = parse_tree_ensemble(onnx_of(est, X), model_id="m", n_features=N_FEATURES)
        assert (~ens.is_leaf).sum() / ens.n_trees > 63 or est is hgb
        ours = tree_shap_values(ens, data, data[:300])
        np.testing.assert_allclose(ours, _tree_shap_row_by_row(ens, data, data[:300]), atol=1e-5)


def _tree_shap_row_by_row(ens, background, rows) -> np.ndarray:
    """``shap`` on every row and the whole ensemble at once (the reference)."""
    from models_py.explain._trees import _tree_nodes

    explainer = build_explainer(ens, background)
    is_leaf = ens.is_leaf
    trees = []
    for nodes in _tree_nodes(ens):
        ids = sorted(nodes)
        local = {n: k for k, n in enumerate(ids)}
        idx = [nodes[n] for n in ids]
        left = np.array([-1 if is_leaf[i] else local[int(ens.true_child[i])] for i in idx])
        right = np.array([-1 if is_leaf[i] else local[int(ens.false_child[i])] for i in idx])
        trees.append(
            {
                "children_left": left,
                "children_right": right,
                "children_default": np.where(ens.missing_true[idx].astype(bool), left, right),
                "features": np.where(is_leaf[idx], 0, ens.feature[idx]),
                "thresholds": ens.threshold[idx].astype(np.float32).astype(np.float64),
                "values": explainer.node_values[idx].reshape(-1, 1),
                "node_sample_weight": np.maximum(explainer.covers[idx], 1e-9),
            }
        )
    model = {"trees": trees, "base_offset": ens.bias}
    return np.asarray(shap.TreeExplainer(model).shap_values(rows.astype(np.float64)))


def test_a_model_that_is_not_one_tree_ensemble_is_refused(data):
    X, _, y = data
    lr = LogisticRegression().fit(X, y)
    with pytest.raises(ExplainError, match=r"model 'lr' is not one tree ensemble over its"):
        parse_tree_ensemble(onnx_of(lr, X), model_id="lr", n_features=N_FEATURES)
    # a soft vote of trees and a linear model: the trees alone would give wrong reasons
    vote = VotingClassifier(
        [("hgb", HistGradientBoostingClassifier(max_iter=10)), ("lr", LogisticRegression())],
        voting="soft",
        flatten_transform=False,
    ).fit(X, y)
    with pytest.raises(ExplainError, match=r"model 'vote' is not one tree ensemble"):
        parse_tree_ensemble(onnx_of(vote, X), model_id="vote", n_features=N_FEATURES)


def test_top_reasons_keep_the_three_largest_positive_contributions():
    c = np.array(
        [
            [0.1, 0.5, -2.0, 0.3, 0.2],  # 1, 3, 4
            [-1.0, -0.1, 0.0, 0.4, -0.2],  # only 3 is positive
            [0.0, 0.0, 0.0, 0.0, 0.0],  # none
        ]
    )
    row, rank, feature, value = top_reasons(c)
    assert row.tolist() == [0, 0, 0, 1]
    assert rank.tolist() == [1, 2, 3, 1]
    assert feature.tolist() == [1, 3, 4, 3]
    assert value.tolist() == [0.5, 0.3, 0.2, 0.4]


def test_labels_come_from_the_catalogue_in_plain_words():
    labels = {
        r["feature_name"]: (r["label_text"], r["value_kind"])
        for r in feature_labels(
            ["order_count_90d", "days_since_last_order", "email_open_rate_30d", "is_vip", "x_y"]
        ).to_pylist()
    }
    assert labels == {
        "order_count_90d": ("Purchase orders in the last 90 days", "number"),
        "days_since_last_order": ("Days since the last purchase order", "number"),
        "email_open_rate_30d": ("Email open rate in the last 30 days", "rate"),
        "is_vip": ("VIP customer", "flag"),
        "x_y": ("x y", "number"),  # not in the catalogue: its name
    }


def test_mean_abs_shap_of_the_logistic_regression_is_exact_linear_shap(data):
    """The training-time global importance of a logistic-regression champion: per-row values add
    up to the decision function minus its mean, a one-hot encoded feature gets the sum of its
    columns, and they are shap's LinearExplainer's (interventional, independent features)."""
    from models_py.training._candidates import build_estimator
    from models_py.training._evaluate import linear_shap_values, mean_abs_shap_rows

    X, _, y = data
    X = X.copy()
    X[:, 5] = np.floor(np.abs(X[:, 5]) * 2)  # integer-coded category 0..6
    pipe = build_estimator(
        "logistic_regression", {}, n_features=N_FEATURES, categorical_idx=[5]
    ).fit(X, y)
    rows = X[:400]
    phi = linear_shap_values(pipe, rows)
    assert phi.shape == rows.shape
    raw = pipe.decision_function(rows)
    np.testing.assert_allclose(phi.sum(axis=1), raw - raw.mean(), atol=1e-6)
    # the numeric columns: coef * (scaled x - mean) is shap's own linear SHAP
    prep, clf = pipe.steps[0][1], pipe.steps[-1][1]
    Z = prep.transform(rows)
    exact = shap.LinearExplainer(clf, shap.maskers.Independent(Z, max_samples=len(Z))).shap_values(
        Z
    )
    np.testing.assert_allclose(phi[:, :5], exact[:, :5], atol=1e-6)
    np.testing.assert_allclose(phi[:, 5], exact[:, 5:].sum(axis=1), atol=1e-6)

    out = mean_abs_shap_rows(
        algorithm="logistic_regression",
        estimator=pipe,
        onnx_bytes=b"",
        model_id="lr",
        X=rows,
        feature_names=[f"f{i}" for i in range(N_FEATURES)],
    )
    assert [r["mean_abs_shap"] for r in out] == pytest.approx(np.abs(phi).mean(axis=0).tolist())
    assert {r["shap_method"] for r in out} == {"linear_shap_log_odds_400_rows"}
    assert out[0]["shap_rank"] == 1  # x0 drives the label
    # ensembles are not explained: no rows, the permutation importance stands alone
    assert (
        mean_abs_shap_rows(
            algorithm="soft_voting",
            estimator=None,
            onnx_bytes=b"",
            model_id="v",
            X=rows,
            feature_names=[f"f{i}" for i in range(N_FEATURES)],
        )
        == []
    )
