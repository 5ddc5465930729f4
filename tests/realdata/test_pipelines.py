"""Each public dataset end to end through the `propensity` CLI (in-process), with outcomes
checked independently from the warehouse: champions registered, a score for every row, and
ROC AUC recomputed with scikit-learn from the scores the warehouse wrote.

One warehouse per dataset, built once per module. About 3-4 minutes on 2 shared cores, most of
it dbt and training on Online Retail.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from sklearn.metrics import roc_auc_score

from models_py.cli import main
from models_py.ingest.loaders import DEFAULT_GROUPS_PATH
from models_py.training._specs import SPECS_DIR
from tests.conftest import shared_file

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SPECS = SPECS_DIR


def _cli(wh: Path, *args: str) -> None:
    code = main(["--warehouse", str(wh), *args])
    assert code == 0, f"propensity {' '.join(args)} exited with {code}"


def _rows(wh: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _champions(wh: Path, spec_name: str) -> dict[str, dict]:
    rows = _rows(
        wh,
        "select r.product_group, r.model_id, r.metrics from ml.model_registry as r "
        "join ml.model_aliases as a on a.model_id = r.model_id and a.alias = 'champion' "
        "where r.spec_name = ?",
        [spec_name],
    )
    return {g: {"model_id": m, **json.loads(metrics)} for g, m, metrics in rows}


# ---------------------------------------------------------------------------- Online Retail


@pytest.fixture(scope="module")
def online_retail(tmp_path_factory) -> Path:
    path = shared_file("online_retail.parquet")
    tmp = tmp_path_factory.mktemp("online_retail")
    wh = tmp / "wh.duckdb"
    _cli(wh, "load", "online-retail", str(path))
    _cli(wh, "groups", "set", str(DEFAULT_GROUPS_PATH))
    vars_ = "{horizon_days: 30, cutoff_step_days: 30, min_history_days: 90}"
    _cli(wh, "build", "--vars", vars_)
    spec = str(SPECS / "online_retail.yml")
    _cli(wh, "train", "--spec", spec, "--group", "any", "--group", "christmas")
    _cli(wh, "build", "--vars", vars_, "--select", "fct_propensity_scores+", "path:models/marts/ml")
    _cli(wh, "report", "--out", str(tmp / "report"))
    # score the held-out test cutoff with the same in-warehouse UDF, to check the registry's AUC
    _cli(
        wh,
        "score",
        "any",
        "--relation",
        "marts.fct_training_examples",
        "--out",
        "marts.test_scores_any",
        "--id-column",
        "customer_id",
        "--id-column",
        "as_of_date",
        "--id-column",
        "product_group",
    )
    return wh


def test_online_retail_champions_and_cutoffs(online_retail):
    champions = _champions(online_retail, "online_retail_purchase")
    assert set(champions) == {"any", "christmas"}
    for group, c in champions.items():
        assert c["test"]["roc_auc"] > 0.68, group  # community "buys again": about 0.74
    cutoffs = dict(
        _rows(
            online_retail,
            "select cutoff_role, max(as_of_date)::varchar from marts.dim_cutoffs group by 1",
        )
    )
    assert cutoffs["scoring"] == "2011-12-10"  # the day after the last invoice
    assert cutoffs["test"] == "2011-11-10"


def test_online_retail_scores_every_customer(online_retail):
    features, scored, bad = _rows(
        online_retail,
        """
        select
            (select count(*) from marts.fct_scoring_features where product_group = 'any'),
            (select count(*) from marts.fct_propensity_scores where product_group = 'any'),
            (select count(*) from marts.fct_propensity_scores
             where score is null or score < 0 or score > 1)
        """,
    )[0]
    assert features > 4_000
    assert scored == features
    assert bad == 0


def test_online_retail_test_auc_recomputed_from_warehouse_scores(online_retail):
    rows = _rows(
        online_retail,
        """
        select e.label, s.score
        from marts.test_scores_any as s
        join marts.fct_training_examples as e
            using (customer_id, as_of_date, product_group)
        where s.product_group = 'any' and e.split = 'test'
        """,
    )
    labels, scores = zip(*rows, strict=True)
    auc = roc_auc_score(labels, scores)
    registered = _champions(online_retail, "online_retail_purchase")["any"]["test"]
    assert registered["examples"] == len(rows)
    assert auc == pytest.approx(registered["roc_auc"], abs=1e-3)
    assert auc > 0.68


# ----------------------------------------------------------------------- Customer Personality


@pytest.fixture(scope="module")
def marketing(tmp_path_factory) -> Path:
    wh = tmp_path_factory.mktemp("marketing") / "wh.duckdb"
    _cli(wh, "load", "marketing-campaign", str(shared_file("marketing_campaign.csv")))
    _cli(wh, "train", "--spec", str(SPECS / "marketing_campaign.yml"))
    _cli(wh, "score", "marketing_response", "--relation", "datasets.marketing_campaign")
    return wh


def test_marketing_champion_trained_with_stratified_kfold(marketing):
    champion = _champions(marketing, "marketing_response")["marketing_response"]
    algorithms = {c["algorithm"] for c in champion["candidates"]}
    assert {"logistic_regression", "random_forest"} <= algorithms
    for c in champion["candidates"]:
        assert c["search_auc"] > 0.80, c  # 5-fold CV; community: 0.86-0.88
    assert champion["test"]["roc_auc"] > 0.80
    assert champion["test"]["examples"] == pytest.approx(0.2 * 2_058, abs=2)
    (test_cutoffs,) = _rows(
        marketing,
        "select test_cutoffs from ml.model_registry where model_id = ?",
        [champion["model_id"]],
    )[0]
    assert "stratified_kfold" in test_cutoffs


def test_marketing_scores_every_row(marketing):
    rows = _rows(
        marketing,
        "select d.response, s.score, s.decile from datasets.marketing_campaign as d "
        "left join datasets.marketing_campaign_scores as s using (customer_id)",
    )
    assert len(rows) == 2_058
    labels, scores, deciles = zip(*rows, strict=True)
    assert all(s is not None and 0 <= s <= 1 for s in scores)
    assert set(deciles) == set(range(1, 11))
    # in-sample for the 80% the final model was fitted on, so above the held-out figure
    assert roc_auc_score(labels, scores) > 0.85


# ----------------------------------------------------------------------------------- Hillstrom

HILLSTROM_TARGETS = ("visit__pooled", "visit__mens_email", "visit__womens_email", "visit__no_email")


@pytest.fixture(scope="module")
def hillstrom(tmp_path_factory) -> Path:
    wh = tmp_path_factory.mktemp("hillstrom") / "wh.duckdb"
    _cli(wh, "load", "hillstrom", str(shared_file("hillstrom.parquet")))
    groups = [arg for t in HILLSTROM_TARGETS for arg in ("--group", t)]
    _cli(wh, "train", "--spec", str(SPECS / "hillstrom.yml"), *groups)
    _cli(wh, "score", *HILLSTROM_TARGETS, "--relation", "datasets.hillstrom")
    return wh


def test_hillstrom_models_per_arm_and_pooled(hillstrom):
    champions = _champions(hillstrom, "hillstrom_response")
    assert set(champions) == set(HILLSTROM_TARGETS)
    for target, c in champions.items():
        assert 0.55 < c["test"]["roc_auc"] < 0.80, target
    # the per-arm model is tested on its arm's customers only (20% of about 21,300)
    assert champions["visit__mens_email"]["test"]["examples"] == pytest.approx(4_261, abs=5)
    assert champions["visit__pooled"]["test"]["base_rate"] == pytest.approx(0.1468, abs=0.01)


def test_hillstrom_scores_every_customer_per_target(hillstrom):
    counts = dict(
        _rows(
            hillstrom,
            "select product_group, count(distinct customer_id) "
            "from datasets.hillstrom_scores group by 1",
        )
    )
    assert counts == {t: 64_000 for t in HILLSTROM_TARGETS}
    rows = _rows(
        hillstrom,
        "select h.arm, h.visit, s.score from datasets.hillstrom_scores as s "
        "join datasets.hillstrom as h using (customer_id) where s.product_group = ?",
        ["visit__pooled"],
    )
    arms, visits, scores = zip(*rows, strict=True)
    assert roc_auc_score(visits, scores) > 0.6
    # the pooled model sees the arm: its mean score per arm follows the arms' visit rates
    mean = {
        a: sum(s for aa, s in zip(arms, scores, strict=True) if aa == a) / arms.count(a)
        for a in set(arms)
    }
    assert mean["mens_email"] > mean["womens_email"] > mean["no_email"]


# --------------------------------------------------------------------------------- results page


def test_results_page_reads_figures_back_from_the_warehouse(marketing, tmp_path):
    from models_py._score_relation import ScoreResult
    from models_py._settings import Settings
    from models_py.ingest.loaders import load_marketing_campaign
    from models_py.reporting._results import DatasetRun, champion_rows, render_markdown

    settings = Settings(warehouse=marketing)
    models = champion_rows(settings, "marketing_campaign", "marketing_response")
    assert [m.target for m in models] == ["marketing_response"]
    load = load_marketing_campaign(shared_file("marketing_campaign.csv"), tmp_path / "wh.duckdb")
    scored = ScoreResult(
        relation="datasets.marketing_campaign",
        out="datasets.marketing_campaign_scores",
        models={"marketing_response": models[0].model_id},
        rows={"marketing_response": 2_058},
        seconds=1.0,
    )
    run = DatasetRun(
        name="marketing_campaign",
        warehouse=marketing,
        models=models,
        steps={"train": 1.0},
        facts={"load": load, "scored": scored},
    )
    page = render_markdown([run], seconds=1.0)
    auc = f"{models[0].test['roc_auc']:.3f}"
    headline = next(line for line in page.splitlines() if line.startswith("| Customer"))
    assert auc in headline and "0.86-0.88" in headline
    assert f"(CV {models[0].cv_roc_auc:.3f})" in headline
    assert f"CV ROC AUC {models[0].cv_roc_auc:.3f}" in page
    assert "no time axis" in page


def test_results_without_data_is_a_clear_error(tmp_path, capsys):
    code = main(["results", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "r.md")])
    assert code == 1
    err = capsys.readouterr().err
    assert "online_retail.parquet" in err and "PROPENSITY_SHARED_DATA" in err
    assert not (tmp_path / "r.md").exists()


def test_score_refuses_a_relation_without_the_features(marketing, capsys):
    con = duckdb.connect(str(marketing))
    try:
        con.execute(
            "create or replace table datasets.no_features as "
            "select customer_id, income from datasets.marketing_campaign"
        )
    finally:
        con.close()
    code = main(
        [
            "--warehouse",
            str(marketing),
            "score",
            "marketing_response",
            "--relation",
            "datasets.no_features",
            "--out",
            "datasets.marketing_campaign_scores",
        ]
    )
    assert code == 1
    assert "missing feature column(s)" in capsys.readouterr().err
    # the previous scores are intact
    assert (
        _rows(marketing, "select count(*) from datasets.marketing_campaign_scores")[0][0] == 2_058
    )
