"""Drift references: the binning of features and scores on the training rows (pure functions),
and the rows the registry stores with a trained model (and does not store when the parity gate
refuses it)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models_py._warehouse import connect
from models_py.training._export import ParityError, onnx_predict_proba
from models_py.training._reference import (
    SCORE_NAME,
    categorical_rows,
    numeric_edges,
    numeric_rows,
    reference_rows,
    weighted_quantiles,
)
from models_py.training._train import plan_training, train_target
from tests.models_py.training.training_fixtures import copy_warehouse, template_warehouse

pytestmark = pytest.mark.filterwarnings("ignore:Field onnx.AttributeProto:DeprecationWarning")


def _bin_of(rows: list[dict], values: np.ndarray) -> np.ndarray:
    """The bin of each value, found from the stored edges alone ([lower, upper) bins)."""
    lowers = np.array([r["bin_lower"] for r in rows if r["bin_lower"] is not None])
    return np.searchsorted(lowers, np.asarray(values, np.float32), side="right")


# ----------------------------------------------------------------------------- pure binning


@pytest.mark.parametrize("seed", range(4))
def test_unit_weight_quantiles_are_numpy_inverted_cdf(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 30, size=rng.integers(5, 400)).astype(np.float32)
    qs = [k / 10 for k in range(1, 10)]
    expected = np.quantile(x, qs, method="inverted_cdf")
    assert np.array_equal(weighted_quantiles(x, np.ones(x.size), qs), expected)


def test_integer_weights_equal_repeated_rows():
    rng = np.random.default_rng(1)
    x = rng.exponential(20, 500).round(1)
    w = rng.integers(0, 4, 500).astype(float)
    repeated = np.repeat(x, w.astype(int))
    assert np.array_equal(numeric_edges(x, w), numeric_edges(repeated))
    weighted = numeric_rows(x, w)
    plain = numeric_rows(repeated)
    assert [r["reference_share"] for r in weighted] == pytest.approx(
        [r["reference_share"] for r in plain], abs=1e-12
    )
    with pytest.raises(ValueError, match="non-negative"):
        numeric_rows(x, -w)


def test_few_distinct_values_get_one_bin_each_between_two_empty_outer_bins():
    x = np.array([0, 0, 0, 1, 1, 2, 5, 5, 5, 5], dtype=np.float32)
    rows = numeric_rows(x, bins=10)
    assert [r["bin"] for r in rows] == list(range(6))
    assert rows[0]["bin_lower"] is None and rows[-1]["bin_upper"] is None
    assert [r["reference_rows"] for r in rows] == [0, 3, 2, 1, 4, 0]
    assert [r["reference_share"] for r in rows] == pytest.approx([0, 0.3, 0.2, 0.1, 0.4, 0])
    # edges lie halfway between the values; the last in-range bin ends just above the maximum
    above = float(np.nextafter(np.float32(5), np.float32(6)))
    assert [r["bin_lower"] for r in rows[1:]] == [0.0, 0.5, 1.5, 3.5, above]
    # new values: below the minimum, between two training values (nearest bin), above the maximum
    assert list(_bin_of(rows, [-1, 0.4, 0.6, 4.9, 5, 5.01])) == [0, 1, 2, 4, 4, 5]


def test_quantile_bins_collapse_equal_edges_and_keep_training_values_off_edges():
    rng = np.random.default_rng(2)
    x = np.concatenate([np.zeros(7000), rng.gamma(2.0, 30.0, 3000).round(2)]).astype(np.float32)
    edges = numeric_edges(x)
    assert np.all(np.diff(edges) > 0)
    # 70% zeros: the first seven deciles collapse into one bin holding exactly the zeros
    assert edges[0] == 0 and edges.size == 5
    assert not np.isin(edges[1:-1], x).any()  # interior edges are between training values
    rows = numeric_rows(x)
    assert rows[1]["reference_rows"] == 7000
    assert [r["reference_rows"] for r in rows[2:-1]] == pytest.approx([1000] * 3, abs=3)
    assert sum(r["reference_share"] for r in rows) == pytest.approx(1.0, abs=1e-12)
    # every training value falls in the in-range bin the stored rows say, never outside
    counts = np.bincount(_bin_of(rows, x), minlength=len(rows))
    assert list(counts) == [r["reference_rows"] for r in rows]


def test_a_constant_feature_has_one_bin_and_values_are_binned_as_float32():
    rows = numeric_rows(np.full(50, 0.1))
    assert [r["reference_rows"] for r in rows] == [0, 50, 0]
    assert rows[1]["bin_lower"] == float(np.float32(0.1))  # the float32 value, exactly
    assert list(_bin_of(rows, [0.1, 0.1000001, 0.0999999])) == [1, 2, 0]


def test_categorical_bins_and_the_other_bucket():
    x = np.array([3, 3, 1, 7, 7, 7, 2], dtype=np.float32)
    rows = categorical_rows(x)
    assert [(r["category"], r["reference_rows"]) for r in rows] == [
        (1.0, 1),
        (2.0, 1),
        (3.0, 2),
        (7.0, 3),
        (None, 0),
    ]
    capped = categorical_rows(x, max_categories=2)
    assert [(r["category"], r["reference_rows"]) for r in capped] == [
        (3.0, 2),
        (7.0, 3),
        (None, 2),  # categories 1 and 2 are the least frequent: counted as other
    ]
    assert sum(r["reference_share"] for r in capped) == pytest.approx(1.0)


def test_reference_rows_cover_every_feature_and_the_score():
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.normal(size=200), rng.integers(0, 4, 200)]).astype(np.float32)
    rows = reference_rows(X, ["spend", "segment"], rng.random(200), categorical=["segment"])
    kinds = {(r["feature_name"], r["feature_kind"]) for r in rows}
    assert kinds == {("spend", "numeric"), ("segment", "categorical"), (SCORE_NAME, "score")}
    for name in ("spend", "segment", SCORE_NAME):
        part = [r for r in rows if r["feature_name"] == name]
        assert [r["bin"] for r in part] == list(range(len(part)))
        assert sum(r["reference_rows"] for r in part) == 200
    with pytest.raises(ValueError, match="categorical feature"):
        reference_rows(X, ["spend", "segment"], rng.random(200), categorical=["nope"])
    with pytest.raises(ValueError, match="expected"):
        reference_rows(X, ["spend"], rng.random(200))


# ----------------------------------------------------------------- written with the model

LEAN_SPEC = """
specs:
  - name: purchase_propensity
    relation: marts.fct_training_examples
    id_columns: [customer_id]
    label: label
    cutoff: as_of_date
    split: split
    group: {column: product_group, groups: all_active}
    features: {numeric_except: []}
    categorical: [rfm_segment_code]
    search: {folds: 2}
    candidates:
      hist_gradient_boosting: {max_iter: [20], learning_rate: [0.1], max_leaf_nodes: [7]}
    threshold: max_f1
    promotion: {metric: roc_auc, margin: 0.005}
    max_training_rows: 20000
    max_evaluation_rows: 20000
    importance_rows: 200
"""


@pytest.fixture(scope="module")
def lean(tmp_path_factory):
    work = tmp_path_factory.mktemp("reference")
    spec = work / "spec.yml"
    spec.write_text(LEAN_SPEC)
    return copy_warehouse(template_warehouse(tmp_path_factory), work / "wh.duckdb"), spec


def _counts(settings) -> dict[str, int]:
    con = connect(settings.warehouse, read_only=True)
    try:
        return {
            t: con.execute(f"select count(*) from ml.{t}").fetchone()[0]
            for t in ("model_registry", "reference_distributions")
        }
    finally:
        con.close()


def test_reference_is_written_with_the_model_and_matches_its_training_rows(lean):
    settings, spec = lean
    (target,) = plan_training(settings, spec_path=spec, groups=["wine"])
    result = train_target(settings, target)
    assert result.status == "registered"
    con = connect(settings.warehouse, read_only=True)
    try:
        model = con.execute(
            "select feature_names, onnx_model from ml.model_registry where model_id = ?",
            [result.model_id],
        ).fetchone()
        features = json.loads(model[0])
        cur = con.execute(
            "select * from ml.reference_distributions where model_id = ? "
            "order by feature_kind, feature_name, bin",
            [result.model_id],
        )
        names = [d[0] for d in cur.description]
        stored = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        cols = ", ".join(f'"{f}"' for f in features)
        # the fake warehouse holds fewer train rows than max_training_rows: all of them are used
        X = np.asarray(
            con.execute(
                f"select {cols} from marts.fct_training_examples "
                "where product_group = 'wine' and split = 'train'"
            ).fetchall(),
            dtype=np.float32,
        )
    finally:
        con.close()
    assert {r["product_group"] for r in stored} == {"wine"}
    assert {(r["feature_name"], r["feature_kind"]) for r in stored} == {
        *((f, "categorical" if f == "rfm_segment_code" else "numeric") for f in features),
        (SCORE_NAME, "score"),
    }
    score = onnx_predict_proba(bytes(model[1]), X)[:, 1]
    for j, name in enumerate([*features, SCORE_NAME]):
        part = [r for r in stored if r["feature_name"] == name]
        values = score if name == SCORE_NAME else X[:, j]
        if part[0]["feature_kind"] == "categorical":
            cats = [r["category"] for r in part]
            bins = np.array([cats.index(v) if v in cats else len(cats) - 1 for v in values])
        else:
            bins = _bin_of(part, values)
        counts = np.bincount(bins, minlength=len(part))
        assert list(counts) == [r["reference_rows"] for r in part], name
        assert [r["reference_share"] for r in part] == pytest.approx(counts / len(X)), name


def test_no_reference_is_written_when_the_parity_gate_fails(lean):
    import onnx
    from onnx import numpy_helper

    settings, spec = lean
    (target,) = plan_training(settings, spec_path=spec, groups=["sweets"])

    def tamper(blob: bytes) -> bytes:
        proto = onnx.load_model_from_string(blob)
        for init in proto.graph.initializer:
            if init.name == "calib_intercept":
                value = numpy_helper.to_array(init) + np.float32(0.1)
                init.CopyFrom(numpy_helper.from_array(value, init.name))
        return proto.SerializeToString()

    before = _counts(settings)
    with pytest.raises(ParityError):
        train_target(settings, target, export_hook=tamper)
    assert _counts(settings) == before
