"""`propensity experiment design`: how many customers an experiment needs, and for how long.

Sample size per arm, two-sided, for each treated arm against the control with equal arm sizes:

- **conversion**: statsmodels' `NormalIndPower` (the z-test of two proportions,
  `zt_ind_solve_power`) on Cohen's h = `proportion_effectsize(baseline + mde, baseline)`, the
  arcsine-transformed difference (its variance does not depend on the rate, so one formula
  serves every baseline);
- **revenue** per customer: statsmodels' `TTestIndPower` on Cohen's d = mde / sd, with the
  standard deviation of revenue per customer observed in the warehouse (the last complete
  window before the audience's cutoff) unless given.

Several arms: each of the arms - 1 comparisons with the control is tested at alpha / (arms - 1)
(Bonferroni). The analysis corrects with Holm, which rejects at least whatever Bonferroni
rejects, so the design's power is a floor.

Duration: an audience (a campaign of fct_campaign_audiences) can be assigned at once; when it
holds fewer customers than the design needs, the rest must come from customers entering the
audience later. That inflow is measured from the score history (fct_propensity_scores: the
campaign's selection rule applied to each scored cutoff of the last 28 days, new customers per
day, times the share the suppression rules leave), or given with ``--daily-volume``. Duration =
enrolment days - 1 + the outcome window (the last customer's window must close).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass

import pyarrow as pa

from models_py._errors import ConfigError, WarehouseError
from models_py._warehouse import table_exists, transaction
from models_py.experiments._errors import EmptyAudienceError

DESIGNS = "experiment_designs"
#: Days of score history the audience's daily inflow is measured over.
INFLOW_DAYS = 28
DESIGN_SCHEMA = pa.schema(
    [
        pa.field("design_id", pa.string()),
        pa.field("designed_at", pa.timestamp("us")),
        pa.field("metric", pa.string()),
        pa.field("arms", pa.int32()),
        pa.field("alpha", pa.float64()),
        pa.field("alpha_per_comparison", pa.float64()),
        pa.field("correction", pa.string()),
        pa.field("power", pa.float64()),
        pa.field("baseline", pa.float64()),
        pa.field("baseline_sd", pa.float64()),
        pa.field("baseline_source", pa.string()),
        pa.field("mde", pa.float64()),
        pa.field("effect_size", pa.float64()),
        pa.field("effect_size_kind", pa.string()),
        pa.field("customers_per_arm", pa.int64()),
        pa.field("customers_total", pa.int64()),
        pa.field("audience", pa.string()),
        pa.field("audience_size", pa.int64()),
        pa.field("daily_volume", pa.float64()),
        pa.field("window_days", pa.int32()),
        pa.field("enrolment_days", pa.int32()),
        pa.field("duration_days", pa.int32()),
        pa.field("note", pa.string()),
    ]
)


@dataclass(frozen=True)
class Design:
    """The answer of `propensity experiment design` (one row of raw.experiment_designs)."""

    metric: str
    arms: int
    alpha: float
    alpha_per_comparison: float
    correction: str
    power: float
    baseline: float | None
    baseline_sd: float | None
    baseline_source: str
    mde: float
    effect_size: float
    effect_size_kind: str
    customers_per_arm: int
    customers_total: int
    audience: str | None
    audience_size: int | None
    daily_volume: float | None
    window_days: int
    enrolment_days: int | None
    duration_days: int | None
    note: str

    def summary(self) -> str:
        what = (
            f"conversion {self.baseline:.2%} -> {self.baseline + self.mde:.2%}"
            if self.metric == "conversion" and self.baseline is not None
            else f"revenue per customer +{self.mde:,.2f} (sd {self.baseline_sd:,.2f})"
        )
        lines = [
            f"design: {what} ({self.baseline_source}); {self.effect_size_kind} "
            f"{self.effect_size:.4f}",
            (
                f"{self.arms} arms: each of {self.arms - 1} comparisons with the control at alpha "
                f"{self.alpha_per_comparison:.4g} ({self.correction} of {self.alpha:g})"
                if self.arms > 2
                else f"2 arms: one comparison at alpha {self.alpha:g}"
            )
            + f", power {self.power:.0%}, two-sided",
            f"customers per arm: {self.customers_per_arm:,}; in total: {self.customers_total:,}",
        ]
        if self.audience is not None:
            inflow = (
                f", about {self.daily_volume:,.0f} new customers a day"
                if self.daily_volume is not None
                else ""
            )
            lines.append(f"audience {self.audience}: {self.audience_size:,} customers now{inflow}")
        elif self.daily_volume is not None:
            lines.append(f"daily volume: {self.daily_volume:,.0f} customers")
        if self.duration_days is not None:
            lines.append(
                f"duration: {self.enrolment_days} days of enrolment + a {self.window_days}-day "
                f"outcome window = {self.duration_days} days"
            )
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


def sample_size(
    metric: str,
    *,
    mde: float,
    arms: int = 2,
    alpha: float = 0.05,
    power: float = 0.8,
    baseline: float | None = None,
    sd: float | None = None,
) -> tuple[int, float, float]:
    """(customers per arm, effect size, alpha per comparison) of a two-sided test of each of
    arms - 1 treated arms against the control, Bonferroni over the comparisons.

    conversion: `NormalIndPower` on Cohen's h of (baseline + mde, baseline); revenue:
    `TTestIndPower` on d = mde / sd."""
    from statsmodels.stats.power import NormalIndPower, TTestIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    if arms < 2:
        raise ConfigError(
            f"an experiment needs at least 2 arms (a control and a treatment), got {arms}"
        )
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ConfigError(f"alpha and power must be in (0, 1), got alpha {alpha}, power {power}")
    if mde == 0:
        raise ConfigError("the minimum detectable effect (--mde) must not be 0")
    alpha_per = alpha / (arms - 1)
    if metric == "conversion":
        if baseline is None or not 0 < baseline < 1 or not 0 < baseline + mde < 1:
            raise ConfigError(
                f"conversion needs a baseline rate in (0, 1) with baseline + mde in (0, 1), got "
                f"baseline {baseline}, mde {mde}"
            )
        effect = float(proportion_effectsize(baseline + mde, baseline))
        n = NormalIndPower().solve_power(
            effect_size=abs(effect), alpha=alpha_per, power=power, ratio=1.0
        )
    elif metric == "revenue":
        if sd is None or not sd > 0:
            raise ConfigError(f"revenue needs the standard deviation per customer > 0, got {sd}")
        effect = mde / sd
        n = TTestIndPower().solve_power(
            effect_size=abs(effect), alpha=alpha_per, power=power, ratio=1.0
        )
    else:
        raise ConfigError(f"metric must be conversion or revenue, got {metric!r}")
    return math.ceil(float(n)), effect, alpha_per


@dataclass(frozen=True)
class _Observed:
    audience_size: int
    as_of: dt.date
    conversion: float
    revenue_mean: float
    revenue_sd: float
    daily_volume: float | None


def _observed(con, audience: str | None, window_days: int) -> _Observed:
    """The audience now (or every customer), its conversion and revenue per customer over the
    last complete window before its cutoff, and its daily inflow from the score history."""
    if not table_exists(con, "intermediate", "int_orders_summarised"):
        raise WarehouseError(
            "intermediate.int_orders_summarised does not exist: run `propensity build` first, "
            "or give --baseline-rate (conversion) or --baseline-sd (revenue)"
        )
    if audience is not None:
        if not table_exists(con, "marts", "fct_campaign_audiences"):
            raise WarehouseError(
                "marts.fct_campaign_audiences does not exist: set campaigns "
                "(`propensity campaigns set FILE.yml`) and run `propensity build`"
            )
        row = con.execute(
            "select count(*), max(as_of_date), count(*) filter (where is_eligible "
            "and exclusion_reason is null), count(*) filter (where is_eligible) "
            "from marts.fct_campaign_audiences where campaign_id = ?",
            [audience],
        ).fetchone()
        if not row[0]:
            known = [
                r[0]
                for r in con.execute(
                    "select distinct campaign_id from marts.fct_campaign_audiences order by 1"
                ).fetchall()
            ]
            raise EmptyAudienceError(
                f"campaign {audience!r} has no row in marts.fct_campaign_audiences (campaigns: "
                f"{', '.join(known) or 'none'})"
            )
        if not row[2]:
            raise EmptyAudienceError(
                f"the audience of campaign {audience!r} at {row[1]} is empty: {row[3]:,} customers "
                "pass its selection and the suppression rules exclude all of them. Loosen the "
                "campaign's rules (`propensity campaigns set`) and run `propensity build`."
            )
        as_of = row[1]
        members = (
            "select customer_id from marts.fct_campaign_audiences where campaign_id = $audience "
            "and is_eligible and exclusion_reason is null"
        )
        suppressed_share = row[2] / row[3] if row[3] else 1.0
    else:
        last = con.execute(
            "select max(ordered_at) from intermediate.int_orders_summarised"
        ).fetchone()[0]
        if last is None:
            raise EmptyAudienceError("the warehouse has no order: nothing to measure a baseline on")
        as_of = last.date() + dt.timedelta(days=1)
        members = "select customer_id from raw.customers where created_at < $start"
        suppressed_share = 1.0
    end = dt.datetime(as_of.year, as_of.month, as_of.day)
    start = end - dt.timedelta(days=window_days)
    n, conversion, mean, sd = con.execute(
        f"""
        with members as ({members}),
        in_window as (
            select customer_id, sum(cast(net_amount + return_amount as double)) as paid
            from intermediate.int_orders_summarised
            where is_purchase and ordered_at >= $start and ordered_at < $end
            group by customer_id
        )
        select count(*), avg(case when in_window.customer_id is null then 0 else 1 end),
            avg(coalesce(in_window.paid, 0)), stddev_samp(coalesce(in_window.paid, 0))
        from members left join in_window on members.customer_id = in_window.customer_id
        """,
        {"start": start, "end": end, **({"audience": audience} if audience else {})},
    ).fetchone()
    if not n:
        raise EmptyAudienceError("no customer was created before the baseline window")
    daily = _inflow(con, audience, as_of) if audience else None
    return _Observed(
        audience_size=int(n),
        as_of=as_of,
        conversion=float(conversion),
        revenue_mean=float(mean),
        revenue_sd=float(sd or 0.0),
        daily_volume=None if daily is None else daily * suppressed_share,
    )


def _inflow(con, campaign: str, as_of: dt.date) -> float | None:
    """New customers per day entering the campaign's selection over the scored cutoffs of the
    last INFLOW_DAYS days (None with fewer than two cutoffs)."""
    if not (
        table_exists(con, "marts", "fct_propensity_scores")
        and table_exists(con, "marts", "dim_campaigns")
    ):
        return None
    row = con.execute(
        f"""
        with campaign as (select * from marts.dim_campaigns where campaign_id = $campaign),
        scores as (
            select s.customer_id, s.as_of_date, s.score, s.decile,
                row_number() over (
                    partition by s.as_of_date order by s.score desc, s.customer_id
                ) as score_rank
            from marts.fct_propensity_scores as s
            where s.product_group = (select product_group from campaign)
                and s.as_of_date > $as_of - {INFLOW_DAYS} and s.as_of_date <= $as_of
        ),
        selected as (
            select scores.customer_id, scores.as_of_date
            from scores cross join campaign
            where case campaign.selection_type
                when 'threshold' then scores.score >= campaign.selection_threshold
                when 'top_k' then scores.score_rank <= campaign.selection_top_k
                when 'deciles' then list_contains(campaign.selection_deciles, scores.decile)
                else false end
        ),
        first_seen as (
            select customer_id, min(as_of_date) as first_date from selected group by customer_id
        )
        select min(as_of_date), max(as_of_date), count(distinct as_of_date),
            (select count(*) from first_seen
             where first_date > (select min(as_of_date) from selected))
        from selected
        """,
        {"campaign": campaign, "as_of": as_of},
    ).fetchone()
    first, last, cutoffs, entrants = row
    if not cutoffs or cutoffs < 2:
        return None
    return entrants / (last - first).days


def design_experiment(
    con=None,
    *,
    metric: str = "conversion",
    mde: float,
    arms: int = 2,
    alpha: float = 0.05,
    power: float = 0.8,
    baseline_rate: float | None = None,
    baseline_sd: float | None = None,
    audience: str | None = None,
    window_days: int = 30,
    daily_volume: float | None = None,
) -> Design:
    """Size an experiment (see the module docstring). `con` (the warehouse) is needed for what
    is not given: a baseline rate or revenue sd measured there, or an audience's size and inflow.
    """
    if window_days < 1:
        raise ConfigError(f"--window-days must be >= 1, got {window_days}")
    if daily_volume is not None and not daily_volume > 0:
        raise ConfigError(f"--daily-volume must be > 0, got {daily_volume}")
    needs_warehouse = (
        audience is not None
        or (metric == "conversion" and baseline_rate is None)
        or (metric == "revenue" and baseline_sd is None)
    )
    observed = None
    if needs_warehouse:
        if con is None:
            raise ConfigError(
                "without a warehouse, give --baseline-rate (conversion) or --baseline-sd (revenue)"
            )
        observed = _observed(con, audience, window_days)
    who = f"campaign {audience}" if audience else "every customer"
    if metric == "conversion":
        if baseline_rate is not None:
            baseline, source, sd = baseline_rate, "given", None
        else:
            baseline = observed.conversion  # type: ignore[union-attr]
            source = f"observed: {who}, {window_days} days before {observed.as_of}"  # type: ignore[union-attr]
            sd = None
        if not 0 < baseline < 1:
            raise ConfigError(
                f"the baseline conversion is {baseline:.4f} ({source}): a design needs a rate "
                "strictly between 0 and 1; give --baseline-rate"
            )
        per_arm, effect, alpha_per = sample_size(
            metric, mde=mde, arms=arms, alpha=alpha, power=power, baseline=baseline
        )
        kind = "Cohen's h"
    else:
        if baseline_sd is not None:
            baseline, sd, source = None, baseline_sd, "given"
        else:
            baseline = observed.revenue_mean  # type: ignore[union-attr]
            sd = observed.revenue_sd  # type: ignore[union-attr]
            source = f"observed: {who}, {window_days} days before {observed.as_of}"  # type: ignore[union-attr]
        per_arm, effect, alpha_per = sample_size(
            metric, mde=mde, arms=arms, alpha=alpha, power=power, sd=sd
        )
        kind = "Cohen's d"
    total = per_arm * arms
    size = observed.audience_size if (observed and audience) else None
    inflow = (
        daily_volume if daily_volume is not None else (observed.daily_volume if observed else None)
    )
    enrolment, note = _enrolment(total, size, inflow)
    return Design(
        metric=metric,
        arms=arms,
        alpha=alpha,
        alpha_per_comparison=alpha_per,
        correction="Bonferroni" if arms > 2 else "none",
        power=power,
        baseline=baseline,
        baseline_sd=sd,
        baseline_source=source,
        mde=mde,
        effect_size=effect,
        effect_size_kind=kind,
        customers_per_arm=per_arm,
        customers_total=total,
        audience=audience,
        audience_size=size,
        daily_volume=inflow,
        window_days=window_days,
        enrolment_days=enrolment,
        duration_days=None if enrolment is None else enrolment - 1 + window_days,
        note=note,
    )


def _enrolment(
    total: int, audience_size: int | None, inflow: float | None
) -> tuple[int | None, str]:
    if audience_size is not None and audience_size >= total:
        return 1, (
            f"the audience holds enough customers: assign {total:,} of its {audience_size:,} "
            "(or all of them, for more power) on one day"
        )
    missing = total - (audience_size or 0)
    if inflow:
        days = (1 if audience_size else 0) + math.ceil(missing / inflow)
        return days, ""
    if audience_size is not None:
        return None, (
            f"the audience holds {audience_size:,} customers and the design needs {total:,}; "
            "its daily inflow is unknown (fewer than two scored cutoffs in the last "
            f"{INFLOW_DAYS} days): widen the audience, accept a larger effect, or give "
            "--daily-volume"
        )
    return None, "give --audience or --daily-volume for the duration"


def save_design(con, design_id: str, design: Design, *, designed_at: dt.datetime) -> None:
    """Write (or replace) the design `design_id` in raw.experiment_designs, atomically."""
    row = {"design_id": design_id, "designed_at": designed_at, **asdict(design)}
    table = pa.Table.from_pylist([row], schema=DESIGN_SCHEMA)
    columns = ", ".join(f'"{f.name}" {_ddl(f.type)}' for f in DESIGN_SCHEMA)
    with transaction(con):
        con.execute("create schema if not exists raw")
        con.execute(f"create table if not exists raw.{DESIGNS} ({columns})")
        con.execute(f"delete from raw.{DESIGNS} where design_id = ?", [design_id])
        con.register("__design", table)
        try:
            con.execute(f"insert into raw.{DESIGNS} by name select * from __design")
        finally:
            con.unregister("__design")


def _ddl(t: pa.DataType) -> str:
    return {
        pa.string(): "VARCHAR",
        pa.float64(): "DOUBLE",
        pa.int32(): "INTEGER",
        pa.int64(): "BIGINT",
        pa.timestamp("us"): "TIMESTAMP",
    }[t]
