"""The "Experiments" section of the report, and `propensity experiment report`'s page.

Per experiment of marts.dim_experiments with results: the verdict, every arm against the control
with its interval (plain and CUPED) per metric, the cumulative lift over the days since
assignment (marts.fct_experiment_cumulative), the sample ratio check and the balance of the
features at assignment (marts.fct_experiment_balance). Figures come from the experiment marts;
p-values, the Holm correction and the verdict from `analyse_experiment`, their one owner.
"""

from __future__ import annotations

import html
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from models_py._errors import PropensityError, WarehouseError
from models_py._warehouse import connect, table_exists
from models_py.experiments._analyse import ExperimentAnalysis, analyse_experiment, change, level
from models_py.experiments._errors import UnknownExperimentError
from models_py.reporting._report import _png, _rows, _table, _write_page

PLAIN, CUPED = "#4c72b0", "#dd8452"
ARM_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")
#: Balance plot: the features with the largest |SMD|.
BALANCE_FEATURES = 15


@dataclass(frozen=True)
class ExperimentsPageResult:
    """Where the experiments page was written and which experiments it covers."""

    path: Path
    experiments: tuple[str, ...]

    def summary(self) -> str:
        return f"experiments report: {self.path} ({len(self.experiments)} experiments)"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _muted(text: str) -> str:
    return f'<p class="muted">{html.escape(text)}</p>'


def experiments_with_results(con) -> list[str]:
    """Experiments that have rows in marts.fct_experiment_results (none without the mart)."""
    if not table_exists(con, "marts", "fct_experiment_results"):
        return []
    return [
        r["experiment_id"]
        for r in _rows(
            con,
            "select distinct experiment_id from marts.fct_experiment_results order by 1",
        )
    ]


# ------------------------------------------------------------------------------------- plots


def _forest_plot(analysis: ExperimentAnalysis, metric: str) -> str:
    plt = _plt()
    rows = analysis.for_metric(metric)
    kind = rows[0].kind
    scale = 100 if kind == "rate" else 1
    fig, ax = plt.subplots(figsize=(4, 0.6 + 0.55 * len(rows) + 1.2))
    for i, c in enumerate(rows):
        ax.errorbar(
            c.difference * scale,
            i + 0.12,
            xerr=[[(c.difference - c.ci_lower) * scale], [(c.ci_upper - c.difference) * scale]],
            fmt="o",
            color=PLAIN,
            capsize=3,
            label="plain" if i == 0 else None,
        )
        if c.has_cuped:
            ax.errorbar(
                c.cuped_difference * scale,
                i - 0.12,
                xerr=[
                    [(c.cuped_difference - c.cuped_ci_lower) * scale],
                    [(c.cuped_ci_upper - c.cuped_difference) * scale],
                ],
                fmt="s",
                color=CUPED,
                capsize=3,
                label="CUPED" if i == 0 else None,
            )
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(range(len(rows)), [f"{c.arm} vs {c.control_arm}" for c in rows])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    unit = "points" if kind == "rate" else "per customer"
    ax.set(
        xlabel=f"difference in {metric} ({unit}), 95 % CI",
        title=f"{analysis.experiment_id}: {metric} by arm",
    )
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def _cumulative_plot(con, experiment_id: str, metric: str) -> str | None:
    rows = _rows(
        con,
        f"select arm, day, {metric}_difference as d, {metric}_ci_lower as lo, "
        f"{metric}_ci_upper as hi from marts.fct_experiment_cumulative "
        "where experiment_id = ? and not is_control order by arm, day",
        [experiment_id],
    )
    if not rows:
        return None
    plt = _plt()
    scale = 100 if metric == "conversion" else 1
    fig, ax = plt.subplots(figsize=(4, 3.2))
    for i, arm in enumerate(dict.fromkeys(r["arm"] for r in rows)):
        pts = [r for r in rows if r["arm"] == arm]
        colour = ARM_COLOURS[i % len(ARM_COLOURS)]
        days = [r["day"] for r in pts]
        ax.plot(days, [r["d"] * scale for r in pts], color=colour, label=arm)
        ax.fill_between(
            days,
            [r["lo"] * scale for r in pts],
            [r["hi"] * scale for r in pts],
            color=colour,
            alpha=0.15,
        )
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    unit = "points" if metric == "conversion" else "per customer"
    ax.set(
        xlabel="days since assignment",
        ylabel=f"difference ({unit})",
        title=f"{experiment_id}: cumulative {metric} lift",
    )
    ax.legend(fontsize=7, title="arm (band: 95 % CI)", title_fontsize=7)
    return _png(fig)


def _balance_rows(con, experiment_id: str) -> list[dict]:
    if not table_exists(con, "marts", "fct_experiment_balance"):
        return []
    return _rows(
        con,
        "select arm, feature, mean, control_mean, smd, smd_noise, is_imbalanced "
        "from marts.fct_experiment_balance where experiment_id = ? "
        "order by abs(smd) desc, feature, arm",
        [experiment_id],
    )


def _balance_plot(experiment_id: str, rows: list[dict]) -> str:
    plt = _plt()
    features = list(dict.fromkeys(r["feature"] for r in rows))[:BALANCE_FEATURES]
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    fig, ax = plt.subplots(figsize=(4, 0.8 + 0.22 * len(features) + 0.8))
    for i, arm in enumerate(arms):
        smd = {r["feature"]: r["smd"] for r in rows if r["arm"] == arm}
        ax.scatter(
            [smd.get(f, 0.0) for f in features],
            range(len(features)),
            color=ARM_COLOURS[i % len(ARM_COLOURS)],
            s=14,
            label=arm,
        )
    for x in (-0.1, 0.1):
        ax.axvline(x, color="#c44e52", lw=0.8, ls="--")
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_yticks(range(len(features)), features, fontsize=6)
    ax.invert_yaxis()
    ax.set(
        xlabel="standardised mean difference vs control",
        title=f"{experiment_id}: balance at assignment",
    )
    ax.legend(fontsize=7, title="arm", title_fontsize=7)
    return _png(fig)


# ------------------------------------------------------------------------------------ tables


def _arm_rows(analysis: ExperimentAnalysis) -> list[dict]:
    out = []
    for metric in analysis.metrics:
        for c in analysis.for_metric(metric):
            k = c.kind
            out.append(
                {
                    "metric": metric,
                    "arm": c.arm,
                    "customers": c.customers,
                    "control_mean": level(k, c.control_mean),
                    "arm_mean": level(k, c.mean),
                    "difference": change(k, c.difference),
                    "95%_CI": f"{change(k, c.ci_lower)} .. {change(k, c.ci_upper)}",
                    "relative_lift": "-" if c.relative_lift is None else f"{c.relative_lift:+.1%}",
                    "p_(Holm)": f"{c.p_value_holm:.3g}",
                    "CUPED_95%_CI": (
                        f"{change(k, c.cuped_ci_lower)} .. {change(k, c.cuped_ci_upper)}"
                        if c.has_cuped
                        else "-"
                    ),
                    "CUPED_p_(Holm)": (
                        f"{c.cuped_p_value_holm:.3g}" if c.cuped_p_value_holm is not None else "-"
                    ),
                    "variance_reduction": (
                        f"{c.variance_reduction:.0%}" if c.variance_reduction is not None else "-"
                    ),
                }
            )
    return out


def _sample_ratio_rows(analysis: ExperimentAnalysis) -> list[dict]:
    sr = analysis.sample_ratio
    total = sum(sr.counts.values())
    return [
        {
            "arm": arm,
            "customers": n,
            "observed_share": f"{n / total:.2%}",
            "expected_share": f"{sr.expected_shares[arm]:.2%}",
        }
        for arm, n in sr.counts.items()
    ]


def _until(first, last) -> str:
    return "" if first == last else f" .. {last:%Y-%m-%d}"


def _experiment(con, experiment_id: str, level_: int) -> list[str]:
    h = f"h{level_}"
    title = f"<{h}>{html.escape(experiment_id)}</{h}>"
    try:
        analysis = analyse_experiment(con, experiment_id)
    except PropensityError as exc:
        return [title, _muted(f"Not analysed: {exc}")]
    e = _rows(con, "select * from marts.dim_experiments where experiment_id = ?", [experiment_id])[
        0
    ]
    flags = []
    if analysis.is_interim:
        flags.append('<span class="flag interim">INTERIM</span>')
    if analysis.sample_ratio.is_mismatch:
        flags.append('<span class="flag">SAMPLE RATIO MISMATCH</span>')
    sr = analysis.sample_ratio
    parts = [
        title,
        f"<p>{''.join(flags)}</p>" if flags else "",
        _muted(
            f"{e['assignment']} assignment ({e['assignment_source']}), {e['customers']:,} "
            f"customers in arms {e['arm_list']}, control {analysis.control_arm} "
            f"({e['control_arm_rule']}); assigned {e['first_assigned_at']:%Y-%m-%d}"
            f"{_until(e['first_assigned_at'], e['last_assigned_at'])}, "
            f"{e['window_days']}-day outcome window closing {e['window_end']:%Y-%m-%d}; data "
            f"until {e['data_until']:%Y-%m-%d}; status {e['status']}; primary metric "
            f"{analysis.primary_metric}."
        ),
        '<ul class="verdict">'
        + "".join(f"<li>{html.escape(line)}</li>" for line in analysis.verdict())
        + "</ul>",
    ]
    images = [_forest_plot(analysis, m) for m in analysis.metrics]
    images += [
        img
        for img in (
            _cumulative_plot(con, experiment_id, "conversion"),
            _cumulative_plot(con, experiment_id, "revenue"),
        )
        if img
    ]
    balance = _balance_rows(con, experiment_id)
    if balance:
        images.append(_balance_plot(experiment_id, balance))
    parts.append('<div class="grid">' + "".join(images) + "</div>")
    parts += [
        _muted(
            "Each arm against the control, per customer; 95 % intervals (normal, unpooled "
            "variances), p-values Holm-adjusted over the arms of a metric; CUPED adjusts each "
            "metric with the same customer's pre-period purchases (fct_experiment_results)."
        ),
        _table(
            _arm_rows(analysis),
            [
                "metric",
                "arm",
                "customers",
                "control_mean",
                "arm_mean",
                "difference",
                "95%_CI",
                "relative_lift",
                "p_(Holm)",
                "CUPED_95%_CI",
                "CUPED_p_(Holm)",
                "variance_reduction",
            ],
        ),
        _muted(
            f"Sample ratio: chi-square {sr.chi_square:.2f} with {sr.df} degrees of freedom, "
            f"p = {sr.p_value:.3g}: "
            + (
                "MISMATCH (p < 0.001): customers were lost or moved; do not trust the lifts."
                if sr.is_mismatch
                else "passes (a mismatch is flagged below p = 0.001)."
            )
        ),
        _table(
            _sample_ratio_rows(analysis), ["arm", "customers", "observed_share", "expected_share"]
        ),
    ]
    if balance:
        flagged = [r for r in balance if r["is_imbalanced"]]
        shown = flagged or balance[:5]
        parts += [
            _muted(
                f"Balance at assignment: {len({r['feature'] for r in balance})} features of "
                "fct_customer_features as of the assignment day; "
                + (
                    f"{len(flagged)} differ beyond chance (|SMD| > 0.1 and > 3 x its noise):"
                    if flagged
                    else "none differs beyond chance; the largest |SMD|:"
                )
            ),
            _table(
                [
                    {
                        **r,
                        "smd": f"{r['smd']:+.3f}",
                        "smd_noise": f"{r['smd_noise']:.3f}",
                        "is_imbalanced": "yes" if r["is_imbalanced"] else "no",
                    }
                    for r in shown
                ],
                ["arm", "feature", "mean", "control_mean", "smd", "smd_noise", "is_imbalanced"],
            ),
        ]
    return parts


# ---------------------------------------------------------------------------------- section


def experiments_section(con, *, level: int = 2, experiments: list[str] | None = None) -> list[str]:
    """HTML parts of the section, headed by an `<h{level}>`; [] without experiment results."""
    found = experiments_with_results(con)
    if experiments:
        unknown = sorted(set(experiments) - set(found))
        if unknown:
            raise UnknownExperimentError(
                f"no results for experiment {', '.join(unknown)} in marts.fct_experiment_results "
                f"(experiments with results: {', '.join(found) or 'none'})"
            )
        found = [e for e in found if e in experiments]
    if not found:
        return []
    parts = [
        f"<h{level}>Experiments</h{level}>",
        _muted(
            "Experiments of marts.dim_experiments (docs/experiments.md): each arm against the "
            "control, cumulative lift by day, sample ratio and balance checks."
        ),
    ]
    for experiment_id in found:
        parts += _experiment(con, experiment_id, level + 1)
    return parts


def write_experiments_page(
    warehouse: Path | str, out_dir: Path | str, *, experiments: list[str] | None = None
) -> ExperimentsPageResult:
    """Write ``experiments.html`` into `out_dir`: the experiments section alone.

    Raises
    ------
    WarehouseError
        When the warehouse has no experiment results (run `propensity build`).
    UnknownExperimentError
        When a named experiment has no results.
    """
    with closing(connect(warehouse, read_only=True)) as con:
        parts = experiments_section(con, level=1, experiments=experiments)
        if not parts:
            raise WarehouseError(
                f"{warehouse} has no experiment results (marts.fct_experiment_results is empty "
                "or absent): assign an experiment (`propensity experiment assign`) or load "
                "raw.treatments, then run `propensity build`"
            )
        found = tuple(experiments or experiments_with_results(con))
    target = _write_page(Path(out_dir) / "experiments.html", "Experiments", parts)
    return ExperimentsPageResult(target, found)
