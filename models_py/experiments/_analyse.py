"""`propensity experiment analyse ID`: each arm against the control, with p-values corrected for
several arms, the sample ratio test, CUPED and a verdict in plain words.

What runs where, and why:

- **In the warehouse** (dbt's fct_experiment_results, or the one aggregate query of
  `analyse_relation`): everything that reads the customer rows: counts, means, variances and
  covariances per arm. These are sums over millions of rows and stay in SQL; dbt also derives
  the intervals, lifts and CUPED estimates from them for BI.
- **Here, in Python**: what needs distribution functions or ranks over the arms, on a handful of
  per-arm rows: p-values (scipy's normal), the Holm correction (statsmodels' `multipletests`),
  the sample ratio chi-square test (scipy), the detectable effect (statsmodels' power), the
  verdict. The intervals are recomputed here from the same per-arm sums, so a table from any
  relation (e.g. datasets.hillstrom) is analysed exactly like a warehouse experiment; a test
  checks that both agree with the mart.

Estimates: difference of means with the unpooled (Welch) standard error and normal intervals
(the same as statsmodels' ``CompareMeans.zconfint_diff(usevar='unequal')``); relative lift with
a delta-method interval; CUPED (Deng et al. 2013) with theta pooled from the within-arm
covariances of the metric and its pre-period covariate. Holm controls the family-wise error
over the treated arms of one metric; it is uniformly more powerful than Bonferroni, which the
design uses to size the arms (so a design's sample size is, if anything, conservative).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from models_py._errors import WarehouseError
from models_py._warehouse import quote_ident, relation_columns, relation_exists, table_exists
from models_py.experiments._assign import bucket_sql
from models_py.experiments._config import BUCKETS
from models_py.experiments._errors import (
    ExperimentRunningError,
    UnknownArmError,
    UnknownExperimentError,
)

#: The sample ratio test flags a mismatch below this p-value (GrowthBook's and Eppo's default).
SRM_P_VALUE = 0.001
#: The usual line of a standardised mean difference worth a look.
SMD_LINE = 0.1
#: Units of the warehouse metrics, for the verdict.
METRIC_KINDS = {"conversion": "rate", "orders": "count", "revenue": "money", "margin": "money"}


@dataclass(frozen=True)
class ArmStats:
    """The per-arm sums an analysis needs (one row of fct_experiment_results)."""

    arm: str
    customers: int
    mean: float
    variance: float
    covariate_mean: float | None = None
    covariate_variance: float | None = None
    covariance: float | None = None
    expected_share: float | None = None


@dataclass(frozen=True)
class Comparison:
    """One treated arm against the control on one metric."""

    metric: str
    kind: str
    arm: str
    control_arm: str
    customers: int
    control_customers: int
    mean: float
    control_mean: float
    difference: float
    se: float
    ci_lower: float
    ci_upper: float
    z: float
    p_value: float
    relative_lift: float | None
    relative_lift_ci_lower: float | None
    relative_lift_ci_upper: float | None
    incremental_total: float
    incremental_ci_lower: float
    incremental_ci_upper: float
    detectable_effect: float | None
    cuped_difference: float | None = None
    cuped_se: float | None = None
    cuped_ci_lower: float | None = None
    cuped_ci_upper: float | None = None
    cuped_p_value: float | None = None
    variance_reduction: float | None = None
    ci_width_ratio: float | None = None
    p_value_holm: float = float("nan")
    cuped_p_value_holm: float | None = None

    @property
    def has_cuped(self) -> bool:
        return self.cuped_difference is not None and self.cuped_se is not None

    def best(self) -> tuple[float, float, float, float]:
        """(difference, ci_lower, ci_upper, Holm p) of the estimate the verdict uses: CUPED when
        there is a covariate (same target, narrower interval), the plain one otherwise."""
        if self.has_cuped and self.cuped_p_value_holm is not None:
            return (
                self.cuped_difference,
                self.cuped_ci_lower,
                self.cuped_ci_upper,
                self.cuped_p_value_holm,
            )  # type: ignore[return-value]
        return self.difference, self.ci_lower, self.ci_upper, self.p_value_holm


@dataclass(frozen=True)
class SampleRatio:
    """Chi-square test of the arm counts against the designed shares."""

    counts: dict[str, int]
    expected_shares: dict[str, float]
    chi_square: float
    df: int
    p_value: float

    @property
    def is_mismatch(self) -> bool:
        return self.p_value < SRM_P_VALUE


@dataclass(frozen=True)
class Imbalance:
    arm: str
    feature: str
    smd: float


@dataclass(frozen=True)
class Balance:
    """Standardised mean differences of pre-assignment features, arm against control."""

    features: int
    worst: Imbalance | None
    imbalanced: tuple[Imbalance, ...] = ()


@dataclass(frozen=True)
class ExperimentAnalysis:
    """Everything `propensity experiment analyse` prints, and the report page shows."""

    experiment_id: str
    source: str
    control_arm: str
    primary_metric: str
    alpha: float
    comparisons: tuple[Comparison, ...]
    sample_ratio: SampleRatio
    status: str = "complete"
    data_until: dt.datetime | None = None
    window_end: dt.datetime | None = None
    balance: Balance | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_interim(self) -> bool:
        return self.status != "complete"

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(c.metric for c in self.comparisons))

    def for_metric(self, metric: str) -> list[Comparison]:
        return [c for c in self.comparisons if c.metric == metric]

    def verdict(self) -> list[str]:
        """The analysis in plain words, most important first."""
        lines: list[str] = []
        sr = self.sample_ratio
        if sr.is_mismatch:
            counts = ", ".join(
                f"{arm} {n:,} (expected {sr.expected_shares[arm]:.1%})"
                for arm, n in sr.counts.items()
            )
            lines.append(
                f"SAMPLE RATIO MISMATCH: the arm counts {counts} are not what the assignment "
                f"shares give (chi-square {sr.chi_square:.1f}, p = {sr.p_value:.1g}). Customers "
                "were lost or moved between assignment and analysis: do not trust the figures "
                "below until the cause is found (docs/experiments.md)."
            )
        if self.is_interim:
            closes = f"{self.window_end:%Y-%m-%d %H:%M}" if self.window_end else "later"
            until = f"{self.data_until:%Y-%m-%d}" if self.data_until else "the newest data"
            lines.append(
                f"INTERIM: the outcome window closes on {closes}; outcomes are observed until "
                f"{until}. These figures will change: do not stop the experiment because an "
                "interval excludes 0 today (looking repeatedly inflates false positives)."
            )
        primary = self.for_metric(self.primary_metric) or self.for_metric(self.metrics[0])
        for c in primary:
            lines.append(_arm_sentence(c, self.alpha, n_arms=len(primary)))
        if self.balance is not None:
            b = self.balance
            if not b.imbalanced:
                worst = (
                    f" (largest |SMD| {abs(b.worst.smd):.3f}: {b.worst.feature}, arm {b.worst.arm})"
                    if b.worst
                    else ""
                )
                lines.append(
                    f"Balance: none of {b.features} pre-assignment features differs between the "
                    f"arms beyond chance{worst}."
                )
            else:
                listed = ", ".join(
                    f"{i.feature} (arm {i.arm}, SMD {i.smd:+.3f})" for i in b.imbalanced[:5]
                )
                lines.append(
                    f"Balance: {len(b.imbalanced)} of {b.features} features differ between the "
                    f"arms beyond chance: {listed}. Check the audience and the assignment; "
                    "CUPED corrects part of a pre-period difference."
                )
        lines.extend(self.notes)
        return lines


def level(kind: str, value: float) -> str:
    """A level of a metric: a rate in percent, money in cents, a count to 3 decimals."""
    if kind == "rate":
        return f"{value:.2%}"
    if kind == "money":
        return f"{value:,.2f}"
    return f"{value:.3f}"


def change(kind: str, value: float, *, signed: bool = True) -> str:
    """A difference of a metric: a rate in percentage points."""
    sign = "+" if signed else ""
    if kind == "rate":
        return f"{value * 100:{sign}.2f} points"
    if kind == "money":
        return f"{value:{sign},.2f}"
    return f"{value:{sign}.3f}"


def _arm_sentence(c: Comparison, alpha: float, *, n_arms: int) -> str:
    difference, lo, hi, p = c.best()
    how = "CUPED-adjusted " if c.has_cuped else ""  # the estimate best() returns
    per = " per customer" if c.kind != "rate" else ""
    holm = "Holm-adjusted " if n_arms > 1 else ""
    lift = f", {c.relative_lift:+.1%}" if c.relative_lift is not None else ""
    figures = (
        f"({level(c.kind, c.control_mean)} -> {level(c.kind, c.mean)}{lift}; {how}95 % CI "
        f"{change(c.kind, lo)} .. {change(c.kind, hi)}; {holm}p = {p:.2g})"
    )
    if p < alpha:
        direction = "raised" if difference > 0 else "lowered"
        extra = ""
        if c.kind == "rate":
            extra = (
                f" That is about {difference * c.customers:+,.0f} customers with a {c.metric} "
                f"among its {c.customers:,} because of it (95 % CI {lo * c.customers:+,.0f} .. "
                f"{hi * c.customers:+,.0f})."
            )
        size = change(c.kind, abs(difference), signed=False)
        return (
            f"Arm {c.arm} {direction} {c.metric}{per} by {size} "
            f"against {c.control_arm} {figures}: a real effect at the {alpha:.0%} level.{extra}"
        )
    detectable = ""
    if c.detectable_effect:
        detectable = (
            f" With {c.customers:,} and {c.control_customers:,} customers the experiment detects "
            f"about {change(c.kind, c.detectable_effect, signed=False)} with 80 % power; a "
            "smaller effect may exist."
        )
    return (
        f"Arm {c.arm}: no effect on {c.metric}{per} detected against {c.control_arm}, "
        f"{how}{change(c.kind, difference)} {figures}.{detectable}"
    )


# ----------------------------------------------------------------------------- the statistics


def _norm():
    from scipy.stats import norm

    return norm


def cuped_parameters(arms: Sequence[ArmStats]) -> tuple[float, float] | None:
    """(theta, grand mean of the covariate): theta = pooled within-arm covariance / pooled
    within-arm variance of the covariate, as fct_experiment_results computes it."""
    if any(a.covariate_mean is None for a in arms):
        return None
    n = sum(a.customers for a in arms)
    grand = sum(a.customers * a.covariate_mean for a in arms) / n  # type: ignore[operator]
    denominator = sum((a.customers - 1) * a.covariate_variance for a in arms)  # type: ignore[operator]
    numerator = sum((a.customers - 1) * a.covariance for a in arms)  # type: ignore[operator]
    theta = numerator / denominator if denominator else 0.0
    return theta, grand


def compare_arms(
    metric: str,
    arms: Sequence[ArmStats],
    control: str,
    *,
    alpha: float = 0.05,
    kind: str = "amount",
    detectable: bool = True,
) -> list[Comparison]:
    """Every arm of `arms` but `control` against `control` on one metric, with Holm-adjusted
    p-values over those arms (plain and CUPED separately); with `detectable` also the effect
    the arm's size detects with 80 % power (a numerical solve: off for the A/A runs)."""
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.power import NormalIndPower

    norm = _norm()
    z975 = float(norm.ppf(0.975))
    by_arm = {a.arm: a for a in arms}
    if control not in by_arm:
        raise UnknownArmError(
            f"control arm {control!r} is not one of the arms {sorted(by_arm)} of {metric}"
        )
    c = by_arm[control]
    cuped = cuped_parameters(arms)
    treated = [a for a in arms if a.arm != control]
    out: list[dict] = []
    for a in treated:
        diff = a.mean - c.mean
        se = math.sqrt(a.variance / a.customers + c.variance / c.customers)
        z = diff / se if se > 0 else 0.0
        p = float(2 * norm.sf(abs(z))) if se > 0 else 1.0
        rel = rel_lo = rel_hi = None
        if c.mean != 0:
            rel = a.mean / c.mean - 1
            rel_se = math.sqrt(
                a.variance / a.customers / c.mean**2
                + a.mean**2 * c.variance / c.customers / c.mean**4
            )
            rel_lo, rel_hi = rel - z975 * rel_se, rel + z975 * rel_se
        # the effect this experiment detects with 80 % power at the Bonferroni alpha of its arms
        sd = math.sqrt((a.variance + c.variance) / 2)
        detectable_effect = None
        if detectable and sd > 0:
            d = NormalIndPower().solve_power(
                effect_size=None,
                nobs1=a.customers,
                alpha=alpha / len(treated),
                power=0.8,
                ratio=c.customers / a.customers,
            )
            detectable_effect = float(d) * sd
        row = dict(
            metric=metric,
            kind=kind,
            arm=a.arm,
            control_arm=control,
            customers=a.customers,
            control_customers=c.customers,
            mean=a.mean,
            control_mean=c.mean,
            difference=diff,
            se=se,
            ci_lower=diff - z975 * se,
            ci_upper=diff + z975 * se,
            z=z,
            p_value=p,
            relative_lift=rel,
            relative_lift_ci_lower=rel_lo,
            relative_lift_ci_upper=rel_hi,
            incremental_total=diff * a.customers,
            incremental_ci_lower=(diff - z975 * se) * a.customers,
            incremental_ci_upper=(diff + z975 * se) * a.customers,
            detectable_effect=detectable_effect,
        )
        if cuped is not None:
            theta, grand = cuped

            (ma, va), (mc, vc) = _adjusted(a, theta, grand), _adjusted(c, theta, grand)
            cdiff = ma - mc
            cse = math.sqrt(va / a.customers + vc / c.customers)
            row.update(
                cuped_difference=cdiff,
                cuped_se=cse,
                cuped_ci_lower=cdiff - z975 * cse,
                cuped_ci_upper=cdiff + z975 * cse,
                cuped_p_value=float(2 * norm.sf(abs(cdiff / cse))) if cse > 0 else 1.0,
                variance_reduction=1 - (cse / se) ** 2 if se > 0 else None,
                ci_width_ratio=cse / se if se > 0 else None,
            )
        out.append(row)
    for key in ("p_value", "cuped_p_value") if cuped is not None else ("p_value",):
        p_values = [r[key] for r in out]
        # One arm: Holm changes nothing (and multipletests is slow for the A/A runs).
        holm = multipletests(p_values, alpha=alpha, method="holm")[1] if len(out) > 1 else p_values
        for r, p in zip(out, holm, strict=True):
            r[f"{key}_holm"] = float(p)
    return [Comparison(**r) for r in out]


def _adjusted(s: ArmStats, theta: float, grand: float) -> tuple[float, float]:
    """CUPED mean and variance of one arm: y - theta (x - grand mean of x)."""
    mean = s.mean - theta * (s.covariate_mean - grand)  # type: ignore[operator]
    var = s.variance - 2 * theta * s.covariance + theta**2 * s.covariate_variance  # type: ignore[operator]
    return mean, max(var, 0.0)


def sample_ratio(counts: dict[str, int], shares: dict[str, float]) -> SampleRatio:
    """Chi-square goodness of fit of the arm counts to the designed shares (scipy)."""
    from scipy.stats import chisquare

    arms = list(counts)
    total = sum(counts.values())
    share_sum = sum(shares[a] for a in arms)
    expected = [total * shares[a] / share_sum for a in arms]
    result = chisquare([counts[a] for a in arms], f_exp=expected)
    return SampleRatio(
        counts=dict(counts),
        expected_shares={a: shares[a] / share_sum for a in arms},
        chi_square=float(result.statistic),
        df=len(arms) - 1,
        p_value=float(result.pvalue),
    )


# ----------------------------------------------------------------------- warehouse experiments


def list_experiments(con) -> list[dict]:
    """The experiments of marts.dim_experiments (empty when the mart is absent)."""
    if not table_exists(con, "marts", "dim_experiments"):
        return []
    cur = con.execute("select * from marts.dim_experiments order by experiment_id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _rows(con, sql: str, params: Sequence = ()) -> list[dict]:
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def analyse_experiment(
    con,
    experiment_id: str,
    *,
    control: str | None = None,
    alpha: float = 0.05,
    final: bool = False,
) -> ExperimentAnalysis:
    """Analyse an experiment of the warehouse from marts.fct_experiment_results (built by dbt).

    Parameters
    ----------
    con
        DuckDB connection to the warehouse.
    experiment_id : str
        The experiment (marts.dim_experiments).
    control : str, optional
        Compare against this arm instead of the experiment's control.
    alpha : float
        Family-wise error rate over the treated arms of a metric (Holm).
    final : bool
        Refuse (`ExperimentRunningError`) when the outcome window has not closed, instead of
        returning interim figures flagged as such.

    Raises
    ------
    UnknownExperimentError, UnknownArmError, ExperimentRunningError, WarehouseError
    """
    if not table_exists(con, "marts", "fct_experiment_results"):
        raise WarehouseError(
            "marts.fct_experiment_results does not exist: run `propensity build` (or "
            "`dbt build --select +fct_experiment_results`) first"
        )
    experiments = {e["experiment_id"]: e for e in list_experiments(con)}
    if experiment_id not in experiments:
        raise UnknownExperimentError(
            f"no experiment {experiment_id!r} in marts.dim_experiments (experiments: "
            f"{', '.join(experiments) or 'none'}). Assign it (`propensity experiment assign`) or "
            "load it into raw.treatments, then run `propensity build`."
        )
    e = experiments[experiment_id]
    if e["undeclared_arms"]:
        raise UnknownArmError(
            f"experiment {experiment_id!r} has arms {e['undeclared_arms']} in its assignments that "
            "experiments.yml does not declare: declare every arm with its share and run "
            "`propensity experiment assign FILE.yml` and `propensity build`."
        )
    if e["status"] == "not_started":
        raise ExperimentRunningError(
            f"experiment {experiment_id!r} was assigned at {e['first_assigned_at']}, on or after "
            f"the newest data ({e['data_until']:%Y-%m-%d}): there is no outcome to analyse yet."
        )
    if e["control_arm"] is None and control is None:
        raise UnknownArmError(
            f"experiment {experiment_id!r} has no control arm (arms: {e['arm_list']}): give "
            "--control ARM, or declare it in experiments.yml (`assignment: external`)."
        )
    arms = e["arm_list"].split(", ")
    if control is not None and control not in arms:
        raise UnknownArmError(
            f"--control {control!r} is not an arm of experiment {experiment_id!r} "
            f"(arms: {e['arm_list']})"
        )
    if final and e["status"] != "complete":
        raise ExperimentRunningError(
            f"experiment {experiment_id!r} is still running: its outcome window closes on "
            f"{e['window_end']:%Y-%m-%d %H:%M} and the newest data is of "
            f"{e['data_until']:%Y-%m-%d}. Analyse without --final for interim figures."
        )
    rows = _rows(
        con,
        "select * from marts.fct_experiment_results where experiment_id = ? order by metric, arm",
        [experiment_id],
    )
    if not rows:
        raise UnknownExperimentError(
            f"marts.fct_experiment_results has no rows for experiment {experiment_id!r}: run "
            "`propensity build` after assigning or loading it"
        )
    control = control or e["control_arm"]
    comparisons: list[Comparison] = []
    counts: dict[str, int] = {}
    shares: dict[str, float] = {}
    for metric in [m for m in METRIC_KINDS if any(r["metric"] == m for r in rows)]:
        stats = [
            ArmStats(
                arm=r["arm"],
                customers=int(r["customers"]),
                mean=float(r["mean"]),
                variance=float(r["variance"]),
                covariate_mean=r["covariate_mean"],
                covariate_variance=r["covariate_variance"],
                covariance=r["covariance"],
                expected_share=r["expected_share"],
            )
            for r in rows
            if r["metric"] == metric
        ]
        if metric == "conversion":
            counts = {s.arm: s.customers for s in stats}
            shares = {s.arm: float(s.expected_share) for s in stats}  # type: ignore[arg-type]
        comparisons += compare_arms(metric, stats, control, alpha=alpha, kind=METRIC_KINDS[metric])
    return ExperimentAnalysis(
        experiment_id=experiment_id,
        source="marts.fct_experiment_results",
        control_arm=control,
        primary_metric=e["primary_metric"],
        alpha=alpha,
        comparisons=tuple(comparisons),
        sample_ratio=sample_ratio(counts, shares),
        status=e["status"],
        data_until=e["data_until"],
        window_end=e["window_end"],
        balance=_mart_balance(con, experiment_id, control),
    )


def _mart_balance(con, experiment_id: str, control: str) -> Balance | None:
    if not table_exists(con, "marts", "fct_experiment_balance"):
        return None
    rows = _rows(
        con,
        "select arm, feature, smd, is_imbalanced, control_arm from marts.fct_experiment_balance "
        "where experiment_id = ? order by abs(smd) desc",
        [experiment_id],
    )
    if not rows or rows[0]["control_arm"] != control:
        return None
    return Balance(
        features=len({r["feature"] for r in rows}),
        worst=Imbalance(rows[0]["arm"], rows[0]["feature"], float(rows[0]["smd"])),
        imbalanced=tuple(
            Imbalance(r["arm"], r["feature"], float(r["smd"])) for r in rows if r["is_imbalanced"]
        ),
    )


# ------------------------------------------------------------------------ any relation


def _relation(con, relation: str) -> str:
    if relation.count(".") != 1 or not relation_exists(con, relation):
        raise WarehouseError(f"relation {relation} (schema.table) does not exist in the warehouse")
    schema, table = relation.split(".")
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def analyse_relation(
    con,
    relation: str,
    *,
    metrics: Sequence[str],
    control: str,
    arm_column: str = "arm",
    experiment_id: str | None = None,
    covariate: str | None = None,
    shares: dict[str, float] | None = None,
    balance_columns: Sequence[str] = (),
    primary_metric: str | None = None,
    alpha: float = 0.05,
) -> ExperimentAnalysis:
    """Analyse an experiment held as one row per customer in any relation (e.g.
    datasets.hillstrom: arm, outcomes, pre-treatment covariates): the per-arm sums in one SQL
    query, then the same statistics as `analyse_experiment`. `shares` default to equal."""
    source = _relation(con, relation)
    columns = relation_columns(con, relation)
    needed = [arm_column, *metrics, *([covariate] if covariate else []), *balance_columns]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise WarehouseError(
            f"{relation} has no column {', '.join(missing)} (it has {', '.join(columns)})"
        )
    where, params = "", []
    if experiment_id is not None:
        if "experiment_id" not in columns:
            raise WarehouseError(f"{relation} has no column experiment_id")
        where, params = "where experiment_id = ?", [experiment_id]
    arm = quote_ident(arm_column)
    x = f"cast({quote_ident(covariate)} as double)" if covariate else None
    comparisons: list[Comparison] = []
    counts: dict[str, int] = {}
    for metric in metrics:
        y = f"cast({quote_ident(metric)} as double)"
        cov = (
            f", avg({x}), coalesce(var_samp({x}), 0), coalesce(covar_samp({y}, {x}), 0)"
            if x
            else ""
        )
        result = con.execute(
            f"select cast({arm} as varchar), count(*), avg({y}), coalesce(var_samp({y}), 0), "
            f"bool_and({y} in (0, 1)){cov} from {source} {where} group by 1 order by 1",
            params,
        ).fetchall()
        if not result:
            raise UnknownExperimentError(
                f"{relation} has no rows" + (f" for experiment {experiment_id!r}" if where else "")
            )
        stats = [
            ArmStats(
                arm=r[0],
                customers=int(r[1]),
                mean=float(r[2]),
                variance=float(r[3]),
                **(
                    dict(covariate_mean=r[5], covariate_variance=r[6], covariance=r[7]) if x else {}
                ),
            )
            for r in result
        ]
        counts = {s.arm: s.customers for s in stats}
        kind = "rate" if all(r[4] for r in result) else "amount"
        comparisons += compare_arms(metric, stats, control, alpha=alpha, kind=kind)
    designed = shares or {a: 1 / len(counts) for a in counts}
    unknown = sorted(set(counts) - set(designed))
    if unknown:
        raise UnknownArmError(f"arms {unknown} of {relation} have no share in {designed}")
    balance = (
        _relation_balance(con, source, arm, control, balance_columns, where, params)
        if balance_columns
        else None
    )
    return ExperimentAnalysis(
        experiment_id=experiment_id or relation,
        source=relation,
        control_arm=control,
        primary_metric=primary_metric or metrics[0],
        alpha=alpha,
        comparisons=tuple(comparisons),
        sample_ratio=sample_ratio(counts, designed),
        balance=balance,
    )


def _relation_balance(con, source, arm, control, columns, where, params) -> Balance:
    aggregates = ", ".join(
        f"avg(cast({quote_ident(c)} as double)), coalesce(var_samp(cast({quote_ident(c)} "
        "as double)), 0)"
        for c in columns
    )
    result = con.execute(
        f"select cast({arm} as varchar), count(*), {aggregates} from {source} {where} group by 1",
        params,
    ).fetchall()
    by_arm = {r[0]: r for r in result}
    c = by_arm[control]
    found: list[Imbalance] = []
    imbalanced: list[Imbalance] = []
    for a, r in by_arm.items():
        if a == control:
            continue
        noise = math.sqrt(1 / r[1] + 1 / c[1])
        for i, feature in enumerate(columns):
            mean, var = r[2 + 2 * i], r[3 + 2 * i]
            cmean, cvar = c[2 + 2 * i], c[3 + 2 * i]
            smd = (mean - cmean) / math.sqrt((var + cvar) / 2) if var + cvar > 0 else 0.0
            item = Imbalance(a, feature, smd)
            found.append(item)
            if abs(smd) > max(SMD_LINE, 3 * noise):
                imbalanced.append(item)
    worst = max(found, key=lambda i: abs(i.smd), default=None)
    return Balance(features=len(columns), worst=worst, imbalanced=tuple(imbalanced))


# ---------------------------------------------------------------------------------- A/A check


@dataclass(frozen=True)
class AAResult:
    """False positives of a two-arm A/A test re-drawn with `runs` salts."""

    metric: str
    customers: int
    runs: int
    alpha: float
    false_positives: int
    cuped_false_positives: int | None
    p_values: tuple[float, ...]

    @property
    def rate(self) -> float:
        return self.false_positives / self.runs

    @property
    def cuped_rate(self) -> float | None:
        if self.cuped_false_positives is None:
            return None
        return self.cuped_false_positives / self.runs

    def rate_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Clopper-Pearson interval of the false-positive rate (statsmodels)."""
        from statsmodels.stats.proportion import proportion_confint

        lo, hi = proportion_confint(
            self.false_positives, self.runs, alpha=1 - confidence, method="beta"
        )
        return float(lo), float(hi)


def aa_false_positive_rate(
    con,
    relation: str,
    *,
    metric: str,
    covariate: str | None = None,
    runs: int = 200,
    alpha: float = 0.05,
    where: str | None = None,
    id_column: str = "customer_id",
    salt_prefix: str = "aa-",
) -> AAResult:
    """Split the rows of `relation` into two halves `runs` times, each with the salted hash of
    the assignment (salt `salt_prefix` + run number), and test the difference of `metric`
    between the halves (no effect exists, so every significant difference is a false positive).

    The re-assignments run as ONE SQL query (runs x rows hashes, grouped by run and half); the
    test of each run is `compare_arms`, the same as a real analysis. `where` is a trusted SQL
    filter on the relation (e.g. "experiment_id = 'x'")."""
    source = _relation(con, relation)
    y = f"cast({quote_ident(metric)} as double)"
    x = f"cast({quote_ident(covariate)} as double)" if covariate else None
    bucket = bucket_sql(
        salt=f"'{salt_prefix}' || cast(runs.run as varchar)",
        id="'aa'",
        customer_id=f"rows.{quote_ident(id_column)}",
    )
    cov = f", avg({x}), coalesce(var_samp({x}), 0), coalesce(covar_samp({y}, {x}), 0)" if x else ""
    result = con.execute(
        f"""
        with runs as (select range as run from range(?)),
        rows as (select * from {source} {"where " + where if where else ""})
        select runs.run, {bucket} < {BUCKETS // 2} as half, count(*), avg({y}),
            coalesce(var_samp({y}), 0){cov}
        from runs cross join rows
        group by 1, 2 order by 1, 2
        """,
        [runs],
    ).fetchall()
    by_run: dict[int, list] = {}
    for r in result:
        by_run.setdefault(r[0], []).append(r)
    p_values, false_positives, cuped_false_positives = [], 0, 0
    customers = 0
    for run_rows in by_run.values():
        stats = [
            ArmStats(
                arm="a" if r[1] else "b",
                customers=int(r[2]),
                mean=float(r[3]),
                variance=float(r[4]),
                **(
                    dict(covariate_mean=r[5], covariate_variance=r[6], covariance=r[7]) if x else {}
                ),
            )
            for r in run_rows
        ]
        customers = sum(s.customers for s in stats)
        (c,) = compare_arms(metric, stats, "b", alpha=alpha, detectable=False)
        p_values.append(c.p_value)
        false_positives += c.p_value < alpha
        if x:
            cuped_false_positives += (c.cuped_p_value or 1.0) < alpha
    return AAResult(
        metric=metric,
        customers=customers,
        runs=len(by_run),
        alpha=alpha,
        false_positives=false_positives,
        cuped_false_positives=cuped_false_positives if x else None,
        p_values=tuple(p_values),
    )
