"""fct_propensity_scores built by dbt on a hand-made warehouse through the scoring plugin."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import numpy as np
import onnxruntime as ort
import pytest

from models_py._dbt import dbt_target_path, run_dbt
from models_py._settings import Settings
from tests.scoring.scoring_fixtures import (
    FEATURES,
    TinyModel,
    write_features,
    write_profiles,
    write_registry,
)

pytestmark = pytest.mark.slow

SELECT = ["run", "--select", "fct_propensity_scores"]
DAY1 = dt.date(2025, 1, 1)
DAY2 = dt.date(2025, 2, 1)


def _settings(tmp_path: Path) -> Settings:
    return Settings(warehouse=tmp_path / "wh.duckdb", profiles_dir=write_profiles(tmp_path / "p"))


def _failure_message(settings: Settings) -> str:
    """The full message dbt recorded for the failing node (run_results.json)."""
    results = dbt_target_path(settings)
    data = json.loads((results / "run_results.json").read_text())
    return "\n".join(r.get("message") or "" for r in data["results"] if r["status"] == "error")


def _log(settings: Settings) -> str:
    path = dbt_target_path(settings).parent / "logs" / "dbt.log"
    return path.read_text() if path.exists() else ""


def _scores(settings: Settings) -> list[tuple]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(
            "select customer_id, product_group, as_of_date, model_id, score, decile, scored_at "
            "from marts.fct_propensity_scores order by all"
        ).fetchall()
    finally:
        con.close()


def _ntile_deciles(rows: list[tuple]) -> dict[tuple, int]:
    """ntile(10) per product group and cutoff by score desc, customer_id asc, computed here."""
    out: dict[tuple, int] = {}
    for key in {(r[1], r[2]) for r in rows}:
        part = sorted((r for r in rows if (r[1], r[2]) == key), key=lambda r: (-r[4], r[0]))
        base, rem = divmod(len(part), 10)
        for rank, r in enumerate(part):
            big = rem * (base + 1)
            out[(r[0], r[1], r[2])] = (
                rank // (base + 1) + 1 if rank < big else rem + (rank - big) // base + 1
            )
    return out


def _fail(settings: Settings) -> str:
    outcome = run_dbt(settings, SELECT, raise_on_failure=False)
    assert not outcome.success
    assert outcome.statuses.get("fct_propensity_scores") == "error"
    return _failure_message(settings)


def _direct_scores(model: TinyModel, settings: Settings) -> dict[int, float]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        cols = ", ".join(f'"{c}"' for c in model.feature_names)
        rows = con.execute(
            f"select customer_id, {cols} from marts.fct_scoring_features "
            "where product_group = ? order by customer_id",
            [model.product_group],
        ).fetchall()
    finally:
        con.close()
    X = np.array([r[1:] for r in rows], dtype=np.float32)
    session = ort.InferenceSession(model.onnx_bytes, providers=["CPUExecutionProvider"])
    proba = session.run(["probabilities"], {"features": X})[0][:, 1]
    return {r[0]: float(p) for r, p in zip(rows, proba, strict=True)}


def test_scores_incremental_history_and_failures_keep_previous_scores(
    tmp_path: Path, hgb_model: TinyModel, lr_model: TinyModel
) -> None:
    settings = _settings(tmp_path)
    con = duckdb.connect(str(settings.warehouse))
    write_registry(con, [hgb_model, lr_model])
    # the champion of another spec (a bring-your-own table): not scored here, never loaded (its
    # bytes would fail the sha256 check)
    con.execute(
        "insert into ml.model_registry (model_id, spec_name, product_group, feature_names, "
        "onnx_model, onnx_sha256, training_relation) values ('byo', 'campaign', 'response', "
        "'[\"income\"]', 'not onnx'::blob, 'x', 'datasets.marketing_campaign')"
    )
    con.execute("insert into ml.model_aliases values ('response', 'champion', 'byo', now())")
    write_features(con, as_of_date=DAY1)
    con.close()

    # 0. a profile without the scoring plugin: a plain error saying how to add it
    bare = tmp_path / "bare"
    bare.mkdir()
    plugin_profile = (settings.profiles_dir / "profiles.yml").read_text()
    (bare / "profiles.yml").write_text(plugin_profile.split("      plugins:")[0])
    without_plugin = Settings(warehouse=settings.warehouse, profiles_dir=bare)
    assert "Add the scoring plugin" in _fail(without_plugin)
    assert "scoring.dbt_plugin" in _failure_message(without_plugin)

    # 1. first cutoff: one row per customer x group, deciles 1..10, scores = onnxruntime's (the
    #    wine model lists its features in another order than the table: order follows the model)
    assert lr_model.feature_names != FEATURES
    run_dbt(settings, SELECT)
    first = _scores(settings)
    assert len(first) == 100
    assert {(r[0], r[1]) for r in first} == {(c, g) for c in range(1, 51) for g in ("any", "wine")}
    for model in (hgb_model, lr_model):
        rows = [r for r in first if r[1] == model.product_group]
        assert {r[3] for r in rows} == {model.model_id}
        assert sorted({r[5] for r in rows}) == list(range(1, 11))
        direct = _direct_scores(model, settings)
        assert max(abs(r[4] - direct[r[0]]) for r in rows) < 1e-6
        # decile 1 holds the highest scores
        top = min(r[4] for r in rows if r[5] == 1)
        assert all(r[4] <= top for r in rows if r[5] > 1)

    # 2. same cutoff again: replaced, not appended
    run_dbt(settings, SELECT)
    again = _scores(settings)
    assert [r[:6] for r in again] == [r[:6] for r in first]
    assert again[0][6] >= first[0][6]

    # 3. a second cutoff keeps the first as history
    con = duckdb.connect(str(settings.warehouse))
    write_features(con, as_of_date=DAY2, seed=4, customers=57, tied=23)
    con.close()
    run_dbt(settings, SELECT)
    both = _scores(settings)
    assert len(both) == 214
    # deciles are exactly ntile(10) (uneven sizes, 24 tied scores across decile boundaries)
    second = [r for r in both if r[2] == DAY2]
    wine_scores = [r[4] for r in second if r[1] == "wine"]
    assert max(wine_scores.count(v) for v in wine_scores) >= 24
    expected = _ntile_deciles(second)
    assert {(r[0], r[1], r[2]): r[5] for r in second} == expected
    assert {(r[0], r[1], r[2]): r[5] for r in first} == _ntile_deciles(first)
    assert [r[:6] for r in both if r[2] == DAY1] == [r[:6] for r in first]
    assert sorted({r[5] for r in both if r[2] == DAY2 and r[1] == "any"}) == list(range(1, 11))

    # 4. a feature column dropped and another one mistyped: one error naming both columns and
    #    the models needing them; the scores table is untouched
    con = duckdb.connect(str(settings.warehouse))
    write_features(con, as_of_date=DAY2, seed=5, drop="days_since_last_order")
    con.execute("alter table marts.fct_scoring_features alter is_vip type varchar")
    con.close()
    message = _fail(settings)
    assert "column 'days_since_last_order' is missing" in message
    assert "column 'is_vip' has type" in message
    assert hgb_model.model_id in message and lr_model.model_id in message
    assert _scores(settings) == both

    # 6. a tampered ONNX blob: refused, naming the model, scores intact
    con = duckdb.connect(str(settings.warehouse))
    write_features(con, as_of_date=DAY2, seed=5)
    con.execute(
        "update ml.model_registry set onnx_model = onnx_model || '\\x00'::blob where model_id = ?",
        [lr_model.model_id],
    )
    con.close()
    message = _fail(settings)
    assert "ModelIntegrityError" in message and lr_model.model_id in message
    assert "sha256" in message
    assert _scores(settings) == both

    # 7. no champion at all: a plain warning, no rows deleted, the run succeeds (a fresh warehouse
    #    builds); with scoring_require_champion the same message is an error
    con = duckdb.connect(str(settings.warehouse))
    con.execute("delete from ml.model_aliases")
    con.close()
    outcome = run_dbt(
        settings, SELECT, dbt_vars={"scoring_require_champion": True}, raise_on_failure=False
    )
    assert not outcome.success
    message = _failure_message(settings)
    assert "no champion model in ml.model_aliases: run `propensity train` first" in message
    assert _scores(settings) == both
    log = _log(settings)
    run_dbt(settings, SELECT)
    new_log = _log(settings)[len(log) :]
    assert "no champion model in ml.model_aliases: run `propensity train` first" in new_log
    assert "(no scores built)" in new_log
    assert _scores(settings) == both
