"""The retraining policy as a pure function: each rule fires alone, nothing firing keeps the
champion, missing evidence is said, and a recent retrain holds a new one back."""

from __future__ import annotations

import datetime as dt

import pytest

from models_py.operations._retrain import Evidence, decide, scheduled
from models_py.training._specs import RetrainingRules

NOW = dt.date(2026, 6, 1)
RULES = RetrainingRules()  # 90 days, drop 0.02, top 10 features, 1 alert, score drift, 7 days


def healthy(**changes) -> Evidence:
    base = {
        "spec_name": "purchase_propensity",
        "product_group": "wine",
        "now": NOW,
        "champion_model_id": "wine-hgb-1",
        "data_end": NOW - dt.timedelta(days=20),
        "test_roc_auc": 0.90,
        "realised_roc_auc": 0.895,
        "realised_as_of": NOW - dt.timedelta(days=30),
        "estimated_roc_auc": 0.90,
        "estimated_as_of": NOW,
        "score_drift_status": "ok",
        "drift_as_of": NOW,
        "top_features": tuple(f"f{i}" for i in range(10)),
        "feature_alerts": (),
    }
    return Evidence(**{**base, **changes})


def test_a_healthy_champion_is_kept_with_every_check_in_the_reasons():
    d = decide(healthy(), RULES)
    assert d.decision == "keep" and not d.retrain
    text = " ".join(d.reasons)
    assert "20 days old" in text and "drop +0.0050" in text and "no drift alert" in text
    assert d.auc_used == pytest.approx(0.895) and d.auc_drop == pytest.approx(0.005)


def test_no_champion_retrains():
    d = decide(healthy(champion_model_id=None), RULES)
    assert d.retrain and d.reasons == ("no champion yet",)


def test_age_alone_retrains():
    d = decide(healthy(data_end=NOW - dt.timedelta(days=91)), RULES)
    assert d.retrain and d.reasons == ("model data is 91 days old (> max_age_days 90)",)
    assert decide(healthy(data_end=NOW - dt.timedelta(days=90)), RULES).decision == "keep"


def test_realised_auc_drop_alone_retrains_and_is_preferred_to_the_estimate():
    d = decide(healthy(realised_roc_auc=0.87, estimated_roc_auc=0.90), RULES)
    assert d.retrain and len(d.reasons) == 1 and "realised" in d.reasons[0]
    assert d.auc_drop == pytest.approx(0.03)


def test_estimated_auc_is_used_when_no_cutoff_has_matured():
    d = decide(healthy(realised_roc_auc=None, realised_as_of=None, estimated_roc_auc=0.85), RULES)
    assert d.retrain and "estimated" in d.reasons[0]
    kept = decide(healthy(realised_roc_auc=None, realised_as_of=None), RULES)
    assert kept.decision == "keep" and "estimated" in " ".join(kept.reasons)


def test_score_drift_alone_retrains_unless_switched_off():
    d = decide(healthy(score_drift_status="alert"), RULES)
    assert d.retrain and d.reasons == (f"score distribution drifted (alert at {NOW})",)
    off = RetrainingRules(score_drift=False)
    assert decide(healthy(score_drift_status="alert"), off).decision == "keep"


def test_drift_counts_only_important_features():
    important = decide(healthy(feature_alerts=("f3",)), RULES)
    assert important.retrain and "f3" in important.reasons[0]
    minor = decide(healthy(feature_alerts=("tenure_days",)), RULES)
    assert minor.decision == "keep"
    assert "alerts on less important: tenure_days" in " ".join(minor.reasons)
    two = RetrainingRules(drift_min_alerts=2)
    assert decide(healthy(feature_alerts=("f3",)), two).decision == "keep"
    assert decide(healthy(feature_alerts=("f3", "f4")), two).retrain


def test_a_recent_retrain_holds_back_another():
    ev = healthy(data_end=NOW - dt.timedelta(days=200), last_retrain=NOW - dt.timedelta(days=3))
    d = decide(ev, RULES)
    assert d.decision == "keep"
    assert d.reasons[0] == "retrained 3 days ago (< min_days_between 7)"
    assert "200 days old" in d.reasons[1]
    ev = healthy(data_end=NOW - dt.timedelta(days=200), last_retrain=NOW - dt.timedelta(days=7))
    assert decide(ev, RULES).retrain


def test_missing_evidence_is_said_never_an_error():
    ev = healthy(
        realised_roc_auc=None,
        estimated_roc_auc=None,
        test_roc_auc=None,
        drift_as_of=None,
        score_drift_status=None,
        data_end=None,
        unknown=("marts.fct_feature_drift is missing (run `propensity run daily`)",),
    )
    d = decide(ev, RULES)
    assert d.decision == "keep"
    text = " ".join(d.reasons)
    assert "model age unknown" in text and "ROC AUC since training unknown" in text
    assert "drift unknown" in text and "fct_feature_drift is missing" in text


def test_without_if_needed_every_group_retrains():
    d = scheduled(healthy())
    assert d.retrain and "scheduled" in d.reasons[0]


def drifted(days_since: int, *, data_end_days: int = 20, **changes) -> Evidence:
    """An important feature in alert since `days_since` days; 30-day labels."""
    return healthy(
        feature_alerts=("f3",),
        drift_since=NOW - dt.timedelta(days=days_since),
        horizon_days=30,
        data_end=NOW - dt.timedelta(days=data_end_days),
        **changes,
    )


def test_drift_retrains_only_when_a_labelled_cutoff_after_it_exists_and_is_unseen():
    # Drift began 10 days ago: no cutoff since then has a matured 30-day label window yet.
    d = decide(drifted(10), RULES)
    assert d.decision == "keep"
    assert "a retrain now would learn the old behaviour again" in " ".join(d.reasons)
    assert f"no labelled cutoff since the drift began ({NOW - dt.timedelta(days=10)})" in " ".join(
        d.reasons
    )
    # 40 days in, the champion's newest test cutoff (data_end - 30 = 50 days ago) predates it.
    matured = decide(drifted(40, score_drift_status="alert"), RULES)
    assert matured.retrain and len(matured.reasons) == 2
    # A champion retrained since then was tested on the drifted period: the alerts persist
    # (its reference is its training rows) but are no reason to retrain again.
    seen = decide(drifted(40, data_end_days=0, score_drift_status="alert"), RULES)
    assert seen.decision == "keep"
    assert "is already in its data (test cutoff" in " ".join(seen.reasons)
    # A retrain that had the drifted data ran and its challenger lost: no retrain for it again.
    tried = decide(drifted(40, last_retrain=NOW - dt.timedelta(days=7)), RULES)
    assert tried.decision == "keep"
    assert "already had the drifted data" in " ".join(tried.reasons)
    # Other rules still fire while drift is held back.
    old = decide(drifted(10, data_end_days=100), RULES)
    assert old.retrain and old.reasons == ("model data is 100 days old (> max_age_days 90)",)


def test_a_champion_re_tested_by_a_losing_challenger_says_so():
    d = decide(healthy(challenged_by="wine-hgb-2", horizon_days=30), RULES)
    assert d.decision == "keep"
    assert d.reasons[0].startswith(
        f"champion re-tested on cutoff {NOW - dt.timedelta(days=50)} against challenger wine-hgb-2"
    )
