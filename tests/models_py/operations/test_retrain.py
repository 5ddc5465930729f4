"""`propensity retrain [--if-needed]` through the CLI entry point on a small scored warehouse:
decisions with reasons in ml.retrain_decisions, only the groups that need it trained, and bad
input refused before anything is written."""

from __future__ import annotations

import json

import pytest

from models_py.cli import main
from tests.models_py.operations.daily_fixtures import (
    BUILD_VARS,
    FIRST_CUTOFF,
    LEAN_SPEC,
    SCORED_GROUPS,
    copy_template,
    query,
)
from tests.reliability._warehouses import table_fingerprint

REGISTRY = ("ml.model_registry", "ml.model_aliases", "ml.retrain_decisions")


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    """The daily template after `retrain --group sweets` then `retrain --if-needed`."""
    work = tmp_path_factory.mktemp("retrain")
    wh = copy_template(tmp_path_factory, work)
    spec = work / "lean.yml"
    spec.write_text(LEAN_SPEC)
    before = {r[0] for r in query(wh, "select model_id from ml.model_registry")}
    base = [
        "--warehouse",
        str(wh),
        "retrain",
        "--spec",
        str(spec),
        "--vars",
        json.dumps(BUILD_VARS),
    ]
    assert main([*base, "--group", "sweets"]) == 0
    assert main([*base, "--if-needed"]) == 0
    return wh, spec, before


def decisions(wh) -> list[dict]:
    rows = query(
        wh,
        "select run_id, policy, product_group, decision, reasons, champion_model_id, "
        "new_model_id, promoted, as_of_date, model_age_days, reference_roc_auc "
        "from ml.retrain_decisions order by decided_at, product_group",
    )
    keys = [
        "run_id",
        "policy",
        "product_group",
        "decision",
        "reasons",
        "champion",
        "new_model",
        "promoted",
        "as_of",
        "age",
        "reference_auc",
    ]
    return [dict(zip(keys, r, strict=True)) for r in rows]


def test_a_scheduled_retrain_trains_the_asked_group_and_records_why(retrained):
    wh, _, before = retrained
    first = [d for d in decisions(wh) if d["policy"] == "always"]
    assert [d["product_group"] for d in first] == ["sweets"]
    (d,) = first
    assert d["decision"] == "retrain" and "scheduled" in d["reasons"]
    assert d["new_model"] not in before and d["new_model"] is not None
    assert d["as_of"] == FIRST_CUTOFF and d["age"] == 0  # the template's champion is fresh
    models = {r[0] for r in query(wh, "select model_id from ml.model_registry")}
    assert d["new_model"] in models


def test_if_needed_decides_every_group_and_trains_only_those_that_need_it(retrained):
    wh, _, before = retrained
    runs = [d for d in decisions(wh) if d["policy"] == "if-needed"]
    assert sorted(d["product_group"] for d in runs) == sorted(SCORED_GROUPS)
    assert len({d["run_id"] for d in runs}) == 1
    for d in runs:
        assert d["reasons"], d
        assert d["champion"] is not None and d["reference_auc"] is not None
        if d["decision"] == "keep":
            assert d["new_model"] is None
        else:
            assert d["new_model"] is not None
    # sweets was retrained a moment ago: whatever fires, min_days_between holds it back.
    (sweets,) = [d for d in runs if d["product_group"] == "sweets"]
    if sweets["decision"] == "keep" and "retrained 0 days ago" not in sweets["reasons"]:
        assert "no drift alert" in sweets["reasons"] or "drift" in sweets["reasons"]
    assert sweets["decision"] == "keep"
    trained = {d["new_model"] for d in decisions(wh) if d["new_model"]}
    models = {r[0] for r in query(wh, "select model_id from ml.model_registry")}
    assert models - before == trained


def test_evidence_is_read_from_the_monitoring_marts(retrained):
    wh, _, _ = retrained
    (row,) = query(
        wh,
        "select count(*) from ml.retrain_decisions where policy = 'if-needed' "
        "and (estimated_roc_auc is not null or realised_roc_auc is not null)",
    )
    assert row[0] == len(SCORED_GROUPS)
    drifted = query(wh, "select drifted_features from ml.retrain_decisions")
    assert all(isinstance(json.loads(r[0]), list) for r in drifted)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "2030-01-01"], "is after the data ends"),
        (["--group", "no_such_group"], "no_such_group"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(retrained, tmp_path, capsys, args, message):
    wh, spec, _ = retrained
    import shutil

    copy = tmp_path / "bad.duckdb"
    shutil.copy(wh, copy)
    before = table_fingerprint(copy, *REGISTRY)
    code = main(
        [
            "--warehouse",
            str(copy),
            "retrain",
            "--spec",
            str(spec),
            "--vars",
            json.dumps(BUILD_VARS),
            *args,
        ]
    )
    assert code != 0
    assert message in capsys.readouterr().err
    assert table_fingerprint(copy, *REGISTRY) == before


def test_if_needed_keeping_every_group_builds_nothing(retrained, tmp_path, caplog):
    """Right after a retrain every group is kept: no training-set build, no model, one row each."""
    wh, spec, _ = retrained
    import shutil

    copy = tmp_path / "again.duckdb"
    shutil.copy(wh, copy)
    examples = table_fingerprint(copy, "marts.fct_training_examples", "ml.model_registry")
    caplog.set_level("INFO")
    args = ["--warehouse", str(copy), "retrain", "--spec", str(spec), "--if-needed"]
    assert main([*args, "--vars", json.dumps(BUILD_VARS)]) == 0
    assert "training_set" not in caplog.text  # decided from the monitoring marts alone
    assert table_fingerprint(copy, "marts.fct_training_examples", "ml.model_registry") == examples
    runs = query(
        copy,
        "select run_id, decision, reasons from ml.retrain_decisions where policy = 'if-needed' "
        "order by decided_at desc limit ?",
        [len(SCORED_GROUPS)],
    )
    assert len({r[0] for r in runs}) == 1 and {r[1] for r in runs} == {"keep"}, runs


def test_a_challenger_that_lost_the_gate_re_dates_the_champion(retrained):
    """The evidence of a champion that kept its place against a newer challenger counts its
    age and reference ROC AUC from the challenger's test period (else age and AUC-drop rules
    would fire every week for the same outcome)."""
    import datetime as dt

    from models_py._warehouse import connect
    from models_py.operations._retrain import gather_evidence
    from models_py.registry import get_alias, model_row

    wh, _, _ = retrained
    with connect(wh, read_only=True) as con:
        champion = get_alias(con, "sweets", "champion")
        newest = con.execute(
            "select model_id from ml.model_registry where product_group = 'sweets' "
            "order by trained_at desc limit 1"
        ).fetchone()[0]
        ev = gather_evidence(
            con,
            spec_name="lean",
            product_group="sweets",
            now=FIRST_CUTOFF + dt.timedelta(days=1),
            horizon_days=30,
            top_k=10,
        )
        if newest == champion:  # the newest challenger won: nothing re-dates the champion
            assert ev.challenged_by is None
        else:
            row = model_row(con, newest)
            promotion = row["metrics"]["promotion"]
            assert promotion["promoted"] is False and ev.challenged_by == newest
            test_end = max(dt.date.fromisoformat(c) for c in row["test_cutoffs"])
            assert ev.data_end == test_end + dt.timedelta(days=30)
            assert ev.test_roc_auc == pytest.approx(promotion["champion"])
