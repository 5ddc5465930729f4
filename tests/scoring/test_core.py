"""scoring core: verified loading, Arrow flattening, parity with onnxruntime, streaming."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest

import scoring
from scoring import FeatureError, ModelIntegrityError, ScoringError
from tests.scoring.scoring_fixtures import TinyModel, make_model, training_data


def _direct(model: TinyModel, X: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.onnx_bytes, providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"features": X.astype(np.float32)})[0][:, 1]


@pytest.fixture()
def X() -> np.ndarray:
    return training_data(4, seed=11)[0][:300]


def test_parity_with_onnxruntime_and_sklearn(hgb_model: TinyModel, X: np.ndarray) -> None:
    model = scoring.load_model(hgb_model.onnx_bytes, hgb_model.sha256)
    assert model.model_id == "any_hgb_v1"  # from the metadata
    assert model.feature_names == tuple(hgb_model.feature_names)
    got = scoring.score_batch(model, X)
    assert got.dtype == np.float32 and got.shape == (300,)
    assert np.abs(got - _direct(hgb_model, X)).max() < 1e-6
    assert np.abs(got - hgb_model.estimator.predict_proba(X)[:, 1]).max() < 1e-4
    as_list = pa.array(list(X), type=pa.list_(pa.float32()))
    assert np.abs(scoring.score_batch(model, as_list) - got).max() < 1e-6


def test_a_regressor_declared_output_kind_value_scores_its_prediction(X: np.ndarray) -> None:
    """Uplift parts (CATE regressors, revenue models) are regressors: one output, no classes."""
    ridge = make_model("cate_ridge_v1", kind="ridge")
    model = scoring.load_model(ridge.onnx_bytes, ridge.sha256)
    assert model.output_kind == "value"
    got = scoring.score_batch(model, X)
    assert got.dtype == np.float32 and got.shape == (300,)
    expected = ridge.estimator.predict(X)
    assert expected.std() > 1.0  # not a constant: the values, not probabilities, come back
    assert np.abs(got - expected).max() < 1e-4


def test_sha256_mismatch_is_refused_naming_the_model(hgb_model: TinyModel) -> None:
    tampered = hgb_model.onnx_bytes[:-1] + bytes([hgb_model.onnx_bytes[-1] ^ 1])
    with pytest.raises(ModelIntegrityError, match=r"model 'any_hgb_v1'.*sha256") as info:
        scoring.load_model(tampered, hgb_model.sha256, model_id="any_hgb_v1")
    assert isinstance(info.value, ScoringError)
    with pytest.raises(ModelIntegrityError, match="wine_lr_v1"):
        scoring.load_model(hgb_model.onnx_bytes, "0" * 64, model_id="wine_lr_v1")
    with pytest.raises(ModelIntegrityError, match="another model's bytes"):
        scoring.load_model(hgb_model.onnx_bytes, hgb_model.sha256, model_id="wine_lr_v1")
    with pytest.raises(FeatureError, match="not loaded"):
        scoring.get_model("any_hgb_v1")


def test_model_without_feature_names_is_refused() -> None:
    bare = make_model("m", seed=3)
    import onnx

    proto = onnx.load_from_string(bare.onnx_bytes)
    del proto.metadata_props[:]
    proto.metadata_props.add(key="model_id", value="m")
    data = proto.SerializeToString()
    import hashlib

    with pytest.raises(ModelIntegrityError, match="no 'feature_names'"):
        scoring.load_model(data, hashlib.sha256(data).hexdigest())


def test_flatten_chunked_sliced_fixed_and_large_lists(X: np.ndarray) -> None:
    rows = list(X[:10])
    expected = X[:10].astype(np.float32)
    plain = pa.array(rows, type=pa.list_(pa.float32()))
    chunked = pa.chunked_array([plain.slice(0, 3), plain.slice(3, 7)])
    assert np.array_equal(scoring.features_to_matrix(chunked, n_features=4), expected)
    sliced = plain.slice(2, 5)  # non-zero offset into the values buffer
    assert np.array_equal(scoring.features_to_matrix(sliced, n_features=4), expected[2:7])
    fixed = pa.array(rows, type=pa.list_(pa.float32(), 4))
    assert np.array_equal(scoring.features_to_matrix(fixed.slice(4, 3)), expected[4:7])
    large = pa.array(rows, type=pa.large_list(pa.float64()))
    np.testing.assert_allclose(scoring.features_to_matrix(large), expected, rtol=1e-7)
    ints = pa.array([[1, 2], [3, 4]], type=pa.list_(pa.int32()))
    assert scoring.features_to_matrix(ints).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    empty = pa.chunked_array([], type=pa.list_(pa.float32()))
    assert scoring.features_to_matrix(empty, n_features=4).shape == (0, 4)
    # zero-copy for float32 values without nulls
    matrix = scoring.features_to_matrix(plain)
    assert not matrix.flags.owndata


def test_flatten_rejects_nulls_and_wrong_lengths() -> None:
    names = ["a", "b", "c"]
    with pytest.raises(FeatureError, match=r"row 1 has a null value in feature 2 \('c'\)") as info:
        scoring.features_to_matrix(
            pa.array([[1, 2, 3], [4, 5, None]], pa.list_(pa.float32())), feature_names=names
        )
    assert isinstance(info.value, ScoringError)
    with pytest.raises(FeatureError, match="row 1 has a null feature vector"):
        scoring.features_to_matrix(pa.array([[1, 2, 3], None], pa.list_(pa.float32())))
    with pytest.raises(FeatureError, match="row 1 has 2 feature values, expected 3"):
        scoring.features_to_matrix(pa.array([[1, 2, 3], [4, 5]], pa.list_(pa.float32())))
    with pytest.raises(FeatureError, match="row 0 has 3 feature values, expected 4"):
        scoring.features_to_matrix(pa.array([[1, 2, 3]], pa.list_(pa.float32())), n_features=4)
    with pytest.raises(FeatureError, match="have 3 values, the model expects 4"):
        scoring.features_to_matrix(pa.array([[1, 2, 3]], pa.list_(pa.float32(), 3)), n_features=4)
    with pytest.raises(FeatureError, match="must be numeric"):
        scoring.features_to_matrix(pa.array([["a"]], pa.list_(pa.string())))
    with pytest.raises(FeatureError, match="2-D"):
        scoring.features_to_matrix(np.zeros(3, dtype=np.float32))
    # a null hidden outside a slice does not count
    arr = pa.array([[None, 1.0], [2.0, 3.0]], pa.list_(pa.float32()))
    assert scoring.features_to_matrix(arr.slice(1)).tolist() == [[2.0, 3.0]]


def test_score_arrow_mixes_models_in_one_batch(
    hgb_model: TinyModel, lr_model: TinyModel, X: np.ndarray
) -> None:
    scoring.load_model(hgb_model.onnx_bytes, hgb_model.sha256, model_id=hgb_model.model_id)
    scoring.load_model(lr_model.onnx_bytes, lr_model.sha256, model_id=lr_model.model_id)
    ids = np.where(np.arange(len(X)) % 3 == 0, lr_model.model_id, hgb_model.model_id)
    got = scoring.score_arrow(
        pa.chunked_array([pa.array(ids[:100]), pa.array(ids[100:])]),
        pa.array(list(X), type=pa.list_(pa.float32())),
    )
    assert got.type == pa.float32()
    expected = np.where(ids == lr_model.model_id, _direct(lr_model, X), _direct(hgb_model, X))
    assert np.abs(got.to_numpy() - expected).max() < 1e-6
    with pytest.raises(FeatureError, match="null model id"):
        scoring.score_arrow(pa.array([None], pa.string()), pa.array([[1.0, 2, 3, 4]]))
    with pytest.raises(FeatureError, match="'nope' is not loaded"):
        scoring.score_arrow(pa.array(["nope"]), pa.array([[1.0, 2, 3, 4]]))


def test_score_record_batches_streams_columns_or_lists(
    hgb_model: TinyModel, lr_model: TinyModel, X: np.ndarray
) -> None:
    model = scoring.load_model(hgb_model.onnx_bytes, hgb_model.sha256)
    table = pa.table(
        {
            "customer_id": np.arange(len(X)),
            **{n: X[:, j] for j, n in enumerate(model.feature_names)},
        }
    )
    out = list(scoring.score_record_batches(table.to_reader(max_chunksize=64), model))
    assert len(out) == 5 and out[0].schema.names == ["customer_id", "score"]
    scores = pa.Table.from_batches(out).column("score").to_numpy()
    assert np.abs(scores - _direct(hgb_model, X)).max() < 1e-6

    lr = scoring.load_model(lr_model.onnx_bytes, lr_model.sha256)
    ids = np.where(np.arange(len(X)) % 2 == 0, "any_hgb_v1", "wine_lr_v1")
    listed = pa.table(
        {
            "customer_id": np.arange(len(X)),
            "model_id": ids,
            "features": pa.array(list(X), type=pa.list_(pa.float32())),
        }
    )
    batches = scoring.score_record_batches(
        listed.to_batches(max_chunksize=100),
        {model.model_id: model, lr.model_id: lr},
        features_column="features",
        model_id_column="model_id",
    )
    result = pa.Table.from_batches(list(batches))
    assert result.column_names == ["customer_id", "model_id", "score"]
    # lr was trained on the reversed column order, but a list column is taken as given
    expected = np.where(ids == "any_hgb_v1", _direct(hgb_model, X), _direct(lr_model, X))
    assert np.abs(result.column("score").to_numpy() - expected).max() < 1e-6
    with pytest.raises(FeatureError, match="column 'is_vip' has 1 null"):
        bad = table.set_column(4, "is_vip", pa.array([None] + [0.0] * (len(X) - 1)))
        list(scoring.score_record_batches(bad.to_batches(), model))


def test_sessions_sleep_instead_of_spinning(hgb_model: TinyModel, X: np.ndarray) -> None:
    # Spinning intra-op threads took the core DuckDB's other thread needs (docs/scoring.md).
    model = scoring.load_model(hgb_model.onnx_bytes, hgb_model.sha256, intra_op_threads=2)
    options = model.session.get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert np.abs(scoring.score_batch(model, X) - _direct(hgb_model, X)).max() < 1e-6
