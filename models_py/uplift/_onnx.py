"""ONNX export of an uplift model set, one model per part, with a parity gate.

Contract of every part (the conventions of models_py.training._export):

- one input ``features``: float32 ``[None, n_features]``, columns in the order of the
  ``feature_names`` metadata entry;
- one output ``prediction``: float32 ``[N]``: P(class 1) for a classifier part (zipmap off,
  column 1 of the converter's probabilities), the prediction for a regressor part;
- opset pinned to `TARGET_OPSET`; metadata_props name the part (``part_name``, ``part_role``,
  ``arm``) and the model set (``uplift_kind``, ``outcome``, ``control_arm``, ``treated_arms``),
  so that `predict_onnx` can recombine the parts with `combine_part_outputs` from the ONNX
  files alone, as in-warehouse scoring would.

Parity tolerance: a classifier part may differ from scikit-learn by at most `PARITY_TOLERANCE`
(1e-5, absolute: probabilities are in [0, 1]); a regressor part by at most
``PARITY_TOLERANCE * max(1, largest |sklearn prediction| on the sample)``: absolute for
predictions up to 1 in size, relative to the part's scale beyond. float32 keeps about 7
significant digits of every term a tree ensemble or linear model adds up, so a revenue model
predicting hundreds cannot match to 1e-5 absolutely, not even where a prediction is near 0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.base import is_classifier

from models_py.training._candidates import final_classifier
from models_py.training._export import (
    INPUT_NAME,
    PARITY_TOLERANCE,
    TARGET_OPSET,
    ParityError,
    feature_hash,
    library_versions,
)
from models_py.uplift._errors import UpliftInputError
from models_py.uplift._learners import UpliftModelSet, combine_part_outputs, part_output

OUTPUT_NAME = "prediction"


def _convert(estimator, n_features: int) -> onnx.ModelProto:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    classifier = is_classifier(estimator)
    options = {id(final_classifier(estimator)): {"zipmap": False}} if classifier else None
    return convert_sklearn(
        estimator,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        options=options,
        target_opset=dict(TARGET_OPSET),
    )


def _single_output(model: onnx.ModelProto, *, classifier: bool) -> onnx.ModelProto:
    """Replace the converter's outputs with one ``prediction`` [N]: column 1 of the
    probabilities for a classifier, the flattened prediction for a regressor."""
    graph = model.graph
    names = [o.name for o in graph.output]
    source = names[0]
    if classifier:
        source = "probabilities" if "probabilities" in names else names[-1]
    flat = numpy_helper.from_array(np.array([-1], dtype=np.int64), "part_flat")
    graph.initializer.append(flat)
    nodes = []
    if classifier:
        index = numpy_helper.from_array(np.array([1], dtype=np.int64), "part_positive_index")
        graph.initializer.append(index)
        nodes.append(helper.make_node("Gather", [source, index.name], ["part_p1"], axis=1))
        source = "part_p1"
    nodes.append(helper.make_node("Reshape", [source, flat.name], [OUTPUT_NAME]))
    for i, node in enumerate(nodes):
        node.name = f"part_output_{i}_{node.op_type}"
    graph.node.extend(nodes)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None]))
    return model


def _metadata(model_set: UpliftModelSet, name: str, extra: Mapping[str, Any]) -> dict[str, str]:
    role, arm = name.split("__", 1)
    props = {
        **{k: v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()},
        "uplift_kind": model_set.kind,
        "outcome": model_set.outcome,
        "outcome_type": model_set.outcome_type,
        "control_arm": model_set.control_arm,
        "treated_arms": json.dumps(list(model_set.treated_arms)),
        "part_name": name,
        "part_role": role,
        "arm": arm,
        "part_output": "probability of class 1"
        if is_classifier(model_set.parts[name])
        else "regression prediction",
        "feature_names": json.dumps(list(model_set.feature_names)),
        "feature_hash": feature_hash(model_set.feature_names),
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "library_versions": json.dumps(library_versions()),
    }
    return props


def onnx_part_predict(onnx_bytes: bytes, X: np.ndarray) -> np.ndarray:
    """The ``prediction`` output of one part for a float32 matrix."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(X, np.float32)})[0]


def check_part_parity(
    onnx_bytes: bytes, estimator, X: np.ndarray, *, part: str, tolerance: float = PARITY_TOLERANCE
) -> float:
    """Compare onnxruntime with scikit-learn on `X` (see the module docstring's tolerance).

    Returns
    -------
    float
        The largest difference over the tolerance's scale (1, or the largest prediction of a
        regressor part above 1).

    Raises
    ------
    ParityError
        When a row differs beyond the tolerance, or the ONNX part cannot be run.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    try:
        got = onnx_part_predict(onnx_bytes, X).astype(np.float64)
    except Exception as exc:
        raise ParityError(
            f"uplift part {part}: onnxruntime cannot run its ONNX export ({exc}); nothing was "
            "exported"
        ) from exc
    expected = part_output(estimator, X)
    scale = 1.0
    if not is_classifier(estimator) and expected.size:
        scale = max(1.0, float(np.abs(expected).max()))
    if got.shape != expected.shape:
        raise ParityError(
            f"uplift part {part}: ONNX gives {got.shape} values, scikit-learn {expected.shape}; "
            "nothing was exported"
        )
    error = np.abs(got - expected) / scale
    if not np.isfinite(error).all() or (error.size and error.max() > tolerance):
        row = int(np.nanargmax(np.where(np.isfinite(error), error, np.inf)))
        raise ParityError(
            f"uplift part {part}: ONNX {got[row]:.9g} vs scikit-learn {expected[row]:.9g} on row "
            f"{row} of {len(X):,} (tolerance {tolerance:g}"
            f"{'' if scale == 1 else f' x {scale:.6g}, the largest prediction'}); nothing was "
            "exported"
        )
    return float(error.max()) if error.size else 0.0


def export_parts(
    model_set: UpliftModelSet,
    X_sample,
    *,
    metadata: Mapping[str, Any] | None = None,
    tolerance: float = PARITY_TOLERANCE,
) -> dict[str, bytes]:
    """One ONNX model per part, each checked against scikit-learn on `X_sample`.

    Parameters
    ----------
    X_sample : array-like or DataFrame
        Rows to check parity on (a few thousand held-out rows are plenty).
    metadata : Mapping, optional
        Further metadata_props for every part (model id, experiment, ...); non-strings are
        stored as JSON.

    Raises
    ------
    ParityError
        When any part disagrees beyond the tolerance; no part is returned then.
    """
    X = model_set.features(X_sample)
    if X.shape[0] == 0:
        raise UpliftInputError("X_sample has no row: parity cannot be checked")
    exported = {}
    for name, estimator in model_set.parts.items():
        model = _single_output(_convert(estimator, X.shape[1]), classifier=is_classifier(estimator))
        helper.set_model_props(model, _metadata(model_set, name, metadata or {}))
        model.producer_name = "propensity"
        onnx.checker.check_model(model)
        exported[name] = model.SerializeToString()
        check_part_parity(exported[name], estimator, X, part=name, tolerance=tolerance)
    return exported


def _props(onnx_bytes: bytes) -> dict[str, str]:
    model = onnx.load_model_from_string(onnx_bytes)
    return {p.key: p.value for p in model.metadata_props}


def predict_onnx(onnx_parts: Mapping[str, bytes], X) -> dict[str, np.ndarray]:
    """Outcomes and CATEs from the ONNX parts alone, recombined exactly as
    `UpliftModelSet.predict` does (`combine_part_outputs`), reading the model set's structure
    from the parts' metadata. `X` is a float matrix in the ``feature_names`` order."""
    if not onnx_parts:
        raise UpliftInputError("no ONNX part given")
    props = {name: _props(b) for name, b in onnx_parts.items()}
    first = next(iter(props.values()))
    for name, p in props.items():
        if (p.get("uplift_kind"), p.get("control_arm"), p.get("treated_arms")) != (
            first.get("uplift_kind"),
            first.get("control_arm"),
            first.get("treated_arms"),
        ):
            raise UpliftInputError(f"ONNX part {name} belongs to another uplift model set")
    X = np.ascontiguousarray(X, dtype=np.float32)
    outputs = {p["part_name"]: onnx_part_predict(onnx_parts[n], X) for n, p in props.items()}
    return combine_part_outputs(
        first["uplift_kind"],
        first["control_arm"],
        json.loads(first["treated_arms"]),
        outputs,
    )
