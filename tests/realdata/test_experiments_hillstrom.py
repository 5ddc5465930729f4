"""`propensity experiment analyse --relation` on the real Hillstrom experiment: the arms' visit
and conversion rates are the published ones (MineThatData, 2008: visits 18.28 / 15.14 / 10.62 %,
conversions 1.25 / 0.88 / 0.57 % for the men's, women's and no e-mail), both e-mails raise both
with intervals that exclude 0, and the sample ratio test passes."""

from __future__ import annotations

import duckdb
import pytest

from models_py.cli import main
from models_py.experiments import analyse_relation
from tests.conftest import shared_file

pytestmark = pytest.mark.realdata

PUBLISHED = {
    "visit": {"mens_email": 0.1828, "womens_email": 0.1514, "no_email": 0.1062},
    "conversion": {"mens_email": 0.0125, "womens_email": 0.0088, "no_email": 0.0057},
}
COMMAND = [
    "experiment",
    "analyse",
    "hillstrom_2008_email",
    "--relation",
    "datasets.hillstrom",
    "--metric",
    "visit",
    "--metric",
    "conversion",
    "--metric",
    "spend",
    "--covariate",
    "history",
    "--control",
    "no_email",
    "--balance",
    "recency_months",
    "--balance",
    "history",
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("hillstrom_experiment") / "wh.duckdb"
    data = shared_file("hillstrom.parquet")
    assert main(["--warehouse", str(path), "load", "hillstrom", str(data)]) == 0
    return path


def test_rates_lifts_and_sample_ratio_are_the_published_experiment(warehouse):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        result = analyse_relation(
            con,
            "datasets.hillstrom",
            experiment_id="hillstrom_2008_email",
            metrics=["visit", "conversion", "spend"],
            control="no_email",
            covariate="history",
        )
    for metric, rates in PUBLISHED.items():
        for c in result.for_metric(metric):
            assert round(c.mean, 4) == rates[c.arm], (metric, c.arm)
            assert round(c.control_mean, 4) == rates["no_email"]
            assert 0 < c.ci_lower < c.difference < c.ci_upper
            assert c.p_value_holm < 0.001
    assert result.sample_ratio.counts == {
        "mens_email": 21_307,
        "no_email": 21_306,
        "womens_email": 21_387,
    }
    assert result.sample_ratio.p_value > 0.5 and not result.sample_ratio.is_mismatch


def test_the_command_prints_the_verdict(warehouse, capsys):
    assert main(["--warehouse", str(warehouse), *COMMAND]) == 0
    out = capsys.readouterr().out
    assert "visit (primary)" in out
    assert "Arm mens_email raised visit by 7.6" in out and "10.62% -> 18.28%" in out
    assert "Arm womens_email raised visit by 4.5" in out and "10.62% -> 15.14%" in out
    assert "sample ratio: mens_email 21,307" in out and "passes" in out
    assert "Balance: none of 2 pre-assignment features differs" in out
