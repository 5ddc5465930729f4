"""ONNX export with a fixed input contract, metadata, and a parity gate against scikit-learn.

Contract (the scoring package depends on it):

- one input ``features``: float32, shape ``[None, n_features]``, columns in the order of the
  ``feature_names`` metadata entry;
- output ``probabilities``: float32 ``[N, 2]`` (column 1 = probability of the positive class,
  calibrated); output ``label``: int64 ``[N]``, 1 where that probability >= the stored threshold;
- opset pinned to `TARGET_OPSET`; metadata_props as listed in `export_onnx`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models_py._errors import PropensityError
from models_py.training._candidates import SigmoidCalibratedClassifier, final_classifier

logger = logging.getLogger(__name__)

#: Pinned opsets: the default domain and the ONNX-ML domain (tree ensembles, encoders).
TARGET_OPSET: dict[str, int] = {"": 17, "ai.onnx.ml": 3}
INPUT_NAME = "features"
PROBABILITIES = "probabilities"
LABEL = "label"
PARITY_TOLERANCE = 1e-5


class ParityError(PropensityError):
    """ONNX and scikit-learn probabilities disagree beyond the tolerance: the model is refused."""


def feature_hash(feature_names: Sequence[str]) -> str:
    """sha256 hex digest of ``json.dumps(list(feature_names))`` (default separators).

    The scoring side recomputes it from the warehouse's columns to detect a changed feature list.
    """
    return hashlib.sha256(json.dumps(list(feature_names)).encode("utf-8")).hexdigest()


def library_versions() -> dict[str, str]:
    import onnxruntime
    import skl2onnx
    import sklearn

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _register_lightgbm() -> None:  # pragma: no cover - optional extra, not installed in CI
    from lightgbm import LGBMClassifier
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )


def _convert_base(estimator, n_features: int) -> onnx.ModelProto:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    clf = final_classifier(estimator)
    # An ensemble's members (soft voting, stacking) are converted by their own converters.
    parts = [clf, *(final_classifier(m) for m in getattr(clf, "estimators_", ()))]
    if any(type(p).__name__ == "LGBMClassifier" for p in parts):  # pragma: no cover - optional
        _register_lightgbm()
    return convert_sklearn(
        estimator,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        options={id(clf): {"zipmap": False}},
        target_opset=dict(TARGET_OPSET),
    )


def _append_calibration(
    model: onnx.ModelProto, *, coef: float, intercept: float, eps: float, threshold: float
) -> onnx.ModelProto:
    """Rewire the base graph: its probabilities feed Platt scaling; new label and probabilities."""
    graph = model.graph
    base = "base_probabilities"
    for node in graph.node:
        node.output[:] = [base if o == PROBABILITIES else o for o in node.output]
        node.input[:] = [base if i == PROBABILITIES else i for i in node.input]
        node.output[:] = ["base_label" if o == LABEL else o for o in node.output]
        node.input[:] = ["base_label" if i == LABEL else i for i in node.input]
    del graph.output[:]

    def const(name: str, value: Any, dtype=np.float32) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    one = const("calib_one", 1.0)
    nodes = [
        helper.make_node(
            "Gather", [base, const("calib_pos_idx", [1], np.int64)], ["calib_p"], axis=1
        ),
        helper.make_node(
            "Clip",
            ["calib_p", const("calib_lo", eps), const("calib_hi", 1.0 - eps)],
            ["calib_pc"],
        ),
        helper.make_node("Log", ["calib_pc"], ["calib_log_p"]),
        helper.make_node("Sub", [one, "calib_pc"], ["calib_q0"]),
        helper.make_node("Log", ["calib_q0"], ["calib_log_q"]),
        helper.make_node("Sub", ["calib_log_p", "calib_log_q"], ["calib_logit"]),
        helper.make_node("Mul", ["calib_logit", const("calib_coef", coef)], ["calib_scaled"]),
        helper.make_node("Add", ["calib_scaled", const("calib_intercept", intercept)], ["calib_z"]),
        helper.make_node("Sigmoid", ["calib_z"], ["calib_q"]),
        helper.make_node("Sub", [one, "calib_q"], ["calib_neg"]),
        helper.make_node("Concat", ["calib_neg", "calib_q"], [PROBABILITIES], axis=1),
        helper.make_node(
            "GreaterOrEqual", ["calib_q", const("calib_threshold", threshold)], ["calib_ge"]
        ),
        helper.make_node("Cast", ["calib_ge"], ["calib_label2d"], to=TensorProto.INT64),
        helper.make_node(
            "Reshape", ["calib_label2d", const("calib_flat", [-1], np.int64)], [LABEL]
        ),
    ]
    for i, node in enumerate(nodes):
        node.name = f"calibration_{i}_{node.op_type}"
    graph.node.extend(nodes)
    graph.output.extend(
        [
            helper.make_tensor_value_info(LABEL, TensorProto.INT64, [None]),
            helper.make_tensor_value_info(PROBABILITIES, TensorProto.FLOAT, [None, 2]),
        ]
    )
    return model


def export_onnx(
    model: SigmoidCalibratedClassifier,
    *,
    feature_names: Sequence[str],
    threshold: float,
    metadata: Mapping[str, Any],
) -> bytes:
    """Convert a calibrated candidate to ONNX bytes with the contract above.

    Parameters
    ----------
    model : SigmoidCalibratedClassifier
        The fitted, calibrated model.
    feature_names : sequence of str
        Input column order; stored as ``feature_names`` (JSON list) and ``feature_hash``.
    threshold : float
        Decision threshold stored as metadata and used by the ``label`` output.
    metadata : Mapping
        Further metadata_props (model_id, spec_name, product_group, cutoffs, ...). Values that
        are not strings are stored as JSON.
    """
    onx = _convert_base(model.estimator, len(feature_names))
    onx = _append_calibration(
        onx,
        coef=model.coef_,
        intercept=model.intercept_,
        eps=model.eps,
        threshold=threshold,
    )
    props = {
        **{k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()},
        "feature_names": json.dumps(list(feature_names)),
        "feature_hash": feature_hash(feature_names),
        "threshold": repr(float(threshold)),
        "input_name": INPUT_NAME,
        "positive_class_index": "1",
        "library_versions": json.dumps(library_versions()),
    }
    helper.set_model_props(onx, props)
    onx.producer_name = "propensity"
    onnx.checker.check_model(onx)
    return onx.SerializeToString()


def onnx_predict_proba(onnx_bytes: bytes, X: np.ndarray) -> np.ndarray:
    """Probabilities [N, 2] from onnxruntime for a float32 matrix."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    return session.run([PROBABILITIES], {INPUT_NAME: np.ascontiguousarray(X, np.float32)})[0]


def check_parity(
    onnx_bytes: bytes,
    model,
    X: np.ndarray,
    *,
    model_id: str,
    tolerance: float = PARITY_TOLERANCE,
    expected: np.ndarray | None = None,
) -> float:
    """Compare onnxruntime with scikit-learn ``predict_proba`` on `X` (or with `expected`, the
    positive-class probabilities ``model.predict_proba(X)[:, 1]`` already computed).

    Returns
    -------
    float
        The maximum absolute difference.

    Raises
    ------
    ParityError
        When the difference exceeds `tolerance` or the ONNX model cannot be run.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    try:
        got = onnx_predict_proba(onnx_bytes, X)
    except Exception as exc:
        raise ParityError(
            f"model {model_id}: the ONNX export cannot be run by onnxruntime ({exc}); "
            "the model was not registered"
        ) from exc
    if expected is None:
        expected = model.predict_proba(X)
    else:
        q = np.asarray(expected, dtype=np.float64)
        expected = np.column_stack([1.0 - q, q])
    if got.shape != expected.shape:
        raise ParityError(
            f"model {model_id}: ONNX probabilities have shape {got.shape}, scikit-learn "
            f"{expected.shape}; the model was not registered"
        )
    diff = np.abs(got.astype(np.float64) - expected)
    worst = float(np.nanmax(diff)) if diff.size else 0.0
    if not np.isfinite(diff).all():
        worst = float("inf")
    if worst > tolerance:
        row = int(np.nanargmax(diff.max(axis=1))) if np.isfinite(worst) else -1
        raise ParityError(
            f"model {model_id}: ONNX and scikit-learn probabilities differ by up to {worst:.3g} "
            f"(tolerance {tolerance:g}) on {len(X)} test rows (worst row {row}); the model was "
            "not registered"
        )
    return worst


def read_metadata(onnx_bytes: bytes) -> dict[str, str]:
    """The metadata_props of an ONNX model as a dict of strings."""
    model = onnx.load_model_from_string(onnx_bytes)
    return {p.key: p.value for p in model.metadata_props}
