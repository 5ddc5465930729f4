"""The "Uplift and offers" section of the report, and `propensity offers report`'s page.

Per offer family's champion uplift set (ml.uplift_*): held-out metrics, Qini curves per outcome,
observed uplift per decile of predicted uplift with 95 % intervals, and the predicted effects at
the newest scoring cutoff (marts.fct_uplift_scores). Once the offer marts exist: the arm mix by
RFM segment, totals per arm and assignment reasons (marts.fct_offer_assignments), and incremental
profit per targeting policy (marts.fct_offer_policy_profit). Each part is left out when its table
is absent; every figure is read from warehouse tables.
"""

from __future__ import annotations

import html
import json
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from models_py._errors import WarehouseError
from models_py._warehouse import connect, relation_columns, table_exists
from models_py.registry import ml_table
from models_py.registry._tables import present_tables
from models_py.reporting._report import _png, _rows, _table, _write_page

#: Colours per treated arm, in arm order (matplotlib's default cycle, spelt out).
COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3")
NO_OFFER = "no offer"
HOLDOUT = "holdout"
ASSIGNMENT_COLUMNS = (
    "offer_id",
    "customer_id",
    "as_of_date",
    "offer_family",
    "model_set_id",
    "policy",
    "arm",
    "is_offer",
    "is_holdout",
    "expected_incremental_profit",
    "expected_discount_spend",
    "reason",
    "segment",
)
POLICY_PROFIT_COLUMNS = (
    "offer_id",
    "as_of_date",
    "policy",
    "customers_offered",
    "expected_profit",
    "true_profit",
)
QINI_NOTE = (
    "How to read a Qini curve: customers are targeted in decreasing order of predicted uplift "
    "(x); y counts the extra outcomes over the control group among them. The dashed diagonal is "
    "random targeting; the area between the curve and the diagonal is what targeting by the "
    "model gains over random targeting (the Qini coefficient). A curve under the diagonal "
    "does worse than random."
)


@dataclass(frozen=True)
class OffersPageResult:
    """Where the offers page was written and which offer families it covers."""

    path: Path
    offer_families: tuple[str, ...]

    def summary(self) -> str:
        return f"offers report: {self.path} ({len(self.offer_families)} offer families)"


def has_uplift(con) -> bool:
    """Whether the registry holds at least one uplift model set."""
    if "uplift_model_sets" not in present_tables(con):
        return False
    return con.execute(f"select count(*) from {ml_table('uplift_model_sets')}").fetchone()[0] > 0


def _json(text: str | None, default):
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def champion_sets(con) -> list[dict]:
    """The champion model set of each offer family, with its outcomes and arms parsed."""
    if "uplift_aliases" not in present_tables(con):
        return []
    rows = _rows(
        con,
        f"select s.offer_family, s.model_set_id, s.spec_name, s.experiment_id, s.learner, "
        f"s.outcomes, s.control_arm, s.arms, s.trained_at, s.evaluation "
        f"from {ml_table('uplift_aliases')} a join {ml_table('uplift_model_sets')} s "
        "using (model_set_id) where a.alias = 'champion' order by s.offer_family",
    )
    for r in rows:
        r["outcomes"] = _json(r["outcomes"], [])
        r["arms"] = _json(r["arms"], {})
        evaluation = _json(r.pop("evaluation"), {})
        r["policy_value"] = (
            evaluation.get("held_out_policy_value") if isinstance(evaluation, dict) else None
        )
    return rows


def _policy_value_note(value: dict | None) -> str:
    """The held-out value of the set's profit policy (docs/uplift.md), when it was measured."""
    if not isinstance(value, dict) or value.get("incremental_margin_per_customer") is None:
        return ""
    return _muted(
        "Held-out policy value: offering each held-out customer the arm with the highest "
        "expected margin effect (if positive) earned "
        f"{value['incremental_margin_per_customer']:+.3f} margin per customer against no offer "
        f"(95 % CI {value['ci_lower']:+.3f} .. {value['ci_upper']:+.3f}; "
        f"{value['offered_share']:.1%} offered). Offers with require_held_out_gain (the "
        "default) go out only while this is above 0."
    )


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colour(i: int) -> str:
    return COLOURS[i % len(COLOURS)]


def _grid(images: list[str]) -> str:
    return '<div class="grid">' + "".join(images) + "</div>" if images else ""


def _muted(text: str) -> str:
    return f'<p class="muted">{html.escape(text)}</p>'


# ------------------------------------------------------------------------- model evaluation


def _metrics_table(con, champ: dict) -> str:
    rows = _rows(
        con,
        "select arm, outcome, treated, control, qini_coefficient, oracle_qini_coefficient, auuc, "
        f"uplift_at_10, uplift_at_20, uplift_at_30 from {ml_table('uplift_metrics')} "
        "where model_set_id = ? and split = 'test' order by outcome, arm",
        [champ["model_set_id"]],
    )
    if not rows:
        return _muted("No held-out metrics recorded for this model set.")
    columns = ["arm", "outcome", "treated", "control", "qini_coefficient"]
    if any(r["oracle_qini_coefficient"] is not None for r in rows):
        columns.append("oracle_qini_coefficient")
    columns += ["auuc", "uplift_at_10", "uplift_at_20", "uplift_at_30"]
    return _table(rows, columns)


def _qini_curves(con, champ: dict) -> dict[str, dict[str, list[dict]]]:
    """Test Qini points per outcome and treated arm, from ml.curve_points."""
    if "curve_points" not in present_tables(con):
        return {}
    rows = _rows(
        con,
        f"select curve, x, y from {ml_table('curve_points')} where model_id = ? "
        "and split = 'test' and curve like 'qini:%' order by curve, point",
        [champ["model_set_id"]],
    )
    curves: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        _, outcome, arm = r["curve"].split(":", 2)
        curves.setdefault(outcome, {}).setdefault(arm, []).append(r)
    return curves


def _qini_plot(family: str, outcome: str, per_arm: dict[str, list[dict]]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 3.2))
    for i, (arm, pts) in enumerate(sorted(per_arm.items())):
        colour = _colour(i)
        ax.plot([p["x"] for p in pts], [p["y"] for p in pts], color=colour, label=arm)
        ax.plot([0, pts[-1]["x"]], [0, pts[-1]["y"]], color=colour, ls="--", lw=0.8)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(
        xlabel="customers targeted",
        ylabel=f"incremental {outcome}",
        title=f"{family}: Qini curve ({outcome})",
    )
    ax.legend(fontsize=7, title="arm (dashed: random)", title_fontsize=7)
    return _png(fig)


def _decile_plot(con, champ: dict, outcome: str) -> str | None:
    rows = _rows(
        con,
        "select arm, bin, uplift, ci_lower, ci_upper "
        f"from {ml_table('uplift_bins')} where model_set_id = ? and outcome = ? "
        "and split = 'test' and uplift is not null order by arm, bin",
        [champ["model_set_id"], outcome],
    )
    if not rows:
        return None
    plt = _plt()
    arms = sorted({r["arm"] for r in rows})
    width = 0.8 / len(arms)
    fig, ax = plt.subplots(figsize=(4, 3.2))
    for i, arm in enumerate(arms):
        pts = [r for r in rows if r["arm"] == arm]
        low = [r["uplift"] - r["ci_lower"] if r["ci_lower"] is not None else 0.0 for r in pts]
        high = [r["ci_upper"] - r["uplift"] if r["ci_upper"] is not None else 0.0 for r in pts]
        ax.bar(
            [r["bin"] + (i - (len(arms) - 1) / 2) * width for r in pts],
            [r["uplift"] for r in pts],
            width=width,
            color=_colour(i),
            label=arm,
            yerr=[low, high],
            error_kw={"elinewidth": 0.7, "capsize": 1.5},
        )
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xticks(range(1, 11))
    ax.set(
        xlabel="decile of predicted uplift (1 = highest)",
        ylabel=f"observed uplift ({outcome})",
        title=f"{champ['offer_family']}: observed uplift by decile",
    )
    ax.legend(fontsize=7, title="arm (bars: 95 % CI)", title_fontsize=7)
    return _png(fig)


def _scores_table(con, champ: dict) -> list[str]:
    """Predicted effects per arm at the newest scoring cutoff (marts.fct_uplift_scores)."""
    if not table_exists(con, "marts", "fct_uplift_scores"):
        return []
    rows = _rows(
        con,
        "select arm, any_value(discount_pct) as discount_pct, any_value(as_of_date) as as_of_date,"
        " count(*) as customers, avg(p_purchase) as mean_p_purchase,"
        " avg(cate_purchase) as mean_cate_purchase, avg(cate_margin) as mean_cate_margin,"
        " avg(case when cate_margin > 0 then 1.0 else 0.0 end) as share_cate_margin_positive"
        " from marts.fct_uplift_scores where model_set_id = ? and as_of_date = ("
        "select max(as_of_date) from marts.fct_uplift_scores where model_set_id = ?)"
        " group by arm order by arm",
        [champ["model_set_id"], champ["model_set_id"]],
    )
    if not rows:
        return []
    return [
        _muted(
            f"Predicted effects at the newest scoring cutoff ({rows[0]['as_of_date']}, "
            "marts.fct_uplift_scores): means over customers; effects are against the control."
        ),
        _table(
            rows,
            [
                "arm",
                "discount_pct",
                "customers",
                "mean_p_purchase",
                "mean_cate_purchase",
                "mean_cate_margin",
                "share_cate_margin_positive",
            ],
        ),
    ]


def _family(con, champ: dict, level: int) -> list[str]:
    family = champ["offer_family"]
    arms = ", ".join(
        f"{a} ({d:g} %)" if isinstance(d, int | float) else str(a) for a, d in champ["arms"].items()
    )
    outcomes = champ["outcomes"] or ["purchased"]
    curves = _qini_curves(con, champ)
    images = [_qini_plot(family, o, curves[o]) for o in outcomes if curves.get(o)]
    decile = _decile_plot(con, champ, outcomes[0])
    if decile:
        images.append(decile)
    return [
        f"<h{level}>{html.escape(family)}</h{level}>",
        _muted(
            f"champion {champ['model_set_id']} ({champ['learner']}) of spec "
            f"{champ['spec_name']}, trained {str(champ['trained_at'])[:16]} on experiment "
            f"{champ['experiment_id']}; control arm {champ['control_arm']}; arms {arms}. "
            "Metrics on the held-out share of the experiment."
        ),
        _metrics_table(con, champ),
        _policy_value_note(champ.get("policy_value")),
        _grid(images),
        _muted(QINI_NOTE) if curves else "",
        *_scores_table(con, champ),
    ]


# ------------------------------------------------------------------------------------ offers


def _missing_columns(con, relation: str, needed: tuple[str, ...]) -> list[str]:
    present = relation_columns(con, relation)
    return [c for c in needed if c not in present]


def _latest_offers(con, relation: str) -> list[dict]:
    return _rows(
        con,
        f"select offer_id, max(as_of_date) as as_of_date from {relation} "
        "group by offer_id order by offer_id",
    )


_STATUS = f"case when is_offer then arm when is_holdout then '{HOLDOUT}' else '{NO_OFFER}' end"


def _mix_rows(con, offer: dict) -> tuple[list[dict], list[str]]:
    """Customers per segment (rows) and arm, 'holdout' and 'no offer' (columns)."""
    counts = _rows(
        con,
        f"select coalesce(segment, '(none)') as segment, {_STATUS} as status, "
        "count(*) as customers from marts.fct_offer_assignments "
        "where offer_id = ? and as_of_date = ? group by all order by segment, status",
        [offer["offer_id"], offer["as_of_date"]],
    )
    treated = sorted({r["status"] for r in counts} - {HOLDOUT, NO_OFFER})
    statuses = [
        *treated,
        *(s for s in (HOLDOUT, NO_OFFER) if any(r["status"] == s for r in counts)),
    ]
    table: dict[str, dict] = {}
    for r in counts:
        row = table.setdefault(
            r["segment"], {"segment": r["segment"], **dict.fromkeys(statuses, 0)}
        )
        row[r["status"]] = r["customers"]
    return list(table.values()), statuses


def _mix_plot(offer: dict, rows: list[dict], statuses: list[str]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 3.2))
    left = [0] * len(rows)
    colours = {HOLDOUT: "#bbbbbb", NO_OFFER: "#e5e5e5"}
    for i, status in enumerate(statuses):
        values = [r[status] for r in rows]
        ax.barh(
            [r["segment"] for r in rows],
            values,
            left=left,
            color=colours.get(status, _colour(i)),
            label=status,
        )
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set(xlabel="customers", title=f"{offer['offer_id']}: arm by segment")
    ax.legend(
        fontsize=7,
        ncol=min(4, len(statuses)),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.2),
        frameon=False,
    )
    return _png(fig)


def _arm_totals(con, offer: dict) -> list[dict]:
    return _rows(
        con,
        f"select {_STATUS} as arm, count(*) as customers, "
        "sum(expected_incremental_profit) as expected_incremental_profit, "
        "sum(expected_discount_spend) as expected_discount_spend "
        "from marts.fct_offer_assignments where offer_id = ? and as_of_date = ? "
        "group by all order by customers desc",
        [offer["offer_id"], offer["as_of_date"]],
    )


def _reasons(con, offer: dict) -> list[dict]:
    return _rows(
        con,
        "select coalesce(reason, '(none)') as reason, count(*) as customers "
        "from marts.fct_offer_assignments where offer_id = ? and as_of_date = ? "
        "group by all order by customers desc, reason",
        [offer["offer_id"], offer["as_of_date"]],
    )


def _offer_caption(con, offer: dict) -> str:
    row = _rows(
        con,
        "select any_value(offer_family) as offer_family, any_value(model_set_id) as model_set_id,"
        " string_agg(distinct policy, ', ') as policy, count(*) as customers"
        " from marts.fct_offer_assignments where offer_id = ? and as_of_date = ?",
        [offer["offer_id"], offer["as_of_date"]],
    )[0]
    return _muted(
        f"Offer {offer['offer_id']} at {offer['as_of_date']} (marts.fct_offer_assignments): "
        f"offer family {row['offer_family']}, model set {row['model_set_id']}, policy "
        f"{row['policy']}, {row['customers']:,} customers. Arm counts are customers who get the "
        f"offer; '{HOLDOUT}' are held out, '{NO_OFFER}' get none."
    )


def _assignments(con, level: int) -> list[str]:
    relation = "marts.fct_offer_assignments"
    missing = _missing_columns(con, relation, ASSIGNMENT_COLUMNS)
    if missing:
        return [
            f"<h{level}>Offer assignments</h{level}>",
            _muted(f"{relation} has no column {', '.join(missing)}: rebuild it with dbt build."),
        ]
    parts = []
    for offer in _latest_offers(con, relation):
        mix, statuses = _mix_rows(con, offer)
        parts += [
            f"<h{level}>Offer assignments: {html.escape(str(offer['offer_id']))}</h{level}>",
            _offer_caption(con, offer),
            _grid([_mix_plot(offer, mix, statuses)]),
            _muted("Customers per RFM segment at the cutoff and arm:"),
            _table(mix, ["segment", *statuses]),
            _muted("Totals per arm (sums over its customers):"),
            _table(
                _arm_totals(con, offer),
                ["arm", "customers", "expected_incremental_profit", "expected_discount_spend"],
            ),
            _muted("Reasons recorded with each assignment:"),
            _table(_reasons(con, offer), ["reason", "customers"]),
        ]
    return parts


def _policy_plot(offer: dict, rows: list[dict]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 3.2))
    with_truth = any(r["true_profit"] is not None for r in rows)
    width = 0.4 if with_truth else 0.8
    xs = range(len(rows))
    ax.bar(
        [x - width / 2 if with_truth else x for x in xs],
        [r["expected_profit"] or 0.0 for r in rows],
        width=width,
        color=COLOURS[0],
        label="expected (model)",
    )
    if with_truth:
        known = [
            (x, r["true_profit"])
            for x, r in zip(xs, rows, strict=True)
            if r["true_profit"] is not None
        ]
        ax.bar(
            [x + width / 2 for x, _ in known],
            [y for _, y in known],
            width=width,
            color=COLOURS[2],
            label="true (generator)",
        )
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xticks(list(xs), [r["policy"] for r in rows], rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="incremental profit", title=f"{offer['offer_id']}: profit by policy")
    ax.legend(fontsize=7)
    return _png(fig)


def _policy_profit(con, level: int) -> list[str]:
    relation = "marts.fct_offer_policy_profit"
    missing = _missing_columns(con, relation, POLICY_PROFIT_COLUMNS)
    if missing:
        return [
            f"<h{level}>Incremental profit by policy</h{level}>",
            _muted(f"{relation} has no column {', '.join(missing)}: rebuild it with dbt build."),
        ]
    parts = []
    for offer in _latest_offers(con, relation):
        rows = _rows(
            con,
            "select policy, customers_offered, expected_profit, true_profit "
            f"from {relation} where offer_id = ? and as_of_date = ? "
            "order by expected_profit desc nulls last, policy",
            [offer["offer_id"], offer["as_of_date"]],
        )
        columns = ["policy", "customers_offered", "expected_profit"]
        if any(r["true_profit"] is not None for r in rows):
            columns.append("true_profit")
        parts += [
            f"<h{level}>Incremental profit by policy: "
            f"{html.escape(str(offer['offer_id']))}</h{level}>",
            _muted(
                f"At {offer['as_of_date']} ({relation}): expected profit from the model's "
                "effects; true profit from the generator's effects (generated warehouses only)."
            ),
            _grid([_policy_plot(offer, rows)]) if rows else "",
            _table(rows, columns),
        ]
    return parts


# ---------------------------------------------------------------------------------- section


def uplift_section(con, *, level: int = 2) -> list[str]:
    """HTML parts of the section, headed by an `<h{level}>`; [] without an uplift model set."""
    if not has_uplift(con):
        return []
    champions = champion_sets(con)
    parts = [
        f"<h{level}>Uplift and offers</h{level}>",
        _muted(
            "Champion uplift model set per offer family (ml.uplift_*), evaluated on the held-out "
            "share of its experiment"
            + ("." if champions else "; no offer family has a champion set yet.")
        ),
    ]
    for champ in champions:
        parts += _family(con, champ, level + 1)
    if table_exists(con, "marts", "fct_offer_assignments"):
        parts += _assignments(con, level + 1)
    if table_exists(con, "marts", "fct_offer_policy_profit"):
        parts += _policy_profit(con, level + 1)
    return parts


def write_offers_page(warehouse: Path | str, out_dir: Path | str) -> OffersPageResult:
    """Write ``offers.html`` into `out_dir`: the uplift and offers section alone.

    Raises
    ------
    WarehouseError
        When the registry holds no uplift model set.
    """
    with closing(connect(warehouse, read_only=True)) as con:
        parts = uplift_section(con, level=1)
        if not parts:
            raise WarehouseError(
                f"{warehouse} has no uplift model set (ml.uplift_model_sets is empty or "
                "absent): run `propensity uplift train` first"
            )
        families = tuple(c["offer_family"] for c in champion_sets(con))
    target = _write_page(Path(out_dir) / "offers.html", "Uplift and offers", parts)
    return OffersPageResult(target, families)
