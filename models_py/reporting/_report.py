"""`propensity report`: a static HTML report built from warehouse tables only.

Per product group (champion models): ROC and PR curves, lift and cumulative gains by decile,
calibration curve, score distribution, feature importance (permutation and mean |SHAP|), a few
top-decile customers with their reasons (`fct_score_reasons`), model AUC next to oracle AUC where
known; plus audience sizes and, once daily runs have built the monitoring marts, a monitoring
section: ROC AUC over the scored cutoffs (realised and estimated), the drift alerts of the newest
cutoff and the latest retraining decisions; and, once an uplift model set is registered, the
uplift and offers section (`_uplift_page`); and, once experiments have results, the experiments
section (`_experiments_page`). Plots are drawn with matplotlib and embedded as PNG.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from models_py._errors import WarehouseError
from models_py._warehouse import connect, table_exists
from models_py.registry import _evaluation as evaluation
from models_py.registry import ml_table
from models_py.registry._tables import present_tables

logger = logging.getLogger(__name__)

#: Customers of each group's top decile shown with their reasons.
EXAMPLE_CUSTOMERS = 3

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; padding: 0 1rem; max-width: 1200px;
  color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.3rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; }
th, td { border: 1px solid #ddd; padding: 0.3rem 0.45rem; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.grid { display: grid; grid-template-columns: repeat(3, 1fr); gap: 0.5rem; }
.grid img { width: 100%; } .muted { color: #777; font-size: 0.85rem; }
.flag { display: inline-block; padding: 0.1rem 0.4rem; margin-right: 0.4rem; border-radius: 0.2rem;
  background: #c44e52; color: #fff; font-size: 0.8rem; } .flag.interim { background: #dd8452; }
.verdict li { margin-bottom: 0.3rem; }
td.reasons { text-align: left; } td.reasons ol { margin: 0; padding-left: 1.2rem; }
"""


@dataclass(frozen=True)
class ReportResult:
    """Where the report was written and what it covers."""

    path: Path
    product_groups: tuple[str, ...]

    def summary(self) -> str:
        return f"report: {self.path} ({len(self.product_groups)} product groups)"


def _rows(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    alt = html.escape(fig.axes[0].get_title() if fig.axes else "")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="{alt}" src="data:image/png;base64,{data}">'


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return html.escape(str(v))


def _table(rows: list[dict], columns: list[str]) -> str:
    # Column names may break after an underscore so that a wide table still fits the page.
    head = "".join(f"<th>{html.escape(c).replace('_', '_<wbr>')}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _group_plots(con, group: str, model_id: str, has: dict[str, bool]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images: list[str] = []
    for curve, xlabel, ylabel in (
        ("roc", "false positive rate", "true positive rate"),
        ("pr", "recall", "precision"),
    ):
        pts = evaluation.curve(con, model_id, curve)
        if pts:
            fig, ax = plt.subplots(figsize=(4, 3.2))
            ax.plot([p["x"] for p in pts], [p["y"] for p in pts])
            if curve == "roc":
                ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
            ax.set(xlabel=xlabel, ylabel=ylabel, title=f"{group}: {curve.upper()} (test)")
            images.append(_png(fig))
    lift = evaluation.lift(con, model_id)
    if lift:
        fig, ax = plt.subplots(figsize=(4, 3.2))
        ax.bar([r["decile"] for r in lift], [r["lift"] for r in lift], color="#4c72b0")
        ax.axhline(1, c="grey", lw=0.8, ls="--")
        ax.set(xlabel="decile (1 = highest scores)", ylabel="lift", title=f"{group}: lift")
        images.append(_png(fig))
        fig, ax = plt.subplots(figsize=(4, 3.2))
        xs = [0.0] + [r["decile"] / 10 for r in lift]
        ax.plot(xs, [0.0] + [r["cumulative_gains"] for r in lift], marker="o")
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
        ax.set(
            xlabel="share of customers",
            ylabel="share of positives",
            title=f"{group}: cumulative gains",
        )
        images.append(_png(fig))
    cal = evaluation.calibration(con, model_id)
    if cal:
        fig, ax = plt.subplots(figsize=(4, 3.2))
        ax.plot([r["mean_predicted"] for r in cal], [r["observed_rate"] for r in cal], marker="o")
        top = max(max(r["mean_predicted"], r["observed_rate"]) for r in cal)
        ax.plot([0, top], [0, top], ls="--", c="grey", lw=0.8)
        ax.set(xlabel="mean predicted", ylabel="observed rate", title=f"{group}: calibration")
        images.append(_png(fig))
    if has["scores"]:
        scores = [
            r["score"]
            for r in _rows(
                con,
                "select score from marts.fct_propensity_scores where product_group = ? "
                "and as_of_date = (select max(as_of_date) from marts.fct_propensity_scores) "
                "using sample 20000 rows (reservoir, 42)",
                [group],
            )
        ]
        if scores:
            fig, ax = plt.subplots(figsize=(4, 3.2))
            ax.hist(scores, bins=40, color="#55a868")
            ax.set(xlabel="score", ylabel="customers", title=f"{group}: score distribution")
            images.append(_png(fig))
    imp = evaluation.top_features(con, model_id, limit=12)
    if imp:
        images.append(_importance_plot(group, imp))
    return '<div class="grid">' + "".join(images) + "</div>"


def _importance_plot(group: str, imp: list[dict]) -> str:
    """Permutation importance and mean |SHAP| of the same features, side by side (one panel when
    the model has no mean |SHAP|: an ensemble, or a model trained before it existed)."""
    import matplotlib.pyplot as plt

    names = [r["feature_name"] for r in imp][::-1]
    shap = [r for r in imp if r["mean_abs_shap"] is not None]
    fig, axes = plt.subplots(
        1, 2 if shap else 1, figsize=(5.2 if shap else 4, 3.2), sharey=True, squeeze=False
    )
    axes = axes[0]
    axes[0].barh(names, [r["importance_mean"] or 0.0 for r in imp][::-1], color="#4c72b0")
    axes[0].set(xlabel="permutation: AUC drop", title=f"{group}: feature importance (test)")
    axes[0].tick_params(axis="y", labelsize=7)
    if shap:
        units = "probability" if "probability" in (shap[0]["shap_method"] or "") else "log-odds"
        axes[1].barh(names, [r["mean_abs_shap"] or 0.0 for r in imp][::-1], color="#dd8452")
        axes[1].set(xlabel=f"mean |SHAP| ({units})")
    return _png(fig)


def _example_customers(con, group: str) -> list[str]:
    """A few customers of the group's top score decile with their reasons in plain words
    (marts.fct_score_reasons, latest cutoff); nothing when the group has no reasons."""
    rows = _rows(
        con,
        """
        with reasons as (
            select * from marts.fct_score_reasons where product_group = ?
        ),

        top_decile as (
            select scores.customer_id, scores.score
            from marts.fct_propensity_scores as scores
            where scores.product_group = ?
                and scores.as_of_date = (select max(as_of_date) from reasons)
                and scores.decile = 1
                and scores.customer_id in (select customer_id from reasons)
            order by hash(scores.customer_id), scores.customer_id
            limit ?
        )

        select
            top_decile.customer_id,
            top_decile.score,
            list(reasons.feature_label order by reasons.reason_rank) as labels,
            list(reasons.contribution order by reasons.reason_rank) as contributions,
            any_value(reasons.contribution_units) as units,
            any_value(reasons.as_of_date) as as_of_date
        from top_decile
        inner join reasons on top_decile.customer_id = reasons.customer_id
        group by all
        order by top_decile.score desc, top_decile.customer_id
        """,
        [group, group, EXAMPLE_CUSTOMERS],
    )
    if not rows:
        return []
    body = "".join(
        f"<tr><td>{_fmt(r['customer_id'])}</td><td>{r['score']:.3f}</td>"
        '<td class="reasons"><ol>'
        + "".join(
            f'<li>{html.escape(label)} <span class="muted">({c:+.2f})</span></li>'
            for label, c in zip(r["labels"], r["contributions"], strict=True)
        )
        + "</ol></td></tr>"
        for r in rows
    )
    return [
        f"<h3>{html.escape(group)}: example customers from the top decile</h3>",
        f'<p class="muted">Scores of {rows[0]["as_of_date"]}: the features pushing each score up '
        f"the most (marts.fct_score_reasons), with their contribution in "
        f"{html.escape(str(rows[0]['units']))} (docs/explaining.md).</p>",
        f"<table><tr><th>customer_id</th><th>score</th><th>why</th></tr>{body}</table>",
    ]


def _monitoring(con) -> list[str]:
    """The monitoring section (docs/operations.md), from the marts the daily run builds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    perf = _rows(
        con,
        "select product_group, model_id, as_of_date, is_matured, rows, roc_auc, "
        "estimated_roc_auc, test_roc_auc, lift_at_10, estimated_lift_at_10 "
        "from marts.fct_model_performance order by product_group, as_of_date",
    )
    if not perf:
        return []
    parts = [
        "<h2>Monitoring</h2>",
        '<p class="muted">Every scored cutoff of the champions (marts.fct_model_performance): '
        "realised ROC AUC once the label window has matured, the estimate from calibrated "
        "scores before (docs/operations.md).</p>",
    ]
    groups = sorted({r["product_group"] for r in perf})
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.2), squeeze=False)
    for ax, group in zip(axes[0], groups, strict=True):
        rows = [r for r in perf if r["product_group"] == group]
        matured = [r for r in rows if r["roc_auc"] is not None]
        ax.plot(
            [r["as_of_date"] for r in rows],
            [r["estimated_roc_auc"] for r in rows],
            ls="--",
            label="estimated",
        )
        ax.plot(
            [r["as_of_date"] for r in matured],
            [r["roc_auc"] for r in matured],
            marker="o",
            label="realised",
        )
        ax.set(title=f"{group}: ROC AUC over time", ylabel="ROC AUC")
        ax.tick_params(axis="x", labelrotation=45)
        ax.legend(fontsize=7)
    parts.append(_png(fig))
    newest = [
        max((r for r in perf if r["product_group"] == g), key=lambda r: r["as_of_date"])
        for g in groups
    ]
    parts.append(
        _table(
            newest,
            [
                "product_group",
                "model_id",
                "as_of_date",
                "rows",
                "estimated_roc_auc",
                "test_roc_auc",
                "estimated_lift_at_10",
            ],
        )
    )
    if table_exists(con, "marts", "fct_feature_drift"):
        alerts = _rows(
            con,
            "select product_group, as_of_date, feature_name, drift_status, psi "
            "from marts.fct_feature_drift "
            "where as_of_date = (select max(as_of_date) from marts.fct_feature_drift) "
            "and drift_status in ('warn', 'alert') "
            "union all "
            "select product_group, as_of_date, '(score)', drift_status, psi "
            "from marts.fct_score_drift "
            "where as_of_date = (select max(as_of_date) from marts.fct_score_drift) "
            "and drift_status in ('warn', 'alert') "
            "order by drift_status, psi desc",
        )
        parts.append("<h3>Drift at the newest cutoff</h3>")
        parts.append(
            _table(alerts, ["product_group", "as_of_date", "feature_name", "drift_status", "psi"])
            if alerts
            else '<p class="muted">No feature or score above the warn threshold (PSI 0.1).</p>'
        )
    if "retrain_decisions" in present_tables(con):
        decisions = _rows(
            con,
            f"select product_group, as_of_date, decision, reasons, new_model_id, promoted "
            f"from {ml_table('retrain_decisions')} "
            "qualify row_number() over (partition by product_group order by decided_at desc) = 1 "
            "order by product_group",
        )
        if decisions:
            parts.append("<h3>Latest retraining decisions</h3>")
            parts.append(
                _table(
                    decisions,
                    [
                        "product_group",
                        "as_of_date",
                        "decision",
                        "reasons",
                        "new_model_id",
                        "promoted",
                    ],
                )
            )
    return parts


def _write_page(target: Path, title: str, parts: list[str]) -> Path:
    """Write an HTML page of `parts` to `target` (through a temporary file: never half written)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>"
    )
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(page)
    tmp.replace(target)
    return target


def write_report(warehouse: Path | str, out_dir: Path | str) -> ReportResult:
    """Write ``index.html`` into `out_dir` from the warehouse's registry and marts.

    Raises
    ------
    WarehouseError
        When the warehouse has no trained champion model to report on.
    """
    from models_py.reporting._experiments_page import experiments_section
    from models_py.reporting._uplift_page import uplift_section

    con = connect(warehouse, read_only=True)
    try:
        has = {
            "aliases": evaluation.has_registry(con),
            "scores": table_exists(con, "marts", "fct_propensity_scores"),
            "audiences": table_exists(con, "marts", "fct_campaign_audiences"),
        }
        has["reasons"] = has["scores"] and table_exists(con, "marts", "fct_score_reasons")
        if not has["aliases"]:
            raise WarehouseError(
                f"{warehouse} has no model registry: run `dbt build` and `propensity train` first"
            )
        champions = evaluation.champions_with_test_metrics(con)
        if not champions:
            raise WarehouseError("no champion model in the registry: run `propensity train` first")
        parts = [
            "<h1>Propensity models</h1>",
            f'<p class="muted">warehouse {html.escape(str(warehouse))}; every figure is read '
            "from warehouse tables (ml.*, marts.*).</p>",
            "<h2>Champions on the test period</h2>",
            _table(
                champions,
                [
                    "product_group",
                    "algorithm",
                    "examples",
                    "positives",
                    "base_rate",
                    "roc_auc",
                    "observable_oracle_roc_auc",
                    "oracle_roc_auc",
                    "pr_auc",
                    "brier",
                    "precision",
                    "recall",
                    "f1",
                    "threshold",
                ],
            ),
            '<p class="muted">On generated warehouses: observable_oracle_roc_auc is the AUC of '
            "the best probabilities any model can compute from the observable history (the "
            "posterior given the generator's prior, docs/oracle.md), the figure to compare a "
            "model with; oracle_roc_auc uses the generator's hidden state (purchase rate, churn "
            "date) and is out of reach. Empty on other data.</p>",
        ]
        if has["audiences"]:
            sizes = _rows(
                con,
                "select campaign_id, product_group,"
                " count(*) filter (where is_eligible) as eligible,"
                " count(*) filter (where is_eligible and exclusion_reason is not null)"
                " as excluded,"
                " count(*) filter (where is_eligible and exclusion_reason is null and is_holdout)"
                " as holdout,"
                " count(*) filter (where is_selected) as selected"
                " from marts.fct_campaign_audiences group by all order by campaign_id",
            )
            parts += [
                "<h2>Audiences</h2>",
                _table(
                    sizes,
                    ["campaign_id", "product_group", "eligible", "excluded", "holdout", "selected"],
                ),
            ]
        if table_exists(con, "marts", "fct_model_performance"):
            parts += _monitoring(con)
        for champ in champions:
            group = champ["product_group"]
            parts += [
                f"<h2>{html.escape(group)}</h2>",
                f'<p class="muted">champion {html.escape(champ["model_id"])} '
                f"({html.escape(str(champ['algorithm']))}), test cutoffs "
                f"{html.escape(str(champ['test_cutoffs']))}</p>",
                _group_plots(con, group, champ["model_id"], has),
            ]
            if has["reasons"]:
                parts += _example_customers(con, group)
        parts += uplift_section(con)
        parts += experiments_section(con)
    finally:
        con.close()
    target = _write_page(Path(out_dir) / "index.html", "Propensity report", parts)
    return ReportResult(target, tuple(c["product_group"] for c in champions))
