"""Contributions of tree-ensemble champions from their ONNX trees (models_py.explain): Saabas
contributions add up to the base estimator's raw output, exact TreeSHAP from the ONNX trees is
``shap``'s TreeSHAP of the fitted estimator, and reasons keep the largest positive
contributions."""

from __future__ import annotations

import json

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


def _with_metadata(onnx_bytes: bytes, model_id: str, names: list[str]) -> bytes:
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    for key, value in (("model_id", model_id), ("feature_names", json.dumps(names))):
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


def test_score_reasons_stream_while_the_same_connection_writes_them(data, monkeypatch, caplog):
    """fct_score_reasons' shape: `score_reasons` returns a stream of small batches that the
    caller's own connection writes into a table while the stream reads each group's features
    through a cursor of its own; the rows equal one explanation of the whole group, with their
    labels, and a group whose champion is not a tree ensemble gets none, with a warning."""
    import hashlib

    import duckdb
    import pyarrow as pa

    from models_py._errors import ConfigError
    from models_py.explain import _reasons, score_reasons

    X, _, y = data
    names = [f"f{i}" for i in range(N_FEATURES)]
    hgb = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)
    lr = LogisticRegression().fit(X, y)
    models = {
        "a": ("m_a", _with_metadata(onnx_of(hgb, X), "m_a", names)),
        "b": ("m_b", _with_metadata(onnx_of(hgb, X), "m_b", names)),
        "c": ("m_c", _with_metadata(onnx_of(lr, X), "m_c", names)),
    }
    con = duckdb.connect()
    con.execute("create table registry (model_id varchar, onnx_model blob, onnx_sha256 varchar)")
    for model_id, onnx_bytes in models.values():
        con.execute(
            "insert into registry values (?, ?, ?)",
            [model_id, onnx_bytes, hashlib.sha256(onnx_bytes).hexdigest()],
        )
    con.execute(
        "create table scores as select customer_id, product_group, as_of_date, model_id, "
        "customer_id % 10 + 1 as decile from range(?) as c(customer_id), (values "
        "('a', date '2024-01-01', 'm_a'), ('a', date '2024-02-01', 'm_a'), "
        "('b', date '2024-02-01', 'm_b'), ('c', date '2024-02-01', 'm_c')) "
        "as m(product_group, as_of_date, model_id)",
        [len(X)],
    )
    features = pa.table(
        {
            "customer_id": np.arange(len(X), dtype=np.int64),
            **{n: X[:, i].astype(np.float64) for i, n in enumerate(names)},
        }
    )
    con.register("features_in", features)
    con.execute(
        "create table features as select customer_id, g as product_group, "
        "date '2024-02-01' as as_of_date, * exclude (customer_id) "
        "from features_in, (values ('a'), ('b'), ('c')) as t(g)"
    )
    con.unregister("features_in")

    def reasons(**options):
        return score_reasons(
            con.query("select * from scores"),
            con.query("select * from features"),
            con.query("select * from registry"),
            connection=con,
            **options,
        )

    monkeypatch.setattr(_reasons, "BATCH_ROWS", 700)
    with caplog.at_level("WARNING"):
        stream = reasons(method="saabas")
    assert isinstance(stream, pa.RecordBatchReader)
    assert "no reasons for c" in caplog.text and "'m_c' is not one tree ensemble" in caplog.text
    con.register("stream", stream)
    con.execute("create table reasons as select * from stream")

    sizes = con.execute(
        "select product_group, count(*), count(distinct customer_id), max(reason_rank), "
        "bool_and(label_text = feature_name and value_kind = 'number') from reasons group by 1 "
        "order by 1"
    ).fetchall()
    assert [s[0] for s in sizes] == ["a", "b"]  # c: not a tree ensemble
    for _, _, customers, max_rank, labelled in sizes:
        assert customers > len(X) * 0.9 and max_rank == 3 and labelled

    ens = parse_tree_ensemble(models["a"][1], model_id="m_a", n_features=N_FEATURES)
    row, rank, feature, value = top_reasons(build_explainer(ens, X).contributions(X))
    expected = sorted(
        (int(r), int(k), names[f], round(float(v), 5))
        for r, k, f, v in zip(row, rank, feature, value, strict=True)
    )
    stored = con.execute(
        "select customer_id, reason_rank, feature_name, round(contribution, 5) from reasons "
        "where product_group = 'a' and as_of_date = date '2024-02-01' and method = 'saabas' "
        "order by all"
    ).fetchall()
    assert stored == expected

    # read in Python: batch by batch (BATCH_ROWS feature rows each), never the whole table
    again = reasons(method="saabas")
    batch_rows = [batch.num_rows for batch in again]
    assert len(batch_rows) == 2 * -(-len(X) // 700) and max(batch_rows) <= 3 * 700
    assert sum(batch_rows) == sum(s[1] for s in sizes)

    # the top two deciles only: their rows, unchanged (covers still from every scored row)
    top = reasons(method="saabas", max_decile="2")  # a string, as the dbt config may pass it
    con.register("top", top)
    assert (
        con.execute(
            "select count(*), count(*) filter (where customer_id % 10 + 1 > 2) from top"
        ).fetchall()
        == con.execute("select count(*), 0 from reasons where customer_id % 10 + 1 <= 2").fetchall()
    )
    top = reasons(method="saabas", max_decile=2)
    con.register("top", top)
    assert con.execute("select * from top except select * from reasons").fetchall() == []
    # 0: nobody explained, an empty stream of the same columns
    none = reasons(max_decile=0)
    assert none.schema == top.schema and none.read_all().num_rows == 0
    for bad in ("-1", "11", "top"):
        with pytest.raises(ConfigError, match=f"score_reasons_max_decile '{bad}' is not a whole"):
            reasons(max_decile=bad)
    con.close()
