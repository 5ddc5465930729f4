"""`propensity retrain [--if-needed]`: rebuild the training set for "now", decide per product
group whether its champion must be retrained, train those groups and record every decision.

Evidence per group, all read from the warehouse as of "now" (the run's scoring cutoff):
the champion's age (days since the end of the data it was trained on: its newest test cutoff
plus the label horizon), its ROC AUC on scored cutoffs (`marts.fct_model_performance`: realised
when the labels have matured, else the estimate from calibrated scores) against its own test
ROC AUC, and drift alerts (`marts.fct_score_drift`, and `marts.fct_feature_drift` on its most
important features by `ml.feature_importance`). The rules are the spec's ``retraining`` section
(`RetrainingRules`). Evidence that is missing (no monitoring mart yet, no matured cutoff) is
"unknown": said in the reasons, never an error.

The decisions (``ml.retrain_decisions``) are written in the transaction that registers the new
models, so a run that is killed or fails leaves the registry and the decisions as they were.
docs/operations.md, "Retraining".
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from models_py._errors import ConfigError
from models_py._settings import Settings
from models_py._warehouse import connect, relation_exists, transaction
from models_py.operations._daily import ScoringCutoffError, last_order_date
from models_py.registry import get_alias, model_row
from models_py.registry._decisions import record_decisions
from models_py.registry._tables import present_tables
from models_py.training._specs import RetrainingRules

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """What the warehouse says about one group's champion as of `now`."""

    spec_name: str
    product_group: str
    now: dt.date
    champion_model_id: str | None = None
    data_end: dt.date | None = None  # newest test cutoff + horizon of the champion
    test_roc_auc: float | None = None
    # The newest challenger that was compared with the champion on a newer test period and lost
    # the promotion gate: data_end and test_roc_auc are then the champion's on that period.
    challenged_by: str | None = None
    realised_roc_auc: float | None = None
    realised_as_of: dt.date | None = None
    estimated_roc_auc: float | None = None
    estimated_as_of: dt.date | None = None
    score_drift_status: str | None = None
    drift_as_of: dt.date | None = None
    top_features: tuple[str, ...] = ()
    feature_alerts: tuple[str, ...] = ()  # every feature in 'alert' at drift_as_of
    # First cutoff of the group's current run of cutoffs with an alert (score or feature).
    drift_since: dt.date | None = None
    horizon_days: int | None = None
    last_retrain: dt.date | None = None
    unknown: tuple[str, ...] = ()  # evidence that is missing, in words

    @property
    def model_age_days(self) -> int | None:
        return None if self.data_end is None else (self.now - self.data_end).days

    @property
    def newest_test_cutoff(self) -> dt.date | None:
        if self.data_end is None or self.horizon_days is None:
            return None
        return self.data_end - dt.timedelta(days=self.horizon_days)

    @property
    def important_alerts(self) -> tuple[str, ...]:
        top = set(self.top_features)
        return tuple(f for f in self.feature_alerts if f in top)


@dataclass(frozen=True, kw_only=True)
class Decision:
    """Retrain or keep one group, and why."""

    evidence: Evidence
    decision: str  # 'retrain' | 'keep'
    reasons: tuple[str, ...]
    auc_used: float | None = None
    auc_drop: float | None = None

    @property
    def retrain(self) -> bool:
        return self.decision == "retrain"


def decide(evidence: Evidence, rules: RetrainingRules) -> Decision:
    """The retraining policy for one group (pure: the same evidence gives the same decision)."""
    ev = evidence
    if ev.champion_model_id is None:
        return Decision(evidence=ev, decision="retrain", reasons=("no champion yet",))
    reasons: list[str] = []
    fired: list[str] = []
    if ev.challenged_by is not None:
        reasons.append(
            f"champion re-tested on cutoff {ev.newest_test_cutoff} against challenger "
            f"{ev.challenged_by}, which did not beat it: its age and reference ROC AUC count "
            "from that test"
        )
    age = ev.model_age_days
    if age is None:
        reasons.append("model age unknown (no test cutoff recorded)")
    elif age > rules.max_age_days:
        fired.append(f"model data is {age} days old (> max_age_days {rules.max_age_days})")
    else:
        reasons.append(f"model data {age} days old (<= {rules.max_age_days})")

    auc_used, drop = None, None
    if ev.realised_roc_auc is not None:
        auc_used, kind = ev.realised_roc_auc, f"realised at {ev.realised_as_of}"
    elif ev.estimated_roc_auc is not None:
        auc_used, kind = ev.estimated_roc_auc, f"estimated at {ev.estimated_as_of}"
    if auc_used is None or ev.test_roc_auc is None:
        reasons.append("ROC AUC since training unknown (no scored cutoff in fct_model_performance)")
    else:
        drop = ev.test_roc_auc - auc_used
        text = (
            f"ROC AUC {auc_used:.4f} ({kind}) vs {ev.test_roc_auc:.4f} on its test period "
            f"(drop {drop:+.4f}"
        )
        if drop > rules.auc_drop:
            fired.append(f"{text} > auc_drop {rules.auc_drop})")
        else:
            reasons.append(f"{text} <= {rules.auc_drop})")

    if ev.drift_as_of is None:
        reasons.append("drift unknown (no drift rows for the champion)")
    else:
        drifted: list[str] = []
        if rules.score_drift and ev.score_drift_status == "alert":
            drifted.append(f"score distribution drifted (alert at {ev.drift_as_of})")
        important = ev.important_alerts
        if len(important) >= rules.drift_min_alerts:
            drifted.append(
                f"{len(important)} of its {rules.drift_top_features} most important features "
                f"drifted at {ev.drift_as_of}: {', '.join(important)}"
            )
        held = _drift_not_learnable(ev)
        if drifted and held:
            reasons += [f"{d}, but {held}" for d in drifted]
        fired += [] if held else drifted
        if not drifted:
            others = [f for f in ev.feature_alerts if f not in important]
            reasons.append(
                f"no drift alert on its top {rules.drift_top_features} features"
                + (f" (alerts on less important: {', '.join(others)})" if others else "")
                + (
                    f"; score drift {ev.score_drift_status}"
                    if ev.score_drift_status is not None
                    else ""
                )
            )
    reasons += list(ev.unknown)
    if fired and ev.last_retrain is not None:
        since = (ev.now - ev.last_retrain).days
        if since < rules.min_days_between:
            return Decision(
                evidence=ev,
                decision="keep",
                reasons=(
                    f"retrained {since} days ago (< min_days_between {rules.min_days_between})",
                    *fired,
                ),
                auc_used=auc_used,
                auc_drop=drop,
            )
    if fired:
        return Decision(
            evidence=ev, decision="retrain", reasons=tuple(fired), auc_used=auc_used, auc_drop=drop
        )
    return Decision(
        evidence=ev, decision="keep", reasons=tuple(reasons), auc_used=auc_used, auc_drop=drop
    )


def _drift_not_learnable(ev: Evidence) -> str | None:
    """Why a retrain cannot learn the drift yet (None: it can, or the dates are unknown).

    A model refitted on data from before the drift started learns the old behaviour again, and
    a champion whose test period already lies in the drifted period was trained on it: drift
    alerts only retrain when a labelled cutoff after the drift began exists (drift_since +
    horizon <= now), the champion has not seen one (its newest test cutoff < drift_since) and no
    retrain since then has had it (one did and its challenger lost the promotion gate: the same
    alerts would retrain every week for nothing).
    """
    if ev.drift_since is None or ev.horizon_days is None:
        return None
    seen = ev.newest_test_cutoff
    if seen is not None and seen >= ev.drift_since:
        return (
            f"the drift (since {ev.drift_since}) is already in its data "
            f"(test cutoff {seen}): not a reason to retrain again"
        )
    labelled = ev.drift_since + dt.timedelta(days=ev.horizon_days)
    if labelled > ev.now:
        return (
            f"no labelled cutoff since the drift began ({ev.drift_since}) before {labelled}: "
            "a retrain now would learn the old behaviour again"
        )
    if ev.last_retrain is not None and ev.last_retrain >= labelled:
        return (
            f"a retrain on {ev.last_retrain} already had the drifted data (labelled from "
            f"{labelled}) and its challenger did not replace the champion"
        )
    return None


def scheduled(evidence: Evidence) -> Decision:
    """Without --if-needed every group retrains."""
    return Decision(
        evidence=evidence, decision="retrain", reasons=("scheduled retrain (without --if-needed)",)
    )


# ------------------------------------------------------------------------------ evidence


def _one(con, sql: str, params: list) -> tuple | None:
    return con.execute(sql, params).fetchone()


def gather_evidence(
    con, *, spec_name: str, product_group: str, now: dt.date, horizon_days: int, top_k: int
) -> Evidence:
    """Read one group's evidence as of `now` (rows after `now` are ignored)."""
    from models_py.registry import ml_table

    unknown: list[str] = []
    # The registry tables exist: the training-set build before this creates any missing one.
    last = _one(
        con,
        f"select max(as_of_date) from {ml_table('retrain_decisions')} "
        "where product_group = ? and spec_name = ? and decision = 'retrain' and as_of_date <= ?",
        [product_group, spec_name, now],
    )[0]
    champion = get_alias(con, product_group, "champion")
    if champion is None:
        return Evidence(
            spec_name=spec_name, product_group=product_group, now=now, last_retrain=last
        )
    meta = model_row(con, champion)
    test_cutoffs = [dt.date.fromisoformat(str(c)) for c in meta["test_cutoffs"] or []]
    data_end = max(test_cutoffs) + dt.timedelta(days=horizon_days) if test_cutoffs else None
    row = _one(
        con,
        f"select roc_auc from {ml_table('model_metrics')} where model_id = ? and split = 'test'",
        [champion],
    )
    test_auc = row[0] if row else None
    challenged_by = None
    challenge = _newest_lost_challenge(con, champion, meta, now=now)
    if challenge is not None:
        challenged_by, challenge_test_end, champion_auc = challenge
        if data_end is None or challenge_test_end + dt.timedelta(days=horizon_days) > data_end:
            data_end = challenge_test_end + dt.timedelta(days=horizon_days)
            test_auc = champion_auc if champion_auc is not None else test_auc
    top = tuple(
        r[0]
        for r in con.execute(
            f"select feature_name from {ml_table('feature_importance')} where model_id = ? "
            "order by importance_rank limit ?",
            [champion, top_k],
        ).fetchall()
    )

    realised = estimated = None
    if relation_exists(con, "marts.fct_model_performance"):
        realised = _one(
            con,
            "select roc_auc, as_of_date from marts.fct_model_performance "
            "where model_id = ? and product_group = ? and is_matured and roc_auc is not null "
            "and label_window_end <= ? order by as_of_date desc limit 1",
            [champion, product_group, now],
        )
        estimated = _one(
            con,
            "select estimated_roc_auc, as_of_date from marts.fct_model_performance "
            "where model_id = ? and product_group = ? and estimated_roc_auc is not null "
            "and as_of_date <= ? order by as_of_date desc limit 1",
            [champion, product_group, now],
        )
    else:
        unknown.append("marts.fct_model_performance is missing (run `propensity run daily`)")

    drift_as_of = score_status = drift_since = None
    alerts: tuple[str, ...] = ()
    if relation_exists(con, "marts.fct_feature_drift") and relation_exists(
        con, "marts.fct_score_drift"
    ):
        # The champion's newest drift cutoff: its alerted features (by PSI) and score status.
        rows = con.execute(
            """
            with newest as (
                select max(as_of_date) as as_of_date from marts.fct_feature_drift
                where model_id = $model and product_group = $group and as_of_date <= $now
            )
            select
                newest.as_of_date,
                (select drift_status from marts.fct_score_drift as s
                 where s.model_id = $model and s.product_group = $group
                   and s.as_of_date = newest.as_of_date),
                f.feature_name
            from newest
            left join marts.fct_feature_drift as f
                on f.model_id = $model and f.product_group = $group
                and f.as_of_date = newest.as_of_date and f.drift_status = 'alert'
            order by f.psi desc
            """,
            {"model": champion, "group": product_group, "now": now},
        ).fetchall()
        drift_as_of, score_status = rows[0][0], rows[0][1]
        alerts = tuple(r[2] for r in rows if r[2] is not None)
        drift_since = _one(
            con,
            """
            with per_cutoff as (
                select as_of_date, bool_or(drift_status = 'alert') as alerted
                from (
                    select as_of_date, drift_status from marts.fct_feature_drift
                    where product_group = $group and as_of_date <= $now
                    union all
                    select as_of_date, drift_status from marts.fct_score_drift
                    where product_group = $group and as_of_date <= $now
                )
                group by as_of_date
            )
            select min(as_of_date) from per_cutoff
            where alerted and as_of_date > coalesce(
                (select max(as_of_date) from per_cutoff where not alerted), date '0001-01-01')
            """,
            {"group": product_group, "now": now},
        )[0]
    else:
        unknown.append("marts.fct_feature_drift is missing (run `propensity run daily`)")
    return Evidence(
        spec_name=spec_name,
        product_group=product_group,
        now=now,
        champion_model_id=champion,
        data_end=data_end,
        test_roc_auc=test_auc,
        challenged_by=challenged_by,
        realised_roc_auc=realised[0] if realised else None,
        realised_as_of=realised[1] if realised else None,
        estimated_roc_auc=estimated[0] if estimated else None,
        estimated_as_of=estimated[1] if estimated else None,
        score_drift_status=score_status,
        drift_as_of=drift_as_of,
        top_features=top,
        feature_alerts=alerts,
        drift_since=drift_since,
        horizon_days=horizon_days,
        last_retrain=last,
        unknown=tuple(unknown),
    )


def _newest_lost_challenge(
    con, champion: str, meta: dict, *, now: dt.date
) -> tuple[str, dt.date, float | None] | None:
    """The newest challenger registered after `champion` (same spec and group) whose promotion
    compared the two on its own, newer test cutoffs and kept the champion: (its id, its newest
    test cutoff, the champion's ROC AUC there). A retrain that loses the gate re-validates the
    champion on recent data; without this, the rules that fired (age, AUC drop) would fire again
    every week for the same outcome."""
    from models_py.registry import ml_table

    rows = con.execute(
        f"select model_id from {ml_table('model_registry')} "
        "where product_group = ? and spec_name = ? and trained_at > ? "
        "order by trained_at desc limit 5",
        [meta["product_group"], meta["spec_name"], meta["trained_at"]],
    ).fetchall()
    for (model_id,) in rows:
        row = model_row(con, model_id)
        promotion = (row.get("metrics") or {}).get("promotion") or {}
        test_cutoffs = [dt.date.fromisoformat(str(c)) for c in row.get("test_cutoffs") or []]
        if (
            promotion.get("promoted") is False
            and champion in str(promotion.get("reason", ""))
            and test_cutoffs
            and max(test_cutoffs) < now
        ):
            auc = promotion.get("champion") if promotion.get("metric") == "roc_auc" else None
            return model_id, max(test_cutoffs), auc
    return None


# ------------------------------------------------------------------------------ the command


@dataclass(frozen=True)
class RetrainReport:
    """What a retrain did: one decision per group and the training report (if any)."""

    run_id: str
    as_of: dt.date
    decisions: tuple[Decision, ...]
    training: object | None  # models_py.training.TrainReport
    seconds: float

    @property
    def failed(self) -> bool:
        return bool(self.training is not None and self.training.failed)

    def summary(self) -> str:
        results = {r.product_group: r for r in (self.training.results if self.training else [])}
        lines = [f"retrain as of {self.as_of} (run {self.run_id}):"]
        for d in self.decisions:
            g = d.evidence.product_group
            outcome = ""
            if g in results:
                r = results[g]
                outcome = (
                    f" -> {r.model_id} ({'promoted' if r.promoted else 'not promoted'})"
                    if r.status == "registered"
                    else f" -> {r.status}: {r.message}"
                )
            lines.append(f"  {g}: {d.decision}{outcome}")
            lines += [f"      {reason}" for reason in d.reasons]
        lines.append(f"  done in {self.seconds:.1f} s")
        return "\n".join(lines)


def _decision_rows(
    decisions: Sequence[Decision], *, run_id: str, policy: str, results: Sequence
) -> list[dict]:
    by_group = {r.product_group: r for r in results}
    decided_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = []
    for d in decisions:
        ev = d.evidence
        r = by_group.get(ev.product_group) if d.retrain else None
        rows.append(
            {
                "run_id": run_id,
                "decided_at": decided_at,
                "as_of_date": ev.now,
                "policy": policy,
                "spec_name": ev.spec_name,
                "product_group": ev.product_group,
                "champion_model_id": ev.champion_model_id,
                "model_age_days": ev.model_age_days,
                "realised_roc_auc": ev.realised_roc_auc,
                "estimated_roc_auc": ev.estimated_roc_auc,
                "reference_roc_auc": ev.test_roc_auc,
                "auc_drop": d.auc_drop,
                "drift_alerts": len(ev.important_alerts),
                "drifted_features": json.dumps(list(ev.feature_alerts)),
                "decision": d.decision,
                "reasons": "; ".join(d.reasons),
                "new_model_id": getattr(r, "model_id", None),
                "promoted": getattr(r, "promoted", None),
            }
        )
    return rows


def _decide(
    settings: Settings, targets: Sequence, *, as_of: dt.date, if_needed: bool
) -> list[Decision]:
    """One decision per target, from the evidence in the warehouse as of `as_of`."""
    with closing(connect(settings.warehouse, read_only=True)) as con:
        # The label horizon of the stored cutoffs (dbt var horizon_days), read back, not assumed.
        horizon = con.execute(
            "select max(label_window_end - as_of_date) from marts.dim_cutoffs"
        ).fetchone()[0]
        decisions = []
        for t in targets:
            ev = gather_evidence(
                con,
                spec_name=t.spec.name,
                product_group=t.product_group,
                now=as_of,
                horizon_days=horizon,
                top_k=t.spec.retraining.drift_top_features,
            )
            decisions.append(decide(ev, t.spec.retraining) if if_needed else scheduled(ev))
        return decisions


def retrain(
    settings: Settings,
    *,
    as_of: dt.date | None = None,
    if_needed: bool = False,
    spec_path: Path | str | None = None,
    groups: Sequence[str] | None = None,
    jobs: int | None = None,
    actor: str = "propensity",
    progress: Callable | None = None,
) -> RetrainReport:
    """Rebuild the training set as of `as_of`, decide, train the groups that need it, record.

    Raises
    ------
    ScoringCutoffError
        `as_of` is after the data ends.
    ConfigError
        A bad spec or an unknown group (before anything is written).
    DbtRunError
        The training set failed to build (nothing was trained).
    """
    from models_py._dbt import run_dbt
    from models_py.training._train import plan_training, train

    started = time.perf_counter()
    run_id = uuid.uuid4().hex[:12]
    with closing(connect(settings.warehouse, read_only=True)) as con:
        if relation_exists(con, "staging.stg_raw__orders"):
            last = last_order_date(con)
        else:  # never built: the raw table says where the data ends (the build checks it)
            last = con.execute("select max(cast(ordered_at as date)) from raw.orders").fetchone()[0]
    if last is None:
        raise ScoringCutoffError("the warehouse holds no order: nothing to train on")
    data_cutoff = last + dt.timedelta(days=1)
    as_of = as_of or data_cutoff
    if as_of > data_cutoff:
        raise ScoringCutoffError(
            f"--as-of {as_of} is after the data ends (last order on {last}): labels and "
            f"features would miss the days from {data_cutoff}. Run without --as-of "
            f"(now = {data_cutoff}) or load those days first."
        )
    # Specs and groups are checked against the stored examples first, so a typo costs no build.
    with closing(connect(settings.warehouse, read_only=True)) as con:
        stored = relation_exists(con, "marts.fct_training_examples")
        # --if-needed on a warehouse the daily run keeps: decide from the monitoring marts
        # first and build the training set only when a group retrains (the usual outcome is
        # "keep", and the build is most of a retrain's cost).
        decide_first = (
            if_needed
            and stored
            and relation_exists(con, "marts.dim_cutoffs")
            and "retrain_decisions" in present_tables(con)
        )
    targets = plan_training(settings, spec_path=spec_path, groups=groups) if stored else []
    if decide_first:
        decisions = _decide(settings, targets, as_of=as_of, if_needed=True)
    if not decide_first or any(d.retrain for d in decisions):
        # The training cutoffs of "now": label windows that matured before it (dim_cutoffs).
        run_dbt(
            settings,
            ["build", "--selector", "training_set"],
            dbt_vars={
                "scoring_cutoff": as_of.isoformat(),
                "feature_cutoff_roles": ["train", "validation", "test"],
            },
        )
        targets = plan_training(settings, spec_path=spec_path, groups=groups)
    if not targets:
        raise ConfigError("no product group to retrain: the spec resolves to no target")
    if not decide_first:
        decisions = _decide(settings, targets, as_of=as_of, if_needed=if_needed)
    policy = "if-needed" if if_needed else "always"
    to_train = [d.evidence.product_group for d in decisions if d.retrain]
    for d in decisions:
        logger.info("%s: %s (%s)", d.evidence.product_group, d.decision, "; ".join(d.reasons))

    def write(con, results) -> None:
        record_decisions(
            con, _decision_rows(decisions, run_id=run_id, policy=policy, results=results)
        )

    training = None
    if to_train:
        training = train(
            settings,
            spec_path=spec_path,
            groups=to_train,
            jobs=jobs,
            actor=actor,
            progress=progress,
            on_register=write,
        )
        if not any(r.status == "registered" for r in training.results):
            # No registration transaction ran: the decisions are recorded on their own.
            with closing(connect(settings.warehouse)) as con, transaction(con):
                write(con, training.results)
    else:
        with closing(connect(settings.warehouse)) as con, transaction(con):
            write(con, [])
    return RetrainReport(
        run_id=run_id,
        as_of=as_of,
        decisions=tuple(decisions),
        training=training,
        seconds=time.perf_counter() - started,
    )
