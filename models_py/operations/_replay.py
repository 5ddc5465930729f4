"""`propensity replay`: the daily and weekly jobs run step by step over generated history.

One generated warehouse (optionally with a regime shift) is copied once per retraining policy;
each copy then lives through the same weeks: at every step the daily job scores the step's
cutoff ("now") and builds the monitoring marts, then the policy acts (``never``: nothing;
``weekly``: retrain every group; ``if-needed``: `propensity retrain --if-needed`). Every job
sees only data before its step's date: features are point in time, training cutoffs are those
whose label windows matured before now, and the monitoring marts read no order at or after now.

When every step has run, the performance marts are built once more with "now" at the end of the
data, so that every step's labels have matured, and the timeline (realised and estimated ROC AUC,
drift, retrain decisions per step, group and policy) is written to ``replay.timeline`` of a
results DuckDB file, which the report's monitoring page reads.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path

from models_py._dbt import run_dbt
from models_py._errors import ConfigError
from models_py._settings import Settings
from models_py._warehouse import connect

logger = logging.getLogger(__name__)

POLICIES = ("never", "weekly", "if-needed")
STEP_DAYS = 7
#: The packaged lean spec: one gradient-boosting candidate for `any` and two groups.
REPLAY_SPEC = Path(__file__).resolve().parent.parent / "training" / "specs" / "replay.yml"


@dataclass(frozen=True)
class ReplayPlan:
    """The dates of a replay: steps ``first + 7 k`` (k < weeks), data up to ``data_end``."""

    weeks: int
    first_as_of: dt.date
    data_end: dt.date
    shift_at: dt.date | None
    horizon_days: int

    @property
    def shift_step(self) -> int | None:
        """The first step at or after the shift."""
        if self.shift_at is None:
            return None
        return next(k for k, day in enumerate(self.steps) if day >= self.shift_at)

    @property
    def steps(self) -> list[dt.date]:
        return [self.first_as_of + dt.timedelta(days=STEP_DAYS * k) for k in range(self.weeks)]

    def step_of(self, day: dt.date) -> int:
        return (day - self.first_as_of).days // STEP_DAYS


def plan_replay(
    *, weeks: int, data_end: dt.date, horizon_days: int = 30, shift_at: dt.date | None = None
) -> ReplayPlan:
    """The last step's label window ends at the end of the data; steps are a week apart."""
    if weeks < 2:
        raise ConfigError(f"--weeks must be at least 2, got {weeks}")
    last = data_end - dt.timedelta(days=horizon_days)
    first = last - dt.timedelta(days=STEP_DAYS * (weeks - 1))
    if shift_at is not None and not first < shift_at <= last:
        raise ConfigError(
            f"--shift-at {shift_at} is outside the replayed steps ({first} .. {last}): choose a "
            f"date after the first step, e.g. {first + dt.timedelta(days=STEP_DAYS * (weeks // 2))}"
        )
    return ReplayPlan(
        weeks=weeks,
        first_as_of=first,
        data_end=data_end,
        shift_at=shift_at,
        horizon_days=horizon_days,
    )


@dataclass
class ReplayReport:
    plan: ReplayPlan
    results: Path
    seconds: dict[str, float] = field(default_factory=dict)
    summary: list[dict] = field(default_factory=list)
    page: Path | None = None

    def text(self) -> str:
        p = self.plan
        shift = f", shift at {p.shift_at} (step {p.shift_step})" if p.shift_at else ", no shift"
        lines = [
            f"replay: {p.weeks} weekly steps {p.first_as_of} .. {p.steps[-1]}{shift}; "
            f"timeline in {self.results} (table replay.timeline), page {self.page}"
        ]
        for row in self.summary:
            lines.append(
                "  {policy:<10} mean realised ROC AUC before {b} after {a}; retrains {r}; "
                "feature alerts before the shift {fa}; first alert at step {fs}; "
                "max |estimated - realised| before the shift {e}".format(
                    policy=row["policy"],
                    b=_f(row["auc_before"]),
                    a=_f(row["auc_after"]),
                    r=row["retrains"],
                    fa=row["alerts_before"],
                    fs=row["first_alert_step"] if row["first_alert_step"] is not None else "-",
                    e=_f(row["max_estimate_error_before"]),
                )
            )
        lines.append("  seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in self.seconds.items()))
        return "\n".join(lines)


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def replay_generated(
    settings: Settings,
    *,
    weeks: int = 26,
    shift_at: dt.date | None = None,
    shift: str | None = None,
    policies: Sequence[str] | None = None,
    customers: int = 50_000,
    seed: int = 0,
    days: int = 730,
    end_date: dt.date = dt.date(2026, 10, 1),
    spec_path: Path | None = None,
    workdir: Path = Path("replay"),
    results: Path | None = None,
    label: str | None = None,
) -> ReplayReport:
    """Generate a warehouse (with the regime shift, if any) and replay it (`run_replay`)."""
    from models_py.ingest.synth import generate_warehouse

    plan = plan_replay(weeks=weeks, data_end=end_date, shift_at=shift_at)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    generated = replace(settings, warehouse=workdir / "generated.duckdb")
    _remove_warehouse(generated.warehouse)
    generate_warehouse(
        generated.warehouse,
        customers=customers,
        seed=seed,
        days=days,
        end_date=end_date,
        shift_at=shift_at,
        **({"shift": shift} if shift else {}),  # else the generator's default kind
    )
    label = label or (f"shift {shift or 'default'} at {shift_at}" if shift_at else "no shift")
    return run_replay(
        generated,
        plan=plan,
        policies=policies or POLICIES,
        spec_path=spec_path,
        workdir=workdir,
        results=results or workdir / "results.duckdb",
        label=label,
    )


def run_replay(
    settings: Settings,
    *,
    plan: ReplayPlan,
    policies: Sequence[str] = POLICIES,
    spec_path: Path | None = None,
    workdir: Path,
    results: Path,
    label: str = "",
) -> ReplayReport:
    """Replay `plan` for every policy on copies of `settings.warehouse` (generated beforehand)."""
    from models_py.operations._daily import run_daily
    from models_py.operations._retrain import retrain
    from models_py.reporting._replay_page import write_replay_page

    unknown = sorted(set(policies) - set(POLICIES))
    if unknown:
        raise ConfigError(f"unknown policy {unknown}: choose among {', '.join(POLICIES)}")
    spec_path = Path(spec_path) if spec_path is not None else REPLAY_SPEC
    workdir.mkdir(parents=True, exist_ok=True)
    report = ReplayReport(plan=plan, results=results)

    # The models every policy starts from: trained at the first step, before anything shifted.
    started = time.perf_counter()
    base = replace(settings, warehouse=workdir / "start.duckdb")
    _copy_warehouse(settings.warehouse, base.warehouse)
    retrain(base, as_of=plan.first_as_of, if_needed=False, spec_path=spec_path)
    report.seconds["initial training"] = time.perf_counter() - started

    for policy in policies:
        started = time.perf_counter()
        wh = replace(settings, warehouse=workdir / f"{policy}.duckdb")
        _copy_warehouse(base.warehouse, wh.warehouse)
        for k, as_of in enumerate(plan.steps):
            run_daily(wh, as_of=as_of)
            # Step 0's models were trained just before it; the last step's would never score.
            if k in (0, len(plan.steps) - 1) or policy == "never":
                continue
            retrain(wh, as_of=as_of, if_needed=policy == "if-needed", spec_path=spec_path)
        # Every step's labels have matured at the end of the data: realised figures for all.
        run_dbt(
            wh,
            ["run", "--select", "dim_cutoffs", "fct_model_calibration", "fct_model_performance"],
            dbt_vars={
                "scoring_cutoff": plan.data_end.isoformat(),
                "feature_cutoff_roles": ["scoring"],
            },
        )
        report.seconds[policy] = time.perf_counter() - started
        _collect(wh, results, plan=plan, policy=policy, label=label)
    report.summary = summarise(results, label=label)
    report.page = write_replay_page(results, workdir / "replay.html")
    return report


def _remove_warehouse(path: Path) -> None:
    """Remove a warehouse file of an earlier replay and its write-ahead log (a replay killed
    mid-step leaves one, which DuckDB would replay onto the new file and refuse)."""
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)


def _copy_warehouse(source: Path, target: Path) -> None:
    _remove_warehouse(target)
    shutil.copyfile(source, target)


_TIMELINE_DDL = """
create schema if not exists replay;
create table if not exists replay.timeline (
    label varchar, policy varchar, step integer, as_of_date date, product_group varchar,
    model_id varchar, shifted boolean, realised_roc_auc double, estimated_roc_auc double,
    score_psi double, max_feature_psi double, feature_alerts integer, alerted_features varchar,
    decision varchar, reasons varchar
)
"""


def _collect(wh: Settings, results: Path, *, plan: ReplayPlan, policy: str, label: str) -> None:
    """Append one policy's timeline to ``replay.timeline`` of `results` (replacing its rows)."""
    from models_py.registry import ml_table

    with closing(connect(wh.warehouse, read_only=True)) as con:
        rows = con.execute(
            f"""
            with perf as (
                select product_group, model_id, as_of_date, roc_auc, estimated_roc_auc
                from marts.fct_model_performance
            ),
            feature_drift as (
                select
                    product_group, model_id, as_of_date,
                    max(psi) filter (where is_monitored) as max_feature_psi,
                    count(*) filter (where drift_status = 'alert') as feature_alerts,
                    string_agg(feature_name, ', ' order by psi desc)
                        filter (where drift_status = 'alert') as alerted_features
                from marts.fct_feature_drift
                group by all
            ),
            decisions as (
                select product_group, as_of_date, decision, reasons
                from {ml_table("retrain_decisions")}
                qualify row_number() over (
                    partition by product_group, as_of_date order by decided_at desc) = 1
            )
            select
                perf.product_group, perf.model_id, perf.as_of_date,
                perf.roc_auc, perf.estimated_roc_auc, score_drift.psi,
                feature_drift.max_feature_psi, coalesce(feature_drift.feature_alerts, 0),
                feature_drift.alerted_features, decisions.decision, decisions.reasons
            from perf
            left join marts.fct_score_drift as score_drift
                using (product_group, model_id, as_of_date)
            left join feature_drift using (product_group, model_id, as_of_date)
            left join decisions using (product_group, as_of_date)
            order by perf.product_group, perf.as_of_date
            """
        ).fetchall()
    with closing(connect(results)) as out:
        out.execute(_TIMELINE_DDL)
        out.execute("delete from replay.timeline where label = ? and policy = ?", [label, policy])
        out.executemany(
            "insert into replay.timeline values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    label,
                    policy,
                    plan.step_of(r[2]),
                    r[2],
                    r[0],
                    r[1],
                    plan.shift_at is not None and r[2] >= plan.shift_at,
                    *r[3:],
                )
                for r in rows
            ],
        )


def summarise(results: Path, *, label: str) -> list[dict]:
    """Per policy: mean realised ROC AUC before and after the shift, retrains, alerts."""
    with closing(connect(results, read_only=True)) as con:
        cur = con.execute(
            """
            select
                policy,
                avg(realised_roc_auc) filter (where not shifted) as auc_before,
                avg(realised_roc_auc) filter (where shifted) as auc_after,
                max(abs(estimated_roc_auc - realised_roc_auc)) filter (where not shifted)
                    as max_estimate_error_before,
                count(*) filter (where decision = 'retrain' and step > 0) as retrains,
                count(*) filter (where feature_alerts > 0 and not shifted) as alerts_before,
                min(step) filter (where feature_alerts > 0 and shifted) as first_alert_step
            from replay.timeline
            where label = ?
            group by policy
            order by policy
            """,
            [label],
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
