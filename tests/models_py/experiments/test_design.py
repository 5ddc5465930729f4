"""`propensity experiment design`: sample sizes are statsmodels' for the same inputs; baselines,
audience sizes and inflow come from the warehouse; designs are saved for BI."""

from __future__ import annotations

import datetime as dt
import math
import shutil

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from statsmodels.stats.power import NormalIndPower, TTestIndPower, zt_ind_solve_power
from statsmodels.stats.proportion import proportion_effectsize

from models_py._dbt import run_dbt
from models_py._errors import ConfigError
from models_py._settings import Settings
from models_py.experiments._design import design_experiment, sample_size
from models_py.experiments._errors import EmptyAudienceError
from models_py.ingest.synth import generate_warehouse
from tests.models_py.experiments.experiment_fixtures import END, build, cli


@pytest.mark.parametrize(
    "baseline,mde,arms,power,alpha",
    [
        (0.05, 0.01, 3, 0.8, 0.05),
        (0.05, 0.01, 2, 0.8, 0.05),
        (0.20, -0.02, 4, 0.9, 0.01),
        (0.011, 0.004, 2, 0.8, 0.1),
    ],
)
def test_conversion_sample_size_is_statsmodels(baseline, mde, arms, power, alpha):
    n, h, alpha_per = sample_size(
        "conversion", baseline=baseline, mde=mde, arms=arms, power=power, alpha=alpha
    )
    assert alpha_per == alpha / (arms - 1)  # Bonferroni over the comparisons with the control
    assert h == proportion_effectsize(baseline + mde, baseline)
    expected = NormalIndPower().solve_power(
        effect_size=abs(h), alpha=alpha / (arms - 1), power=power, ratio=1.0
    )
    assert n == math.ceil(expected)
    assert n == math.ceil(
        zt_ind_solve_power(effect_size=abs(h), alpha=alpha / (arms - 1), power=power)
    )


@pytest.mark.parametrize("mde,sd,arms", [(2.0, 58.6, 2), (5.0, 120.0, 3)])
def test_revenue_sample_size_is_statsmodels(mde, sd, arms):
    n, d, _ = sample_size("revenue", mde=mde, sd=sd, arms=arms)
    assert d == mde / sd
    expected = TTestIndPower().solve_power(effect_size=d, alpha=0.05 / (arms - 1), power=0.8)
    assert n == math.ceil(expected)


def test_the_issues_design_on_the_command_line(tmp_path, capsys):
    args = ["--baseline-rate", "0.05", "--mde", "0.01", "--arms", "3"]
    assert cli(tmp_path / "none.duckdb", "experiment", "design", *args) == 0
    out = capsys.readouterr().out
    h = proportion_effectsize(0.06, 0.05)
    n = math.ceil(NormalIndPower().solve_power(effect_size=h, alpha=0.025, power=0.8))
    assert n == 9_861
    assert f"customers per arm: {n:,}; in total: {3 * n:,}" in out
    assert "each of 2 comparisons with the control at alpha 0.025 (Bonferroni of 0.05)" in out
    assert "conversion 5.00% -> 6.00% (given)" in out


def test_bad_design_inputs_are_named(tmp_path, capsys):
    missing = tmp_path / "none.duckdb"
    assert cli(missing, "experiment", "design", "--mde", "0.01") == 1
    assert "without a warehouse, give --baseline-rate" in capsys.readouterr().err
    assert cli(missing, "experiment", "design", "--baseline-rate", "0.99", "--mde", "0.02") == 1
    assert "baseline + mde in (0, 1)" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="at least 2 arms"):
        sample_size("conversion", baseline=0.1, mde=0.01, arms=1)


T = dt.date(2026, 10, 1)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """A generated warehouse with int_orders_summarised built, a campaign audience at T and a
    score history of three weekly cutoffs (written as dbt would have built them)."""
    path = tmp_path_factory.mktemp("design") / "wh.duckdb"
    generate_warehouse(path, customers=1_500, seed=4, days=300, end_date=END)
    run_dbt(Settings(warehouse=path), ["run", "--select", "+int_orders_summarised"])
    rng = np.random.default_rng(0)
    ids = np.arange(1, 1501)
    scores = []
    for k, cutoff in enumerate((T - dt.timedelta(days=14), T - dt.timedelta(days=7), T)):
        score = rng.random(len(ids))
        # decile 1 (the campaign's selection): customers 1..100 at the first cutoff, 101..160
        # join at the second and 161..200 at the third
        top = ids <= 100 + (60 if k >= 1 else 0) + (40 if k >= 2 else 0)
        score = np.where(top, 0.9 + score * 0.09, score * 0.8)
        decile = np.where(top, 1, 5)
        scores.append(
            pd.DataFrame(
                {
                    "customer_id": ids,
                    "product_group": "wine",
                    "as_of_date": cutoff,
                    "score": score,
                    "decile": decile,
                }
            )
        )
    scores = pd.concat(scores)
    latest = scores[scores["as_of_date"] == T]
    audiences = pd.DataFrame(
        {
            "campaign_id": "wine_top",
            "customer_id": latest["customer_id"],
            "as_of_date": T,
            "is_eligible": latest["decile"] == 1,
            "exclusion_reason": np.where(latest["customer_id"] % 4 == 0, "vip", None),
            "is_holdout": False,
        }
    )
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists marts")
        con.register("s", pa.Table.from_pandas(scores, preserve_index=False))
        con.execute("create table marts.fct_propensity_scores as select * from s")
        con.register("a", pa.Table.from_pandas(audiences, preserve_index=False))
        con.execute("create table marts.fct_campaign_audiences as select * from a")
        con.execute(
            "create table marts.dim_campaigns as select 'wine_top' as campaign_id, "
            "'wine' as product_group, 'deciles' as selection_type, "
            "cast(null as double) as selection_threshold, cast(null as bigint) as selection_top_k, "
            "[1] as selection_deciles"
        )
    return path


def observed_revenue(path, start: dt.datetime, end: dt.datetime) -> pd.Series:
    """Revenue per customer created before `start` in [start, end), from the raw tables."""
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            """
            select c.customer_id, coalesce(sum(l.quantity * l.unit_price), 0) as paid
            from raw.customers as c
            left join raw.orders as o
                on o.customer_id = c.customer_id and o.ordered_at >= ? and o.ordered_at < ?
            left join raw.order_lines as l on l.order_id = o.order_id and l.quantity > 0
            where c.created_at < ?
            group by c.customer_id
            """,
            [start, end, start],
        ).df()["paid"]


def test_revenue_design_uses_the_observed_variance(warehouse, capsys):
    end = dt.datetime(2026, 10, 1)
    paid = observed_revenue(warehouse, end - dt.timedelta(days=30), end)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        design = design_experiment(con, metric="revenue", mde=3.0)
    assert design.baseline_sd == pytest.approx(paid.std(), rel=1e-9)
    assert design.baseline == pytest.approx(paid.mean(), rel=1e-9)
    expected = TTestIndPower().solve_power(effect_size=3.0 / paid.std(), alpha=0.05, power=0.8)
    assert design.customers_per_arm == math.ceil(expected)
    assert design.baseline_source == "observed: every customer, 30 days before 2026-10-01"


def test_audience_size_inflow_and_duration(warehouse, tmp_path, capsys):
    path = shutil.copy(warehouse, tmp_path / "wh.duckdb")
    assert (
        cli(
            path,
            "experiment",
            "design",
            "--baseline-rate",
            "0.1",
            "--mde",
            "0.1",
            "--arms",
            "2",
            "--audience",
            "wine_top",
            "--name",
            "wine_test",
        )
        == 0
    )
    out = capsys.readouterr().out
    # audience now: the 200 top customers, a quarter of them suppressed (vip)
    assert "audience wine_top: 150 customers now" in out
    # inflow: 100 newcomers over the 14 days of history, times the share not suppressed (150/200)
    inflow = 100 / 14 * 150 / 200
    assert f"about {inflow:,.0f} new customers a day" in out
    n = math.ceil(
        NormalIndPower().solve_power(
            effect_size=proportion_effectsize(0.2, 0.1), alpha=0.05, power=0.8
        )
    )
    enrolment = 1 + math.ceil((2 * n - 150) / inflow)
    assert f"duration: {enrolment} days of enrolment + a 30-day outcome window = " in out
    assert f"= {enrolment + 29} days" in out
    build(path, ["dim_experiment_designs"])
    with duckdb.connect(str(path), read_only=True) as con:
        row = con.execute(
            "select design_id, metric, customers_per_arm, audience_size, daily_volume, "
            "duration_days from marts.dim_experiment_designs"
        ).fetchall()
    assert row == [("wine_test", "conversion", n, 150, pytest.approx(inflow), enrolment + 29)]


def test_an_empty_or_unknown_audience_is_named(warehouse, tmp_path, capsys):
    path = shutil.copy(warehouse, tmp_path / "wh.duckdb")
    with duckdb.connect(str(path)) as con:
        con.execute("update marts.fct_campaign_audiences set exclusion_reason = 'vip'")
    with duckdb.connect(str(path), read_only=True) as con, pytest.raises(EmptyAudienceError):
        design_experiment(con, mde=0.01, baseline_rate=0.1, audience="wine_top")
    assert cli(path, "experiment", "design", "--mde", "0.01", "--audience", "wine_top") == 1
    err = capsys.readouterr().err
    assert "the audience of campaign 'wine_top' at 2026-10-01 is empty" in err
    assert "200 customers pass its selection and the suppression rules exclude all of them" in err
    assert cli(path, "experiment", "design", "--mde", "0.01", "--audience", "beer") == 1
    assert "campaign 'beer' has no row in marts.fct_campaign_audiences" in capsys.readouterr().err
