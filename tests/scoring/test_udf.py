"""The DuckDB UDFs registered by the dbt plugin, used from plain SQL."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import onnxruntime as ort
import pytest

from scoring.dbt_plugin import Plugin
from tests.scoring.scoring_fixtures import TinyModel, write_features, write_registry

LOAD = """
select propensity_load_model(registry.model_id, registry.onnx_model, registry.onnx_sha256)
from ml.model_aliases as aliases
inner join ml.model_registry as registry on aliases.model_id = registry.model_id
where aliases.alias = 'champion'
order by registry.model_id
"""


@pytest.fixture()
def con(hgb_model: TinyModel, lr_model: TinyModel):
    connection = duckdb.connect()
    Plugin(name="scoring", plugin_config={"intra_op_threads": 1}).configure_connection(connection)
    write_registry(connection, [hgb_model, lr_model])
    import datetime as dt

    write_features(connection, as_of_date=dt.date(2025, 1, 1), customers=3000)
    yield connection
    connection.close()


def test_udf_scores_in_plain_sql(con, hgb_model: TinyModel, lr_model: TinyModel) -> None:
    described = [json.loads(r[0]) for r in con.execute(LOAD).fetchall()]
    assert [d["model_id"] for d in described] == ["any_hgb_v1", "wine_lr_v1"]
    assert described[1]["feature_names"] == lr_model.feature_names
    for model in (hgb_model, lr_model):
        cols = ", ".join(f'"{c}"' for c in model.feature_names)
        rows = con.execute(
            f"select [{cols}]::float[4], propensity_score(?, [{cols}]::float[4]) "
            "from marts.fct_scoring_features where product_group = ? order by customer_id",
            [model.model_id, model.product_group],
        ).fetchall()
        assert len(rows) == 3000  # more than one 2,048-row chunk
        X = np.array([r[0] for r in rows], dtype=np.float32)
        session = ort.InferenceSession(model.onnx_bytes, providers=["CPUExecutionProvider"])
        direct = session.run(["probabilities"], {"features": X})[0][:, 1]
        assert np.abs(np.array([r[1] for r in rows]) - direct).max() < 1e-6
    # one query mixing both models
    mixed = con.execute(
        "select count(*), count(distinct round(s, 6)) from (select propensity_score("
        "case when customer_id % 2 = 0 then 'any_hgb_v1' else 'wine_lr_v1' end, "
        "[spend_90d, order_count_30d, days_since_last_order, is_vip]::float[4]) as s "
        "from marts.fct_scoring_features)"
    ).fetchall()[0]
    assert mixed[0] == 6000 and mixed[1] > 100


def test_udf_refuses_tampered_bytes_nulls_and_unknown_models(con) -> None:
    con.execute(
        "update ml.model_registry set onnx_model = onnx_model || '\\x00'::blob "
        "where model_id = 'wine_lr_v1'"
    )
    with pytest.raises(duckdb.Error, match=r"ModelIntegrityError: model 'wine_lr_v1'.*sha256"):
        con.execute(LOAD).fetchall()
    with pytest.raises(duckdb.Error, match="'wine_lr_v1' is not loaded"):
        con.execute("select propensity_score('wine_lr_v1', [1, 2, 3, 4]::float[4])").fetchall()
    with pytest.raises(duckdb.Error, match=r"null value in feature 1 \('order_count_30d'\)"):
        con.execute("select propensity_score('any_hgb_v1', [1, null, 3, 4]::float[4])").fetchall()
    with pytest.raises(duckdb.Error, match="expected 4"):
        con.execute("select propensity_score('any_hgb_v1', [1, 2, 3]::float[3])").fetchall()
    assert con.execute("select propensity_score('any_hgb_v1', [1, 2, 3, 4])").fetchall()[0][0] > 0


def test_plugin_config_is_validated() -> None:
    from scoring import PluginConfigError

    with pytest.raises(PluginConfigError, match="intra_op_threads"):
        Plugin(name="scoring", plugin_config={"intra_op_threads": "two"})
