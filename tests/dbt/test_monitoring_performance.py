"""fct_model_performance and fct_model_calibration on a small generated warehouse with trained
champions, scored at three cutoffs by real dbt runs (the daily job's models, one scoring cutoff
per run), then checked against scikit-learn and numpy on the same rows.

History (now = the last scoring cutoff, C3; the warehouse holds orders up to END, after now):
  C1 = END - 70  champion A of both groups, a coarse model (most scores tied); matured exactly
                 at now (its window ends at C3)
  C2 = END - 45  wine's champion is now B (any keeps A); not matured
  C3 = END - 40  the same champions (now); not matured
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from models_py._dbt import dbt_target_path, run_dbt
from models_py._settings import Settings
from models_py._warehouse import connect
from models_py.ingest.synth import generate_warehouse
from models_py.registry import promote_model
from models_py.training._train import train

pytestmark = pytest.mark.slow

END = dt.date(2025, 10, 1)
C1, C2, C3 = (END - dt.timedelta(days=d) for d in (70, 45, 40))
HORIZON = dt.timedelta(days=30)
GROUPS = ("any", "wine")
SCORE_AND_MONITOR = (
    "dim_cutoffs fct_customer_features fct_customer_group_features fct_scoring_features "
    "fct_propensity_scores fct_model_calibration fct_model_performance"
)
MONITOR = "fct_model_calibration fct_model_performance"
# Everything the performance marts read besides the score history: orders (raw -> staging ->
# intermediate) and dim_cutoffs.
FROM_ORDERS = "+int_order_groups_summarised dim_cutoffs " + MONITOR
SPEC = """
specs:
  - name: lean
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
      hist_gradient_boosting: {max_iter: [MAX_ITER], learning_rate: [0.1], max_leaf_nodes: [LEAVES]}
    calibration: sigmoid
    threshold: max_f1
    promotion: {metric: roc_auc, margin: 0.005}
"""
REALISED = ("positives", "base_rate", "roc_auc", "pr_auc", "brier", "lift_at_10")


@dataclass(frozen=True)
class History:
    settings: Settings
    model_a: dict[str, str]  # group -> champion at C1
    model_b: str  # wine's champion from C2 on
    plans: dict[dt.date, str]  # scoring cutoff -> the plan line fct_model_calibration logged


def _vars(now: dt.date) -> dict:
    return {"scoring_cutoff": now.isoformat(), "feature_cutoff_roles": ["scoring"]}


def _run(settings: Settings, select: str, now: dt.date, *extra: str) -> str:
    """dbt run of `select` with scoring cutoff `now`; returns the plan line of the run."""
    log = dbt_target_path(settings).parent / "logs" / "dbt.log"
    offset = log.stat().st_size if log.exists() else 0
    run_dbt(settings, ["run", "--select", select, *extra], dbt_vars=_vars(now))
    with log.open() as fh:
        fh.seek(offset)
        lines = [line for line in fh if "fct_model_calibration: now" in line]
    return lines[-1] if lines else ""


def _train(
    settings: Settings, tmp: Path, groups: list[str], *, max_iter: int, leaves: int
) -> dict[str, str]:
    spec = tmp / f"spec_{max_iter}_{leaves}.yml"
    spec.write_text(SPEC.replace("MAX_ITER", str(max_iter)).replace("LEAVES", str(leaves)))
    report = train(settings, spec_path=spec, groups=groups, jobs=1)
    assert not report.failed, [r.message for r in report.failed]
    return {r.product_group: r.model_id for r in report.results}


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> History:
    tmp = tmp_path_factory.mktemp("monitoring_performance")
    settings = Settings(warehouse=tmp / "wh.duckdb")
    generate_warehouse(settings.warehouse, customers=500, seed=5, days=400, end_date=END)
    training_set = "+fct_training_examples stg_ml__model_metrics stg_ml__lift_by_decile"
    run_dbt(settings, ["run", "--select", training_set], dbt_vars={"scoring_cutoff": str(C1)})
    # A: two trees of three leaves, so at most 9 distinct scores per group (many ties)
    model_a = _train(settings, tmp, list(GROUPS), max_iter=2, leaves=3)
    plans = {C1: _run(settings, SCORE_AND_MONITOR, C1)}
    model_b = _train(settings, tmp, ["wine"], max_iter=20, leaves=7)["wine"]
    con = connect(settings.warehouse)
    try:
        promote_model(con, model_b, reason="test: champion changes mid-history")
    finally:
        con.close()
    plans[C2] = _run(settings, SCORE_AND_MONITOR, C2)
    con = connect(settings.warehouse)
    try:  # C2 rescored (as a rerun of its daily job would): its rows must be recomputed
        con.execute(
            "update marts.fct_propensity_scores set scored_at = scored_at + interval 1 second "
            "where as_of_date = ?",
            [C2],
        )
    finally:
        con.close()
    plans[C3] = _run(settings, SCORE_AND_MONITOR, C3)
    return History(settings, model_a, model_b, plans)


# ------------------------------------------------------------------------------ expectations


def _table(path: Path, relation: str) -> list[dict]:
    con = connect(path, read_only=True)
    try:
        cur = con.execute(f"select * from {relation} order by all")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


def _scores_and_labels(path: Path, now: dt.date) -> dict[tuple, dict]:
    """Per (group, model, cutoff): customer ids, scores, deciles, and labels computed here from
    the raw orders (a purchase line of the group in [T, T + 30 days)), None when not matured."""
    con = connect(path, read_only=True)
    try:
        scores = con.execute(
            "select product_group, model_id, as_of_date, customer_id, score, decile "
            "from marts.fct_propensity_scores order by customer_id"
        ).fetchall()
        purchases = con.execute(
            "select distinct orders.customer_id, groups.product_group, "
            "cast(orders.ordered_at as date) from raw.orders as orders "
            "inner join raw.order_lines as lines on orders.order_id = lines.order_id "
            "inner join intermediate.int_products_mapped_to_groups as groups "
            "on lines.product_id = groups.product_id where lines.quantity > 0"
        ).fetchall()
    finally:
        con.close()
    bought = defaultdict(list)
    for customer, group, day in purchases:
        bought[group].append((customer, day))
    out: dict[tuple, dict] = defaultdict(lambda: {"ids": [], "p": [], "decile": []})
    for group, model, cutoff, customer, score, decile in scores:
        if cutoff > now:
            continue
        part = out[(group, model, cutoff)]
        part["ids"].append(customer)
        part["p"].append(score)
        part["decile"].append(decile)
    for (group, _, cutoff), part in out.items():
        part["ids"], part["p"] = np.array(part["ids"]), np.array(part["p"])
        part["decile"] = np.array(part["decile"])
        if cutoff + HORIZON <= now:
            positive = {c for c, d in bought[group] if cutoff <= d < cutoff + HORIZON}
            part["y"] = np.array([c in positive for c in part["ids"]], dtype=int)
        else:
            part["y"] = None
    return dict(out)


def _top_decile(ids: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Mask of decile 1 as ntile(10) orders it: score desc, customer_id asc; ceil(n / 10) rows."""
    order = np.lexsort((ids, -p))
    mask = np.zeros(len(p), dtype=bool)
    mask[order[: -(-len(p) // 10)]] = True
    return mask


def _weighted(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row twice: a positive of weight p and a negative of weight 1 - p (CBPE)."""
    return np.r_[np.ones(len(p)), np.zeros(len(p))], np.r_[p, p], np.r_[p, 1 - p]


def _check_against_python(path: Path, now: dt.date) -> int:
    """Every row of fct_model_performance against scikit-learn / numpy; returns matured rows."""
    expected = _scores_and_labels(path, now)
    rows = _table(path, "marts.fct_model_performance")
    assert {(r["product_group"], r["model_id"], r["as_of_date"]) for r in rows} == set(expected)
    matured = 0
    for r in rows:
        part = expected[(r["product_group"], r["model_id"], r["as_of_date"])]
        p, y, ids = part["p"], part["y"], part["ids"]
        key = (r["product_group"], r["as_of_date"])
        top = _top_decile(ids, p)
        assert np.array_equal(top, part["decile"] == 1), key
        assert r["rows"] == len(p)
        assert r["label_window_end"] == r["as_of_date"] + HORIZON
        assert r["is_matured"] == (r["label_window_end"] <= now)
        wy, wp, w = _weighted(p)
        assert r["expected_positives"] == pytest.approx(p.sum(), abs=1e-9)
        assert r["estimated_roc_auc"] == pytest.approx(
            roc_auc_score(wy, wp, sample_weight=w), abs=1e-9
        )
        assert r["estimated_pr_auc"] == pytest.approx(
            average_precision_score(wy, wp, sample_weight=w), abs=1e-9
        )
        assert r["estimated_lift_at_10"] == pytest.approx(p[top].mean() / p.mean(), abs=1e-9)
        if y is None:
            assert [r[c] for c in (*REALISED, "roc_auc_estimate_error")] == [None] * 7, key
            continue
        matured += 1
        assert r["positives"] == y.sum(), key
        assert r["base_rate"] == pytest.approx(y.mean(), abs=1e-12)
        assert r["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-9), key
        assert r["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-9), key
        assert r["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12), key
        assert r["lift_at_10"] == pytest.approx(y[top].mean() / y.mean(), abs=1e-12), key
        assert r["roc_auc_estimate_error"] == pytest.approx(
            r["estimated_roc_auc"] - r["roc_auc"], abs=1e-15
        )
    return matured


# ------------------------------------------------------------------------------------ tests


def test_figures_equal_scikit_learn_and_numpy(history):
    assert _check_against_python(history.settings.warehouse, C3) == 2  # C1, two groups


def test_the_coarse_champion_ties_most_scores(history):
    """The tie case is real: A's scores take a handful of values, tie groups cross deciles."""
    con = connect(history.settings.warehouse, read_only=True)
    try:
        distinct, straddling = con.execute(
            "select max(n), sum(crossing) from (select product_group, count(distinct score) as n, "
            "count(*) filter (where deciles > 1) as crossing from (select product_group, score, "
            "count(distinct decile) as deciles from marts.fct_propensity_scores "
            "where as_of_date = ? group by all) group by all)",
            [C1],
        ).fetchone()
    finally:
        con.close()
    assert distinct <= 9 and straddling >= 2


def test_unmatured_cutoffs_have_estimates_but_no_realised_figures(history):
    rows = _table(history.settings.warehouse, "marts.fct_model_performance")
    status = {(r["product_group"], r["as_of_date"]): r["is_matured"] for r in rows}
    assert status == {(g, c): c == C1 for g in GROUPS for c in (C1, C2, C3)}
    for r in rows:
        assert r["estimated_roc_auc"] is not None and 0.5 < r["estimated_roc_auc"] < 1
        assert (r["roc_auc"] is not None) == r["is_matured"]
    calibration = _table(history.settings.warehouse, "marts.fct_model_calibration")
    assert len(calibration) == 10 * len(rows)
    for c in calibration:
        assert (c["observed_rate"] is not None) == c["is_matured"]
        assert c["mean_score"] == pytest.approx(c["expected_positives"] / c["rows"])


def test_calibration_by_decile_equals_numpy(history):
    expected = _scores_and_labels(history.settings.warehouse, C3)
    for c in _table(history.settings.warehouse, "marts.fct_model_calibration"):
        part = expected[(c["product_group"], c["model_id"], c["as_of_date"])]
        in_decile = part["decile"] == c["decile"]
        assert c["rows"] == in_decile.sum()
        assert c["mean_score"] == pytest.approx(part["p"][in_decile].mean(), abs=1e-12)
        assert c["min_score"] == part["p"][in_decile].min()
        if part["y"] is not None:
            assert c["positives"] == part["y"][in_decile].sum()
            assert c["observed_rate"] == pytest.approx(part["y"][in_decile].mean(), abs=1e-12)


def test_a_champion_change_gives_rows_per_model_with_its_test_figures(history):
    rows = _table(history.settings.warehouse, "marts.fct_model_performance")
    models = {(r["product_group"], r["as_of_date"]): r["model_id"] for r in rows}
    a, b = history.model_a, history.model_b
    assert models == {
        **{("any", c): a["any"] for c in (C1, C2, C3)},
        ("wine", C1): a["wine"],
        **{("wine", c): b for c in (C2, C3)},
    }
    con = connect(history.settings.warehouse, read_only=True)
    try:
        test = {
            m: con.execute(
                "select metrics.base_rate, metrics.roc_auc, metrics.pr_auc, metrics.brier, "
                "lift.lift from ml.model_metrics as metrics inner join ml.lift_by_decile as lift "
                "on metrics.model_id = lift.model_id and lift.split = 'test' and lift.decile = 1 "
                "where metrics.model_id = ? and metrics.split = 'test'",
                [m],
            ).fetchone()
            for m in (a["wine"], b)
        }
    finally:
        con.close()
    assert test[a["wine"]] != test[b]
    figures = ("test_base_rate", "test_roc_auc", "test_pr_auc", "test_brier", "test_lift_at_10")
    for r in rows:
        if r["product_group"] == "wine":
            assert tuple(r[f] for f in figures) == test[r["model_id"]]


def test_a_daily_run_computes_only_new_rescored_or_maturing_cutoffs(history):
    plans = history.plans
    assert f"computing 1 cutoff(s) [{C1}], 0 of them matured; keeping 0" in plans[C1]
    # C1 (not matured, unchanged) is kept
    assert f"computing 1 cutoff(s) [{C2}], 0 of them matured; keeping 1" in plans[C2]
    # C1 matures at C3 and C2 was rescored
    assert f"computing 3 cutoff(s) [{C1}, {C2}, {C3}], 1 of them matured; keeping 0" in plans[C3]


def test_nothing_at_or_after_now_is_read(history, tmp_path):
    """A rebuild on a copy of the warehouse without its orders at or after now gives the rows the
    daily runs left on the warehouse that holds them (bit for bit)."""
    copy = Settings(warehouse=tmp_path / "copy.duckdb")
    shutil.copy(history.settings.warehouse, copy.warehouse)
    con = connect(copy.warehouse)
    try:
        later = "select order_id from raw.orders where ordered_at >= ?"
        con.execute(f"delete from raw.order_lines where order_id in ({later})", [C3])
        assert con.execute("delete from raw.orders where ordered_at >= ?", [C3]).fetchone()[0] > 0
    finally:
        con.close()
    plan = _run(copy, FROM_ORDERS, C3, "--full-refresh")
    assert "computing 3 cutoff(s)" in plan
    con = connect(copy.warehouse, read_only=True)
    try:  # the rebuild really saw no later order
        newest = con.execute("select max(order_date) from intermediate.int_orders_summarised")
        assert newest.fetchone()[0] < C3
    finally:
        con.close()
    for table in MONITOR.split():
        assert _table(copy.warehouse, f"marts.{table}") == _table(
            history.settings.warehouse, f"marts.{table}"
        ), table
