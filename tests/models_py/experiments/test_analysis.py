"""The experiment marts and `propensity experiment analyse` on a generated warehouse: results
agree with statsmodels and scipy on the customer rows, with fct_experiment_examples and with the
generator's true effects; interim, sample-ratio and unknown-arm cases say so."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.stats import chisquare, kstest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from models_py.experiments import aa_false_positive_rate, analyse_experiment
from tests.models_py.experiments.experiment_fixtures import (
    RESULTS,
    build,
    cli,
    copy_template,
    experiment_template,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return experiment_template(tmp_path_factory)


def read(warehouse, sql: str, params=()) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, list(params)).df()


def analysis(warehouse, experiment_id: str, **kwargs):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return analyse_experiment(con, experiment_id, **kwargs)


def test_experiments_and_their_settings(warehouse):
    e = read(warehouse, "select * from marts.dim_experiments order by experiment_id")
    e = e.set_index("experiment_id")
    assert list(e.index) == ["aa_sept", "discount_2026q3", "running_test"]
    assert e.loc["discount_2026q3", "control_arm"] == "0"
    assert e.loc["discount_2026q3", "assignment_source"] == "raw.treatments"
    assert e.loc["aa_sept", "assignment_source"] == "raw.experiment_assignments"
    assert list(e["status"]) == ["complete", "complete", "running"]
    assert e.loc["running_test", "window_end"] == pd.Timestamp("2026-10-06")


def test_outcomes_agree_with_the_experiment_examples(warehouse):
    """Two marts compute the same outcomes (fct_experiment_examples for uplift training): equal
    for every customer of the finished discount experiment."""
    both = read(
        warehouse,
        "select o.purchased, e.purchased as e_purchased, o.orders, e.orders as e_orders, "
        "o.revenue, e.revenue as e_revenue, o.margin, e.margin as e_margin "
        "from marts.fct_experiment_outcomes as o inner join marts.fct_experiment_examples as e "
        "using (experiment_id, customer_id) where experiment_id = 'discount_2026q3'",
    )
    assert len(both) > 700
    for column in ("purchased", "orders", "revenue", "margin"):
        np.testing.assert_allclose(both[column], both[f"e_{column}"], atol=0.006, err_msg=column)


@pytest.mark.parametrize("metric,column", [("conversion", "purchased"), ("revenue", "revenue")])
def test_intervals_equal_statsmodels_on_the_customer_rows(warehouse, metric, column):
    rows = read(
        warehouse,
        "select arm, purchased, revenue from marts.fct_experiment_outcomes "
        "where experiment_id = 'discount_2026q3'",
    )
    mart = read(
        warehouse,
        "select * from marts.fct_experiment_results where experiment_id = 'discount_2026q3' "
        "and metric = ? and not is_control order by arm",
        [metric],
    ).set_index("arm")
    result = analysis(warehouse, "discount_2026q3")
    control = DescrStatsW(rows.loc[rows["arm"] == "0", column].to_numpy(float))
    p_values = []
    for c in result.for_metric(metric):
        compare = CompareMeans(
            DescrStatsW(rows.loc[rows["arm"] == c.arm, column].to_numpy(float)), control
        )
        lo, hi = compare.zconfint_diff(usevar="unequal")
        _, p = compare.ztest_ind(usevar="unequal")
        p_values.append(p)
        # Python (analysis) and SQL (the mart) against statsmodels
        assert (c.ci_lower, c.ci_upper) == pytest.approx((lo, hi), rel=1e-9)
        assert (mart.loc[c.arm, "ci_lower"], mart.loc[c.arm, "ci_upper"]) == pytest.approx(
            (lo, hi), rel=1e-9
        )
        assert c.p_value == pytest.approx(p, rel=1e-9)
        for a, b in (
            ("relative_lift", "relative_lift"),
            ("relative_lift_ci_lower", "relative_lift_ci_lower"),
            ("cuped_difference", "cuped_difference"),
            ("cuped_ci_lower", "cuped_ci_lower"),
            ("cuped_ci_upper", "cuped_ci_upper"),
            ("variance_reduction", "variance_reduction"),
            ("incremental_total", "incremental_total"),
        ):
            assert getattr(c, a) == pytest.approx(mart.loc[c.arm, b], rel=1e-9, abs=1e-12), a
    holm = multipletests(p_values, method="holm")[1]
    assert [c.p_value_holm for c in result.for_metric(metric)] == pytest.approx(list(holm))


def test_cuped_equals_a_regression_on_the_pre_period(warehouse):
    """CUPED's adjusted difference: the difference of y - theta (x - mean x), theta pooled from
    the within-arm covariances (recomputed from the rows with numpy)."""
    rows = read(
        warehouse,
        "select arm, revenue as y, pre_period_revenue as x from marts.fct_experiment_outcomes "
        "where experiment_id = 'discount_2026q3'",
    )
    centred = rows.groupby("arm")[["x", "y"]].transform(lambda s: s - s.mean())
    theta = (centred["x"] * centred["y"]).sum() / (centred["x"] ** 2).sum()
    adjusted = rows["y"] - theta * (rows["x"] - rows["x"].mean())
    means = adjusted.groupby(rows["arm"]).mean()
    result = {c.arm: c for c in analysis(warehouse, "discount_2026q3").for_metric("revenue")}
    for arm in ("20", "25"):
        assert result[arm].cuped_difference == pytest.approx(means[arm] - means["0"], rel=1e-9)
        assert result[arm].ci_width_ratio < 0.9  # the pre-period explains part of the variance


def test_intervals_contain_the_true_average_effects(warehouse):
    """The generator's true effect of each discount per customer (raw.oracle_treatment_effect),
    averaged over the experiment's customers, lies inside the 95 % intervals of the estimated
    lift: purchase probability, revenue and margin, plain and CUPED."""
    truth = read(
        warehouse,
        "select arm, avg(effect) as conversion, avg(revenue_effect) as revenue, "
        "avg(margin_effect) as margin from raw.oracle_treatment_effect group by arm",
    ).set_index("arm")
    result = analysis(warehouse, "discount_2026q3")
    for metric in ("conversion", "revenue", "margin"):
        for c in result.for_metric(metric):
            true = truth.loc[c.arm, metric]
            assert c.ci_lower < true < c.ci_upper, (metric, c.arm, true, c.ci_lower, c.ci_upper)
            assert c.cuped_ci_lower < true < c.cuped_ci_upper, (metric, c.arm, true)
            assert c.ci_width_ratio < 1


def test_sample_ratio_is_scipys_chi_square(warehouse):
    result = analysis(warehouse, "aa_sept")
    counts = read(
        warehouse,
        "select arm, count(*) as n from marts.fct_experiment_outcomes "
        "where experiment_id = 'aa_sept' group by arm order by arm",
    )
    expected = chisquare(counts["n"], f_exp=[counts["n"].sum() / 2] * 2)
    assert result.sample_ratio.chi_square == pytest.approx(expected.statistic)
    assert result.sample_ratio.p_value == pytest.approx(expected.pvalue)
    assert not result.sample_ratio.is_mismatch
    mart = read(
        warehouse,
        "select distinct srm_chi_square, is_sample_ratio_mismatch "
        "from marts.fct_experiment_results where experiment_id = 'aa_sept'",
    )
    assert mart["srm_chi_square"].tolist() == pytest.approx([expected.statistic])
    assert mart["is_sample_ratio_mismatch"].tolist() == [False]


def test_the_mart_critical_values_are_scipys():
    import re

    from scipy.stats import chi2, norm

    from models_py._settings import Settings

    sql = (
        Settings().dbt_project_dir
        / "models"
        / "marts"
        / "experiments"
        / "fct_experiment_results.sql"
    ).read_text()
    table = re.search(r"chi_square_critical = \{(.*?)\}", sql, re.S).group(1)
    critical = {int(k): float(v) for k, v in re.findall(r"(\d+): ([\d.]+)", table)}
    assert sorted(critical) == list(range(1, 21))
    for df, value in critical.items():
        assert value == pytest.approx(chi2.isf(0.001, df), abs=1e-6)
    assert float(re.search(r"set z = ([\d.]+)", sql).group(1)) == pytest.approx(norm.ppf(0.975))


def test_cumulative_results_end_at_the_results(warehouse):
    last = read(
        warehouse,
        "select arm, conversion_difference, conversion_ci_lower, revenue_difference, "
        "revenue_ci_upper from marts.fct_experiment_cumulative "
        "where experiment_id = 'discount_2026q3' and day = 30 and not is_control order by arm",
    ).set_index("arm")
    result = analysis(warehouse, "discount_2026q3")
    conversion = {c.arm: c for c in result.for_metric("conversion")}
    revenue = {c.arm: c for c in result.for_metric("revenue")}
    for arm in ("20", "25"):
        assert last.loc[arm, "conversion_difference"] == pytest.approx(conversion[arm].difference)
        assert last.loc[arm, "conversion_ci_lower"] == pytest.approx(conversion[arm].ci_lower)
        assert last.loc[arm, "revenue_difference"] == pytest.approx(
            revenue[arm].difference, abs=1e-4
        )
        assert last.loc[arm, "revenue_ci_upper"] == pytest.approx(revenue[arm].ci_upper, abs=1e-4)
    days = read(
        warehouse,
        "select max(day) as last_day from marts.fct_experiment_cumulative "
        "where experiment_id = 'running_test'",
    )
    assert days["last_day"].item() == 10  # assigned 2026-09-21, data until 2026-10-01


def test_balance_is_the_smd_of_the_features_at_assignment(warehouse):
    features = read(
        warehouse,
        "select a.arm, f.spend_90d, f.order_count from marts.fct_customer_features as f "
        "inner join raw.experiment_assignments as a on a.customer_id = f.customer_id "
        "where a.experiment_id = 'aa_sept' and f.as_of_date = date '2026-09-01'",
    )
    balance = read(
        warehouse,
        "select feature, smd, is_imbalanced from marts.fct_experiment_balance "
        "where experiment_id = 'aa_sept'",
    ).set_index("feature")
    assert len(balance) > 50
    for feature in ("spend_90d", "order_count"):
        a = features.loc[features["arm"] == "a", feature]
        b = features.loc[features["arm"] == "b", feature]
        smd = (b.mean() - a.mean()) / np.sqrt((b.var() + a.var()) / 2)
        assert balance.loc[feature, "smd"] == pytest.approx(smd, rel=1e-9)
    assert not balance["is_imbalanced"].any()  # a random split


def test_aa_splits_reject_at_the_nominal_rate(warehouse):
    """100 salted re-assignments of the A/A experiment's customers: the p-values of conversion are
    uniform and about alpha of them are below it (the benchmark runs 200 on 50,000 customers)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        result = aa_false_positive_rate(
            con,
            "marts.fct_experiment_outcomes",
            metric="purchased",
            covariate="pre_period_orders",
            runs=100,
            where="experiment_id = 'aa_sept'",
        )
    assert result.runs == 100 and result.customers > 2500
    assert kstest(result.p_values, "uniform").pvalue > 0.01
    assert 0.01 <= result.rate <= 0.11
    assert 0.01 <= result.cuped_rate <= 0.11


def test_analyse_prints_the_verdict(warehouse, capsys):
    assert cli(warehouse, "experiment", "analyse", "discount_2026q3") == 0
    out = capsys.readouterr().out
    assert "experiment discount_2026q3 (marts.fct_experiment_results), control 0" in out
    assert "sample ratio: 0 " in out and "passes" in out
    assert "Arm 25 raised conversion" in out
    assert "Balance: none of" in out


def test_interim_figures_are_flagged_and_final_refuses(warehouse, capsys):
    assert cli(warehouse, "experiment", "analyse", "running_test") == 0
    out = capsys.readouterr().out
    assert "status running [INTERIM]" in out
    assert "INTERIM: the outcome window closes on 2026-10-06" in out
    assert "revenue (primary)" in out
    assert cli(warehouse, "experiment", "analyse", "running_test", "--final") == 1
    err = capsys.readouterr().err
    assert "error: experiment 'running_test' is still running" in err
    assert "closes on 2026-10-06" in err


def test_unknown_experiment_and_control(warehouse, capsys):
    assert cli(warehouse, "experiment", "analyse", "nope") == 1
    err = capsys.readouterr().err
    assert "no experiment 'nope'" in err and "aa_sept, discount_2026q3, running_test" in err
    assert cli(warehouse, "experiment", "analyse", "aa_sept", "--control", "c") == 1
    assert "--control 'c' is not an arm of experiment 'aa_sept' (arms: a, b)" in (
        capsys.readouterr().err
    )


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """The template with 30 % of arm b of aa_sept lost, and an arm experiments.yml does not
    declare added to running_test."""
    path = copy_template(tmp_path_factory, tmp_path_factory.mktemp("damaged") / "wh.duckdb")
    with duckdb.connect(str(path)) as con:
        con.execute(
            "delete from raw.experiment_assignments where experiment_id = 'aa_sept' and arm = 'b' "
            "and bucket % 10 < 3"
        )
        con.execute(
            "update raw.experiment_assignments set arm = 'sms' where experiment_id = "
            "'running_test' and bucket < 500"
        )
    build(path, RESULTS)
    return path


def test_a_sample_ratio_mismatch_is_flagged_not_hidden(damaged, capsys):
    assert cli(damaged, "experiment", "analyse", "aa_sept") == 2
    out = capsys.readouterr().out
    assert "[SAMPLE RATIO MISMATCH]" in out
    assert "SAMPLE RATIO MISMATCH: the arm counts a 1," in out
    assert "do not trust the figures" in out
    # the figures are still there
    assert "conversion (primary)" in out and "Arm b" in out
    flags = read(
        damaged,
        "select distinct is_sample_ratio_mismatch from marts.fct_experiment_results "
        "where experiment_id = 'aa_sept'",
    )
    assert flags["is_sample_ratio_mismatch"].tolist() == [True]


def test_arms_experiments_yml_does_not_declare_are_refused(damaged, capsys):
    assert cli(damaged, "experiment", "analyse", "running_test") == 1
    err = capsys.readouterr().err
    assert "error: experiment 'running_test' has arms sms in its assignments" in err
    assert "declare every arm" in err
