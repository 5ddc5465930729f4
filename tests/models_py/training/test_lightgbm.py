"""The optional LightGBM candidate (``pip install .[lightgbm]``): trained on a small table,
converted with onnxmltools, through the parity gate, registered, and re-scored from the registry's
ONNX bytes with the same test AUC."""

from __future__ import annotations

import json
from contextlib import closing

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from models_py import parse_specs, train
from models_py._warehouse import connect
from models_py.training._export import onnx_predict_proba, read_metadata
from tests.models_py.training.training_fixtures import FAST_SPEC, copy_warehouse, template_warehouse

pytest.importorskip("lightgbm", reason="optional extra: pip install .[lightgbm]")
pytest.importorskip("onnxmltools", reason="optional extra: pip install .[lightgbm]")

pytestmark = pytest.mark.filterwarnings("ignore:Field onnx.AttributeProto:DeprecationWarning")


def test_lightgbm_candidate_exports_passes_parity_and_registers(tmp_path_factory):
    settings = copy_warehouse(
        template_warehouse(tmp_path_factory), tmp_path_factory.mktemp("lgbm") / "wh.duckdb"
    )
    raw = yaml.safe_load(FAST_SPEC)
    spec = raw["specs"][0]
    spec["group"] = {"column": "product_group", "groups": ["sweets"]}
    spec["candidates"] = {
        "lightgbm": {"n_estimators": [40, 80], "num_leaves": [7], "min_child_samples": [40]}
    }
    report = train(settings, specs=parse_specs(raw))
    (result,) = report.results
    assert result.status == "registered", result.message
    assert result.algorithm == "lightgbm" and "-lgbm-" in result.model_id
    assert result.parity_max_abs_diff is not None and result.parity_max_abs_diff <= 1e-5
    assert result.promoted
    # The search ran over both configurations on the temporal folds.
    (cand,) = result.candidates
    assert cand.params["n_estimators"] in (40, 80) and cand.search_auc is not None

    with closing(connect(settings.warehouse, read_only=True)) as con:
        onnx_bytes, features, hyper = con.execute(
            "select onnx_model, feature_names, hyperparameters from ml.model_registry "
            "where model_id = ?",
            [result.model_id],
        ).fetchone()
        features = json.loads(features)
        cols = ", ".join(f'"{f}"' for f in features)
        rows = con.execute(
            f"select label, {cols} from marts.fct_training_examples "
            "where product_group = 'sweets' and split = 'test' order by customer_id"
        ).fetchall()
        auc = con.execute(
            "select roc_auc from ml.model_metrics where model_id = ? and split = 'test'",
            [result.model_id],
        ).fetchone()[0]
    assert json.loads(hyper)["num_leaves"] == 7
    assert read_metadata(bytes(onnx_bytes))["algorithm"] == "lightgbm"
    y = np.array([r[0] for r in rows])
    X = np.array([r[1:] for r in rows], dtype=np.float32)
    p = onnx_predict_proba(bytes(onnx_bytes), X)[:, 1]
    # The registered ONNX model reproduces the registered test AUC on the same rows.
    assert roc_auc_score(y, p) == pytest.approx(auc, abs=1e-6)
    assert auc > 0.6


def test_lightgbm_thresholds_are_made_float32_exact_without_changing_predictions():
    """LightGBM's double thresholds sit between float32 values; the ONNX tree compares in float32.
    `fit_estimator` snaps them to float32 so the export routes every float32 input the same way."""
    from models_py.training._candidates import build_estimator, fit_estimator

    rng = np.random.default_rng(0)
    X = (1e4 + rng.normal(size=(4000, 3)) * 50).astype(np.float32)  # midpoints not float32
    y = (rng.random(4000) < 1 / (1 + np.exp(-(X[:, 0] - 1e4) / 30))).astype(int)
    params = {"n_estimators": 30, "num_leaves": 15}
    plain = build_estimator("lightgbm", params, n_features=3)
    plain.fit(X, y)
    snapped = fit_estimator(build_estimator("lightgbm", params, n_features=3), X, y)
    thresholds = np.array(
        [
            float(v)
            for line in snapped.booster_.model_to_string().splitlines()
            if line.startswith("threshold=")
            for v in line.split("=", 1)[1].split()
        ]
    )
    raw = np.array(
        [
            float(v)
            for line in plain.booster_.model_to_string().splitlines()
            if line.startswith("threshold=")
            for v in line.split("=", 1)[1].split()
        ]
    )
    assert (raw.astype(np.float32).astype(np.float64) != raw).any()  # the problem exists here
    assert (thresholds.astype(np.float32).astype(np.float64) == thresholds).all()
    np.testing.assert_array_equal(snapped.predict_proba(X), plain.predict_proba(X))
