"""The registry in schema `ml`: tables from the dbt macro, registration in one transaction,
champion/challenger aliases, promotion with the margin rule on the same test rows, promote and
rollback with their history, and the CLI commands."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import yaml

from models_py._errors import WarehouseError
from models_py._warehouse import connect
from models_py.cli import main
from models_py.registry import (
    Evaluation,
    ModelRecord,
    RegistryError,
    alias_history,
    get_alias,
    list_models,
    promote_model,
    register_model,
    require_ml_tables,
    rollback_champion,
)
from models_py.training._candidates import SigmoidCalibratedClassifier, build_estimator
from models_py.training._examples import Examples
from models_py.training._export import export_onnx, feature_hash
from models_py.training._specs import DEFAULT_SPEC_PATH, TrainingTarget, parse_spec
from models_py.training._train import _promotion_decision
from tests.models_py.training.training_fixtures import copy_warehouse, template_warehouse

pytestmark = pytest.mark.filterwarnings("ignore:Field onnx.AttributeProto:DeprecationWarning")
FEATURES = ("x0", "x1", "x2")


@pytest.fixture
def settings(tmp_path_factory, tmp_path):
    return copy_warehouse(template_warehouse(tmp_path_factory), tmp_path / "registry.duckdb")


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(3000, 3)).astype(np.float32)
    p = 1 / (1 + np.exp(-(1.5 * X[:, 0] - X[:, 1] - 1)))
    y = (rng.random(3000) < p).astype(np.int8)
    return X, y, p


def onnx_model(X, y, *, columns=(0, 1, 2)):
    """A small calibrated logistic regression (on a subset of columns) exported to ONNX."""
    est = build_estimator("logistic_regression", {}, n_features=3).fit(X[:1000], y[:1000])
    if columns != (0, 1, 2):
        mask = np.zeros_like(X[:1000])
        mask[:, list(columns)] = X[:1000][:, list(columns)]
        est.fit(mask, y[:1000])
    model = SigmoidCalibratedClassifier(est).fit(X[1000:2000], y[1000:2000])
    return export_onnx(model, feature_names=FEATURES, threshold=0.5, metadata={}), model


def record(model_id, blob, *, group="wine", features=FEATURES):
    return ModelRecord(
        model_id=model_id,
        spec_name="purchase_propensity",
        product_group=group,
        algorithm="logistic_regression",
        hyperparameters={"C": 1.0},
        trained_at=dt.datetime(2024, 7, 1),
        training_relation="marts.fct_training_examples",
        train_cutoffs=["2024-01-01"],
        validation_cutoffs=["2024-05-01"],
        test_cutoffs=["2024-06-01"],
        feature_names=features,
        feature_hash=feature_hash(features),
        threshold=0.5,
        threshold_rule="max_f1",
        metrics={"test": {"roc_auc": 0.7}},
        onnx_model=blob,
        library_versions={"scikit-learn": "x"},
    )


def evaluation(auc=0.7):
    return Evaluation(
        metrics=[{"split": "test", "examples": 10, "roc_auc": auc}],
        lift=[{"split": "test", "decile": 1, "customers": 1, "positives": 1, "lift": 2.0}],
        calibration=[{"split": "test", "bin": 1, "examples": 3, "observed_rate": 0.3}],
        importance=[{"feature_name": "x0", "importance_mean": 0.1, "importance_rank": 1}],
    )


def test_missing_tables_say_run_dbt_build(tmp_path):
    con = connect(tmp_path / "empty.duckdb")
    with pytest.raises(WarehouseError, match="run dbt build first"):
        require_ml_tables(con)
    with pytest.raises(WarehouseError, match=r"ml\.model_registry"):
        list_models(con)
    con.close()


def test_dbt_macro_creates_the_tables(settings):
    con = connect(settings.warehouse, read_only=True)
    cols = {
        r[0]: r[1]
        for r in con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'ml' and table_name = 'model_registry'"
        ).fetchall()
    }
    con.close()
    assert cols["onnx_model"] == "BLOB"
    assert cols["trained_at"] == "TIMESTAMP"
    assert {"model_id", "feature_hash", "threshold", "metrics", "onnx_sha256"} <= set(cols)


def test_promote_rollback_and_history(settings, problem):
    X, y, _ = problem
    blob, _ = onnx_model(X, y)
    con = connect(settings.warehouse)
    register_model(con, record("m_a", blob), evaluation(), promote=True, reason="first")
    register_model(con, record("m_b", blob), evaluation(), promote=True, reason="better")
    register_model(con, record("m_c", blob), evaluation(), promote=False, reason="worse")
    assert get_alias(con, "wine", "champion") == "m_b"
    assert get_alias(con, "wine", "challenger") == "m_c"
    stored = con.execute(
        "select onnx_sha256, octet_length(onnx_model) from ml.model_registry where model_id='m_a'"
    ).fetchone()
    assert stored[1] == len(blob) and len(stored[0]) == 64

    assert promote_model(con, "m_c", actor="ana", reason="campaign test") == "m_b"
    assert get_alias(con, "wine", "champion") == "m_c"
    assert rollback_champion(con, "wine", actor="ana") == "m_b"
    assert rollback_champion(con, "wine") == "m_a"
    with pytest.raises(RegistryError, match="nothing to roll back"):
        rollback_champion(con, "wine")
    with pytest.raises(RegistryError, match="has no champion"):
        rollback_champion(con, "sweets")
    with pytest.raises(RegistryError, match=r"'nope' is not in ml\.model_registry"):
        promote_model(con, "nope")

    history = [
        (h["alias"], h["model_id"], h["previous_model_id"], h["action"])
        for h in alias_history(con, "wine")
    ]
    assert history == [
        ("challenger", "m_a", None, "register"),
        ("champion", "m_a", None, "auto_promote"),
        ("challenger", "m_b", "m_a", "register"),
        ("champion", "m_b", "m_a", "auto_promote"),
        ("challenger", "m_c", "m_b", "register"),
        ("champion", "m_c", "m_b", "promote"),
        ("champion", "m_b", "m_c", "rollback"),
        ("champion", "m_a", "m_b", "rollback"),
    ]
    who = alias_history(con, "wine")[5]
    assert (who["changed_by"], who["reason"]) == ("ana", "campaign test")
    listed = {m["model_id"]: m["aliases"] for m in list_models(con, product_group="wine")}
    assert listed == {"m_a": "champion", "m_b": "", "m_c": "challenger"}
    # one alias row per (group, alias)
    assert con.execute("select count(*) from ml.model_aliases").fetchone()[0] == 2
    con.close()


def test_failed_registration_writes_nothing(settings, problem):
    X, y, _ = problem
    blob, _ = onnx_model(X, y)
    con = connect(settings.warehouse)
    register_model(con, record("m_a", blob), evaluation(), promote=True, reason="first")
    before = {
        t: con.execute(f"select count(*) from ml.{t}").fetchone()[0]
        for t in ("model_registry", "model_metrics", "lift_by_decile", "model_aliases")
    }
    with pytest.raises(RegistryError, match="already registered"):
        register_model(con, record("m_a", blob), evaluation(), promote=True, reason="again")
    bad = evaluation()
    bad.importance = [{"feature_name": "x0", "no_such_column": 1.0}]  # fails after the others
    # A column the table lacks (e.g. a registry created by an older version) is a named error
    # that names the upgrade step, raised inside the transaction: nothing is written.
    with pytest.raises(WarehouseError, match=r"no column no_such_column.*propensity build"):
        register_model(con, record("m_b", blob), bad, promote=True, reason="broken")
    after = {t: con.execute(f"select count(*) from ml.{t}").fetchone()[0] for t in before}
    assert after == before
    assert get_alias(con, "wine", "champion") == "m_a"
    con.close()


def _target(margin):
    raw = yaml.safe_load(DEFAULT_SPEC_PATH.read_text())["specs"][0]
    raw["promotion"] = {"metric": "roc_auc", "margin": margin}
    return TrainingTarget(
        spec=parse_spec(raw),
        product_group="wine",
        group_value="wine",
        feature_names=FEATURES,
        categorical=(),
    )


def _examples(X, y):
    n = len(y)
    return Examples(
        X=X,
        y=y,
        cutoff=np.full(n, np.datetime64("2024-06-01", "D")),
        split=np.array(["test"] * n, dtype=object),
        oracle=None,
        feature_names=FEATURES,
        cutoffs_by_split={"train": [], "validation": [], "test": ["2024-06-01"]},
    )


def test_promotion_margin_on_the_same_test_rows(settings, problem):
    from sklearn.metrics import roc_auc_score

    X, y, p_true = problem
    # The champion only sees x1 (weak); the challenger's scores are the true probabilities.
    blob, weak = onnx_model(X, y, columns=(1,))
    con = connect(settings.warehouse)
    register_model(con, record("weak", blob), evaluation(), promote=True, reason="first")
    ex = _examples(X[2000:], y[2000:])
    champ_auc = roc_auc_score(y[2000:], weak.predict_proba(X[2000:])[:, 1])
    true_auc = roc_auc_score(y[2000:], p_true[2000:])
    assert true_auc > champ_auc + 0.05

    promote, reason, detail = _promotion_decision(con, _target(0.005), ex, p_true[2000:])
    assert promote and "beats champion weak" in reason
    assert detail["champion"] == pytest.approx(champ_auc, abs=1e-4)
    promote, reason, _ = _promotion_decision(con, _target(0.5), ex, p_true[2000:])
    assert not promote and "does not beat champion weak" in reason and "margin 0.5" in reason
    # Equal scores never pass a positive margin.
    same = weak.predict_proba(X[2000:])[:, 1]
    assert not _promotion_decision(con, _target(0.001), ex, same)[0]
    assert _promotion_decision(con, _target(0.0), ex, same)[0]
    # A champion needing a feature the table no longer has is not compared.
    con.execute("update ml.model_registry set feature_names = '[\"gone\"]'")
    promote, reason, _ = _promotion_decision(con, _target(0.0), ex, p_true[2000:])
    assert not promote and "gone" in reason
    con.close()


def test_cli_models_commands(settings, problem, capsys):
    X, y, _ = problem
    blob, _ = onnx_model(X, y)
    con = connect(settings.warehouse)
    register_model(con, record("m_a", blob), evaluation(), promote=True, reason="first")
    register_model(con, record("m_b", blob), evaluation(), promote=False, reason="worse")
    con.close()
    wh = ["--warehouse", str(settings.warehouse)]
    assert main([*wh, "models", "list"]) == 0
    out = capsys.readouterr().out
    assert "m_a" in out and "champion" in out
    assert main([*wh, "models", "promote", "m_b", "--reason", "test"]) == 0
    assert "m_b is now champion (previous: m_a)" in capsys.readouterr().out
    assert main([*wh, "models", "rollback", "wine"]) == 0
    assert "champion is m_a again" in capsys.readouterr().out
    assert main([*wh, "models", "rollback", "wine"]) == 1
    assert "nothing to roll back" in capsys.readouterr().err


def test_ensure_ml_tables_adds_columns_to_older_tables(settings):
    """A registry created before a column existed gets it from `ensure_ml_tables` (the macro every
    dbt run calls), keeping its rows (registering before the upgrade is a named error, see
    test_failed_registration_writes_nothing)."""
    from models_py._dbt import run_dbt

    con = connect(settings.warehouse)
    con.execute("alter table ml.model_metrics drop column observable_oracle_roc_auc")
    con.execute(
        "insert into ml.model_metrics (model_id, split, roc_auc) values ('old_model', 'test', 0.7)"
    )
    con.close()
    run_dbt(settings, ["run-operation", "ensure_ml_tables"])
    con = connect(settings.warehouse, read_only=True)
    try:
        rows = con.execute(
            "select model_id, roc_auc, observable_oracle_roc_auc from ml.model_metrics"
        ).fetchall()
    finally:
        con.close()
    assert rows == [("old_model", 0.7, None)]


def test_registry_schema_is_one_setting():
    """dbt's var `registry_schema` (sources, the DDL macro, the scoring model) defaults to the
    schema every Python statement names through `ml_table`."""
    import yaml

    from models_py._settings import DBT_PROJECT_DIR
    from models_py.registry import SCHEMA, ml_table

    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    assert project["vars"]["registry_schema"] == SCHEMA
    assert ml_table("model_registry") == f'"{SCHEMA}"."model_registry"'
