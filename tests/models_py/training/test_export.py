"""ONNX export: the input/output/metadata contract, parity for every candidate, and the parity
gate refusing a broken export."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from threadpoolctl import threadpool_limits

from models_py.training._candidates import SigmoidCalibratedClassifier, build_estimator
from models_py.training._export import (
    TARGET_OPSET,
    ParityError,
    check_parity,
    export_onnx,
    feature_hash,
    read_metadata,
)

FEATURES = [f"f{i}" for i in range(8)]
# skl2onnx passes booleans as ints to onnx.helper (not our code).
pytestmark = pytest.mark.filterwarnings("ignore:Field onnx.AttributeProto:DeprecationWarning")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n = 4000
    X = rng.normal(size=(n, 8))
    X[:, 3] = rng.integers(0, 4, n)  # integer-coded category
    X[:, 5] = rng.poisson(3, n) * 12.49
    logit = X[:, 0] + 0.8 * X[:, 1] * X[:, 2] - 1.5 + 0.4 * X[:, 3]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X.astype(np.float32), y


def fitted(algorithm, data, params=None):
    X, y = data
    est = build_estimator(algorithm, params or {}, n_features=8, categorical_idx=[3])
    with threadpool_limits(limits=1, user_api="openmp"):  # see models_py.training._train
        est.fit(X[:2000], y[:2000])
    return SigmoidCalibratedClassifier(est).fit(X[2000:3000], y[2000:3000])


@pytest.mark.parametrize(
    ("algorithm", "params"),
    [
        ("logistic_regression", {}),
        ("random_forest", {"n_estimators": 20, "n_jobs": 1}),
        ("hist_gradient_boosting", {"max_iter": 30}),
    ],
)
def test_parity_and_contract(data, algorithm, params):
    X, _ = data
    model = fitted(algorithm, data, params)
    blob = export_onnx(
        model,
        feature_names=FEATURES,
        threshold=0.3,
        metadata={
            "model_id": "m1",
            "spec_name": "s",
            "product_group": "wine",
            "test_cutoffs": ["2024-06-01"],
        },
    )
    X_test = X[3000:].copy()
    X_test[:10, 3] = 9  # unseen category: one-hot ignores it on both sides
    assert check_parity(blob, model, X_test, model_id="m1") <= 1e-5

    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert (inp.name, inp.type, inp.shape[1]) == ("features", "tensor(float)", 8)
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    label, proba = session.run(None, {"features": X_test})
    assert proba.dtype == np.float32 and proba.shape == (len(X_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(label, (proba[:, 1] >= np.float32(0.3)).astype(np.int64))

    model_proto = onnx.load_model_from_string(blob)
    opsets = {o.domain: o.version for o in model_proto.opset_import}
    # skl2onnx declares the lowest opset each domain needs, never above the pinned target.
    assert 13 <= opsets[""] <= TARGET_OPSET[""]
    assert 1 <= opsets.get("ai.onnx.ml", 1) <= TARGET_OPSET["ai.onnx.ml"]
    meta = read_metadata(blob)
    assert json.loads(meta["feature_names"]) == FEATURES
    assert meta["feature_hash"] == feature_hash(FEATURES)
    assert meta["model_id"] == "m1" and meta["product_group"] == "wine"
    assert json.loads(meta["test_cutoffs"]) == ["2024-06-01"]
    assert float(meta["threshold"]) == 0.3
    assert json.loads(meta["library_versions"])["scikit-learn"]


def test_feature_hash_is_sha256_of_json_list():
    import hashlib

    assert feature_hash(["a", "b"]) == hashlib.sha256(b'["a", "b"]').hexdigest()
    assert feature_hash(["a", "b"]) != feature_hash(["b", "a"])


def test_parity_gate_rejects_tampered_initializer(data):
    X, _ = data
    model = fitted("logistic_regression", data)
    blob = export_onnx(model, feature_names=FEATURES, threshold=0.5, metadata={"model_id": "m2"})
    proto = onnx.load_model_from_string(blob)
    for init in proto.graph.initializer:
        if init.name == "calib_coef":
            value = numpy_helper.to_array(init) * 1.05
            init.CopyFrom(numpy_helper.from_array(value.astype(np.float32), init.name))
    tampered = proto.SerializeToString()
    with pytest.raises(ParityError, match=r"model m2: ONNX and scikit-learn .* differ by up to"):
        check_parity(tampered, model, X[3000:], model_id="m2")


def test_parity_gate_rejects_a_different_model(data):
    X, _ = data
    exported = fitted("random_forest", data, {"n_estimators": 10, "n_jobs": 1})
    other = fitted("logistic_regression", data)
    blob = export_onnx(exported, feature_names=FEATURES, threshold=0.5, metadata={})
    with pytest.raises(ParityError, match=r"model wine-x: .*not registered"):
        check_parity(blob, other, X[3000:], model_id="wine-x")


def test_parity_gate_rejects_unrunnable_bytes(data):
    X, _ = data
    with pytest.raises(ParityError, match="cannot be run by onnxruntime"):
        check_parity(b"not onnx", fitted("logistic_regression", data), X[:10], model_id="m3")
