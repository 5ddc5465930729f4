"""ONNX export of uplift parts: parity with scikit-learn for every learner and base, the part
contract, recombination from the ONNX parts alone, and the parity gate refusing a bad export."""

from __future__ import annotations

import json
from types import MappingProxyType

import numpy as np
import onnx
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression

from models_py.training._export import TARGET_OPSET
from models_py.uplift import (
    ParityError,
    UpliftInputError,
    UpliftModelSet,
    check_part_parity,
    export_parts,
    fit_dr_learner,
    fit_s_learner,
    fit_t_learner,
    fit_two_part,
    predict_onnx,
)
from tests.models_py.uplift.uplift_fixtures import synthetic

# skl2onnx passes booleans as ints to onnx.helper (not our code).
pytestmark = pytest.mark.filterwarnings("ignore:Field onnx.AttributeProto:DeprecationWarning")

LEARNERS = {
    "t_learner": lambda d, base: fit_t_learner(
        d.X, d.arm, d.visit, control_arm="control", base=base
    ),
    "dr_learner": lambda d, base: fit_dr_learner(
        d.X, d.arm, d.visit, control_arm="control", base=base, n_folds=3
    ),
    "s_learner": lambda d, base: fit_s_learner(d.X, d.arm, d.visit, control_arm="control"),
    "two_part": lambda d, base: fit_two_part(d.X, d.arm, d.spend, control_arm="control", base=base),
    "t_learner_spend": lambda d, base: fit_t_learner(
        d.X, d.arm, d.spend, control_arm="control", base=base, outcome="spend"
    ),
}


@pytest.fixture(scope="module")
def data():
    return synthetic(6_000, 5)


@pytest.fixture(scope="module")
def sample():
    return synthetic(2_000, 6).X


@pytest.mark.parametrize("base", ["hgb", "linear"])
@pytest.mark.parametrize("learner", sorted(LEARNERS))
def test_parity_and_recombination(data, sample, learner, base):
    model_set = LEARNERS[learner](data, base)
    parts = export_parts(model_set, sample, metadata={"model_id": "test-1"})
    assert set(parts) == set(model_set.parts)
    expected = model_set.predict(sample)
    got = predict_onnx(parts, sample)
    assert set(got) == set(expected)
    # each part is within 1e-5 of scikit-learn (times the largest prediction of a regressor
    # part above 1); outcomes and CATEs combine two or four parts
    outputs = model_set.part_outputs(sample)
    scale = max(1.0, *(float(np.abs(v).max()) for v in outputs.values()))
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=0, atol=4e-5 * scale, err_msg=key)


def test_part_contract(data, sample):
    model_set = fit_t_learner(data.X, data.arm, data.visit, control_arm="control", base="linear")
    parts = export_parts(model_set, sample, metadata={"model_id": "test-1", "cutoffs": [1, 2]})
    model = onnx.load_model_from_string(parts["mu__arm_a"])
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.name == "features"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [0, 5]
    assert out.name == "prediction" and out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert len(out.type.tensor_type.shape.dim) == 1
    assert {o.domain: o.version for o in model.opset_import}.get("") == TARGET_OPSET[""]
    props = {p.key: p.value for p in model.metadata_props}
    assert props["part_name"] == "mu__arm_a" and props["part_role"] == "mu"
    assert props["arm"] == "arm_a" and props["uplift_kind"] == "t_learner"
    assert json.loads(props["treated_arms"]) == ["arm_a", "arm_b"]
    assert json.loads(props["feature_names"]) == ["x0", "x1", "x2", "x3", "x4"]
    assert props["part_output"] == "probability of class 1"
    assert props["model_id"] == "test-1" and json.loads(props["cutoffs"]) == [1, 2]


def test_parity_gate_refuses_a_wrong_export(data, sample):
    """Isotonic calibration converts wrongly in skl2onnx: the learners refuse it, and a model
    set built by hand with it is stopped by the parity gate."""
    rows = data.arm != "arm_b"
    calibrated = CalibratedClassifierCV(LogisticRegression(), method="isotonic", cv=3)
    calibrated.fit(data.X[rows].astype(np.float32), data.visit[rows])
    model_set = UpliftModelSet(
        kind="t_learner",
        outcome="visit",
        outcome_type="binary",
        control_arm="control",
        treated_arms=("arm_a",),
        feature_names=("x0", "x1", "x2", "x3", "x4"),
        parts=MappingProxyType({"mu__control": calibrated, "mu__arm_a": calibrated}),
        rows_per_arm=MappingProxyType({}),
    )
    with pytest.raises(ParityError, match=r"uplift part mu__control: .* nothing was exported"):
        export_parts(model_set, sample)


def test_check_part_parity_compares_the_right_model(data, sample):
    model_set = fit_t_learner(data.X, data.arm, data.visit, control_arm="control", base="linear")
    parts = export_parts(model_set, sample)
    X = sample.astype(np.float32)
    assert check_part_parity(parts["mu__arm_a"], model_set.parts["mu__arm_a"], X, part="a") < 1e-5
    with pytest.raises(ParityError, match="tolerance 1e-05"):
        check_part_parity(parts["mu__arm_a"], model_set.parts["mu__control"], X, part="a")
    with pytest.raises(ParityError, match="cannot run"):
        check_part_parity(b"not onnx", model_set.parts["mu__control"], X, part="a")


def test_predict_onnx_refuses_parts_of_two_model_sets(data, sample):
    t = fit_t_learner(data.X, data.arm, data.visit, control_arm="control", base="linear")
    dr = fit_dr_learner(
        data.X, data.arm, data.visit, control_arm="control", base="linear", n_folds=2
    )
    mixed = {**export_parts(t, sample[:100]), **export_parts(dr, sample[:100])}
    with pytest.raises(UpliftInputError, match="another uplift model set"):
        predict_onnx(mixed, sample)
    incomplete = export_parts(t, sample[:100])
    del incomplete["mu__control"]
    with pytest.raises(UpliftInputError, match="lack mu__control"):
        predict_onnx(incomplete, sample)
