"""Drift marts on a small generated warehouse: trained and scored at T0, then run by the daily
selector at T1 (14 days later) after a change to the raw customers. PSI and Jensen-Shannon
against an independent numpy computation on the same rows and edges, an unseen category, the
shifted feature's alert (a warning of `dbt build`, not an error), the history of cutoffs, and
the customer sample."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from models_py._dbt import dbt_target_path, run_dbt
from models_py._errors import DbtRunError
from models_py._settings import Settings
from models_py._warehouse import connect
from models_py.ingest.synth import generate_warehouse
from models_py.training._train import train

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Field onnx.AttributeProto:DeprecationWarning"),
]

END = dt.date(2025, 7, 1)
T0 = END - dt.timedelta(days=14)
T1 = END
EPSILON = 1e-4  # dbt var drift_psi_epsilon (default)
UNSEEN = 1.0  # rfm_segment_code category removed from the `any` model's reference
SPEC = """
specs:
  - name: purchase_propensity
    relation: marts.fct_training_examples
    id_columns: [customer_id]
    label: label
    cutoff: as_of_date
    split: split
    group: {column: product_group, groups: [any, wine]}
    features: {numeric_except: []}
    categorical: [rfm_segment_code]
    search: {folds: 2}
    candidates:
      hist_gradient_boosting: {max_iter: [30], learning_rate: [0.1], max_leaf_nodes: [15]}
    threshold: max_f1
    promotion: {metric: roc_auc, margin: 0.005}
    importance_rows: 200
"""


def _rows(settings: Settings, sql: str, params: list | None = None) -> list[dict]:
    con = connect(settings.warehouse, read_only=True)
    try:
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def _dbt_cli(settings: Settings, *args: str, dbt_vars: dict) -> subprocess.CompletedProcess:
    """dbt itself in a subprocess, its console output captured (what a scheduler shows)."""
    target = dbt_target_path(settings)
    command = [
        *("--no-use-colors", *args, "--project-dir", str(settings.dbt_project_dir)),
        *("--profiles-dir", str(settings.profiles_dir), "--target-path", str(target)),
        *("--log-path", str(target.parent / "logs"), "--vars", json.dumps(dbt_vars)),
    ]
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from dbt.cli.main import cli; sys.exit(cli())",
            *command,
        ],
        env={**os.environ, "PROPENSITY_WAREHOUSE": str(settings.warehouse)},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def drift(tmp_path_factory) -> tuple[Settings, Settings, subprocess.CompletedProcess]:
    """Generated, built, trained (`any`, `wine`) and scored at T0 with drift marts (a copy is
    kept: the scoring features view then shows T0); then half the customers become VIPs and the
    daily selector runs at T1: (T0 copy, warehouse after T1, the dbt output of T1)."""
    work = tmp_path_factory.mktemp("drift")
    settings = Settings(warehouse=work / "wh.duckdb")
    generate_warehouse(settings.warehouse, customers=1500, seed=3, days=400, end_date=END)
    at_t0 = {"scoring_cutoff": str(T0)}
    # the data tests run once, in the daily build at T1
    run_dbt(settings, ["run", "--exclude", "fct_propensity_scores+"], dbt_vars=at_t0)
    (work / "spec.yml").write_text(SPEC)
    report = train(settings, spec_path=work / "spec.yml", jobs=1)
    assert [r.status for r in report.results] == ["registered", "registered"]
    con = connect(settings.warehouse)
    try:
        # training never saw category UNSEEN for `any`: drop its bin, renormalise the others
        con.execute(
            "delete from ml.reference_distributions where product_group = 'any' "
            "and feature_name = 'rfm_segment_code' and category = ?",
            [UNSEEN],
        )
        con.execute(
            "update ml.reference_distributions set reference_share = reference_share / "
            "(select sum(reference_share) from ml.reference_distributions where "
            "product_group = 'any' and feature_name = 'rfm_segment_code') "
            "where product_group = 'any' and feature_name = 'rfm_segment_code'"
        )
    finally:
        con.close()
    run_dbt(
        settings, ["run", "--select", "fct_propensity_scores", "fct_drift_bins+"], dbt_vars=at_t0
    )
    at_t0_copy = Settings(warehouse=work / "t0.duckdb")
    shutil.copy(settings.warehouse, at_t0_copy.warehouse)

    con = connect(settings.warehouse)
    try:
        con.execute("update raw.customers set is_vip = (customer_id % 2 = 0)")
    finally:
        con.close()
    daily = _dbt_cli(
        settings,
        "build",
        "--selector",
        "daily",
        dbt_vars={"scoring_cutoff": str(T1), "feature_cutoff_roles": ["scoring"]},
    )
    return at_t0_copy, settings, daily


# ------------------------------------------------------------------ independent computation

# ------------------------------------------------------------------ independent computation


def _reference(con, model_id: str, kind: str, name: str) -> list[dict]:
    cur = con.execute(
        "select * from ml.reference_distributions where model_id = ? and feature_kind = ? "
        "and feature_name = ? order by bin",
        [model_id, kind, name],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _current_values(con, group: str, as_of: dt.date, kind: str, name: str) -> np.ndarray:
    """The values the drift marts bin: the group's scores, or its scoring features."""
    if kind == "score":
        sql = (
            "select score from marts.fct_propensity_scores where product_group = ? "
            "and as_of_date = ?"
        )
    else:
        sql = (
            f'select "{name}" from marts.fct_scoring_features where product_group = ? '
            "and as_of_date = ?"
        )
    values = [r[0] for r in con.execute(sql, [group, as_of]).fetchall()]
    return np.asarray(values, dtype=np.float64).astype(np.float32)


def _numpy_drift(reference: list[dict], values: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(PSI, Jensen-Shannon base 2, rows per bin) of `values` against the reference bins."""
    if reference[0]["feature_kind"] == "categorical":
        cats = [r["category"] for r in reference]
        other = cats.index(None)
        bins = np.array([cats.index(v) if v in cats else other for v in values.tolist()])
    else:
        lowers = np.array([r["bin_lower"] for r in reference[1:]], dtype=np.float64)
        bins = np.searchsorted(lowers, values.astype(np.float64), side="right")
    counts = np.bincount(bins, minlength=len(reference))
    current = counts / counts.sum()
    ref = np.array([r["reference_share"] for r in reference])
    c, r = np.maximum(current, EPSILON), np.maximum(ref, EPSILON)
    psi = float(np.sum((c - r) * np.log(c / r)))
    m = (current + ref) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        js = 0.5 * np.where(ref > 0, ref * np.log2(ref / m), 0).sum()
        js += 0.5 * np.where(current > 0, current * np.log2(current / m), 0).sum()
    return psi, float(js), counts


def test_psi_and_js_equal_numpy_on_the_same_rows_and_edges(drift):
    settings, _, _ = drift
    features = _rows(settings, "select * from marts.fct_feature_drift where as_of_date = ?", [T0])
    scores = _rows(settings, "select * from marts.fct_score_drift where as_of_date = ?", [T0])
    assert {r["product_group"] for r in scores} == {"any", "wine"}
    model_features = {
        r["model_id"]: json.loads(r["feature_names"])
        for r in _rows(settings, "select model_id, feature_names from ml.model_registry")
    }
    # one row per feature of the model that scored each group
    assert sorted((r["model_id"], r["feature_name"]) for r in features) == sorted(
        (s["model_id"], f) for s in scores for f in model_features[s["model_id"]]
    )
    customers = _rows(
        settings,
        "select count(*) as n from marts.fct_customer_features where as_of_date = ?",
        [T0],
    )[0]["n"]
    con = connect(settings.warehouse, read_only=True)
    try:
        for row in [
            *features,
            *({**s, "feature_kind": "score", "feature_name": "score"} for s in scores),
        ]:
            kind, name = row["feature_kind"], row["feature_name"]
            reference = _reference(con, row["model_id"], kind, name)
            values = _current_values(con, row["product_group"], T0, kind, name)
            assert len(values) == customers == row["current_rows"]
            psi, js, counts = _numpy_drift(reference, values)
            assert row["psi"] == pytest.approx(psi, abs=1e-9), row
            assert row["js_divergence"] == pytest.approx(js, abs=1e-9), row
            assert 0 <= row["js_divergence"] <= 1
            stored = con.execute(
                "select current_rows from marts.fct_drift_bins where model_id = ? "
                "and as_of_date = ? and feature_kind = ? and feature_name = ? order by bin",
                [row["model_id"], T0, kind, name],
            ).fetchall()
            assert [r[0] for r in stored] == list(counts)
    finally:
        con.close()


def test_unseen_categories_are_counted_in_the_other_bin(drift):
    settings, _, _ = drift
    con = connect(settings.warehouse, read_only=True)
    try:
        values = _current_values(con, "any", T0, "categorical", "rfm_segment_code")
    finally:
        con.close()
    unseen = int((values == UNSEEN).sum())
    assert unseen > 0
    (row,) = _rows(
        settings,
        "select * from marts.fct_feature_drift where as_of_date = ? and product_group = 'any' "
        "and feature_name = 'rfm_segment_code'",
        [T0],
    )
    assert row["feature_kind"] == "categorical"
    assert row["unseen_share"] == pytest.approx(unseen / len(values), abs=1e-12)
    (other,) = _rows(
        settings,
        "select * from marts.fct_drift_bins where as_of_date = ? and product_group = 'any' "
        "and feature_name = 'rfm_segment_code' and category is null",
        [T0],
    )
    assert (other["reference_share"], other["current_rows"]) == (0, unseen)
    # `wine` saw the category in training: nothing unseen there
    (wine,) = _rows(
        settings,
        "select unseen_share from marts.fct_feature_drift where as_of_date = ? "
        "and product_group = 'wine' and feature_name = 'rfm_segment_code'",
        [T0],
    )
    assert wine["unseen_share"] == 0


def test_shifted_feature_alerts_and_unchanged_features_stay_ok(drift):
    _, settings, daily = drift
    assert daily.returncode == 0, daily.stdout[-3000:]
    rows = _rows(settings, "select * from marts.fct_feature_drift order by as_of_date")
    # history: the T0 rows stay beside the T1 rows, and no cutoff is duplicated
    assert sorted({r["as_of_date"] for r in rows}) == [T0, T1]
    for as_of in (T0, T1):
        part = [r for r in rows if r["as_of_date"] == as_of]
        assert len(part) == len({(r["product_group"], r["feature_name"]) for r in part})
    moved = {("any", "rfm_segment_code")}  # the category removed from the reference of `any`
    at_t0 = [r for r in rows if r["as_of_date"] == T0 and r["is_monitored"]]
    assert {
        (r["product_group"], r["feature_name"]) for r in at_t0 if r["drift_status"] != "ok"
    } == (moved)
    at_t1 = [r for r in rows if r["as_of_date"] == T1 and r["is_monitored"]]
    vip = [r for r in at_t1 if r["feature_name"] == "is_vip"]
    assert len(vip) == 2 and {r["drift_status"] for r in vip} == {"alert"}
    assert all(r["psi"] > 1 for r in vip)
    others = [
        r
        for r in at_t1
        if r["feature_name"] != "is_vip" and (r["product_group"], r["feature_name"]) not in moved
    ]
    assert len(others) > 100
    assert {r["drift_status"] for r in others} == {"ok"}, [
        (r["feature_name"], r["psi"]) for r in others if r["drift_status"] != "ok"
    ]
    # calendar ages are reported without a status (dbt var drift_ignore_features)
    ignored = [r for r in rows if r["as_of_date"] == T1 and not r["is_monitored"]]
    assert {r["feature_name"] for r in ignored} == {
        "tenure_days",
        "btyd_age_days",
        "btyd_recency_days",
    }
    assert all(r["drift_status"] is None and r["psi"] >= 0 for r in ignored)


def test_an_alert_is_a_warning_of_dbt_build_not_an_error(drift):
    _, settings, daily = drift
    out = daily.stdout
    assert daily.returncode == 0
    # is_vip of both models, and the category `any` never saw
    assert "WARN 3 drift_alerts_fct_feature_drift" in out
    assert "Warning in test drift_alerts_fct_feature_drift" in out
    done = next(ln for ln in out.splitlines() if "Done. PASS=" in ln)
    assert "WARN=1 ERROR=0" in done
    # the stored failures say what drifted and what to do (`propensity build` prints them)
    problems = [
        r["problem"]
        for r in _rows(
            settings,
            "select problem from test_failures."
            "drift_alerts_fct_feature_drift__feature_drifted_feature_name",
        )
    ]
    assert any(
        p.startswith("feature is_vip of model any-")
        and f"(product group any) drifted at cutoff {T1}: PSI " in p
        and ">= drift_psi_alert 0.25" in p
        and "propensity retrain --if-needed" in p
        for p in problems
    ), problems


def test_a_customer_sample_bins_the_hashed_customers_only(drift, tmp_path):
    at_t0, _, _ = drift
    sample = Settings(warehouse=tmp_path / "sample.duckdb")
    shutil.copy(at_t0.warehouse, sample.warehouse)
    run_dbt(
        sample,
        ["run", "--select", "fct_drift_bins+"],
        dbt_vars={"scoring_cutoff": str(T0), "drift_sample_customers": 400},
    )
    (row,) = _rows(
        sample,
        "select * from marts.fct_feature_drift where product_group = 'wine' "
        "and feature_name = 'spend_365d'",
    )
    assert row["current_rows"] == 400
    con = connect(sample.warehouse, read_only=True)
    try:
        sampled = con.execute(
            "select f.spend_365d from marts.fct_scoring_features as f where "
            "f.product_group = 'wine' and f.customer_id in (select customer_id from "
            "marts.fct_customer_features where as_of_date = ? "
            "order by hash(customer_id), customer_id limit 400)",
            [T0],
        ).fetchall()
        reference = _reference(con, row["model_id"], "numeric", "spend_365d")
    finally:
        con.close()
    psi, js, _ = _numpy_drift(reference, np.asarray([r[0] for r in sampled], np.float32))
    assert row["psi"] == pytest.approx(psi, abs=1e-9)
    assert row["js_divergence"] == pytest.approx(js, abs=1e-9)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"drift_psi_warn": 0.3}, "dbt var drift_psi_warn (0.3) must not exceed drift_psi_alert"),
        (
            {"drift_sample_customers": 0},
            "dbt var drift_sample_customers must be a positive integer, got 0",
        ),
    ],
)
def test_bad_drift_vars_are_named_errors(drift, bad, message):
    at_t0, _, _ = drift
    with pytest.raises(DbtRunError, match=re.escape(message)):
        run_dbt(at_t0, ["compile", "--select", "fct_drift_bins", "fct_feature_drift"], dbt_vars=bad)
