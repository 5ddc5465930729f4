"""The Customer Personality and Hillstrom loaders on the real files: counted cleaning rules and
the known figures of ../shared/data/README.md (no dbt, a few seconds)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from models_py._errors import InputDataError
from models_py.ingest.loaders import (
    clean_marketing_campaign,
    load_hillstrom,
    load_marketing_campaign,
)
from models_py.ingest.loaders._hillstrom import training_targets
from tests.conftest import shared_file

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def marketing(tmp_path_factory):
    path = shared_file("marketing_campaign.csv")
    wh = tmp_path_factory.mktemp("mc") / "wh.duckdb"
    return load_marketing_campaign(path, wh), wh


@pytest.fixture(scope="module")
def hillstrom(tmp_path_factory):
    path = shared_file("hillstrom.parquet")
    wh = tmp_path_factory.mktemp("hs") / "wh.duckdb"
    return load_hillstrom(path, wh), wh


def _rows(wh: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# --------------------------------------------------------------------------- Customer Personality


def test_marketing_counts_every_cleaning_rule(marketing):
    report, _ = marketing
    assert report.rows_read == 2_240
    assert dict(report.cleaned) == {
        "near_duplicate": 182,
        "income_missing": 24,
        "income_implausible": 1,
        "birth_year_implausible": 3,
        "marital_status_other": 7,
    }
    assert report.rows_written == 2_240 - 182
    assert report.constant_columns == ("Z_CostContact", "Z_Revenue")
    assert report.reference_date == dt.date(2014, 6, 30)


def test_marketing_table_is_clean(marketing):
    report, wh = marketing
    (n, ids, positives, null_income, max_income, min_birth, flagged_income, flagged_birth) = _rows(
        wh,
        "select count(*), count(distinct customer_id), sum(response), count(*) filter "
        "(where income is null), max(income), min(birth_year), "
        "count(*) filter (where is_income_imputed), count(*) filter (where is_birth_year_imputed) "
        "from datasets.marketing_campaign",
    )[0]
    assert n == ids == 2_058
    assert positives == report.positives == 313
    assert null_income == 0 and max_income < 200_000
    assert min_birth >= 1920
    # the flags count the imputed rows that survive de-duplication
    assert 1 <= flagged_income <= 25 and 1 <= flagged_birth <= 3
    statuses = {
        r[0] for r in _rows(wh, "select distinct marital_status from datasets.marketing_campaign")
    }
    assert statuses == {"Married", "Together", "Single", "Divorced", "Widow", "other"}
    columns = {r[0] for r in _rows(wh, "describe datasets.marketing_campaign")}
    assert not {"Z_CostContact", "Z_Revenue", "z_costcontact"} & columns
    assert {"response", "income", "education_code", "marital_status_code"} <= columns


def test_marketing_keep_duplicates_matches_the_file():
    table, info = clean_marketing_campaign(
        shared_file("marketing_campaign.csv"), keep_duplicates=True
    )
    assert table.num_rows == 2_240
    assert sum(table.column("response").to_pylist()) == 334  # 14.9% as published
    assert info["near_duplicates_found"] == 182
    assert info["cleaned"]["near_duplicate"] == 0


def test_marketing_bad_value_is_a_named_error(tmp_path):
    text = shared_file("marketing_campaign.csv").read_text()
    lines = text.splitlines()
    cells = lines[1].split("\t")
    cells[4] = "lots"  # Income
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([lines[0], "\t".join(cells), *lines[2:5]]) + "\n")
    with pytest.raises(InputDataError, match="Income"):
        clean_marketing_campaign(bad)
    missing = tmp_path / "missing.csv"
    missing.write_text("ID\tYear_Birth\n1\t1970\n")
    with pytest.raises(InputDataError, match="lacks column"):
        clean_marketing_campaign(missing)


# --------------------------------------------------------------------------------------- Hillstrom


def test_hillstrom_known_figures(hillstrom):
    report, _ = hillstrom
    assert report.rows == 64_000
    assert {a: v[0] for a, v in report.arms.items()} == {
        "womens_email": 21_387,
        "mens_email": 21_307,
        "no_email": 21_306,
    }
    assert report.visits == 9_394
    assert report.conversions == 578
    assert report.spend == pytest.approx(67_258.13, abs=0.005)
    assert round(100 * report.visit_rate("mens_email"), 2) == 18.28
    assert round(100 * report.visit_rate("womens_email"), 2) == 15.14
    assert round(100 * report.visit_rate("no_email"), 2) == 10.62
    assert report.cleaned["zip_code_spelling"] == 28_776


def test_hillstrom_tables_agree(hillstrom):
    _, wh = hillstrom
    raw = _rows(
        wh,
        "select count(*), count(distinct customer_id), min(customer_id), max(customer_id), "
        "count(distinct experiment_id), min(assigned_at) from raw.treatments",
    )[0]
    assert raw == (64_000, 64_000, 1, 64_000, 1, dt.datetime(2008, 3, 1))
    # the experiment table and raw.treatments name the same arm for every customer
    mismatched = _rows(
        wh,
        "select count(*) from datasets.hillstrom as h join raw.treatments as t "
        "using (customer_id) where h.arm <> t.arm",
    )[0][0]
    assert mismatched == 0
    assert _rows(wh, "select count(*) from raw.customers")[0][0] == 64_000
    assert _rows(wh, "select count(*) from raw.orders")[0][0] == 0
    zips = {r[0] for r in _rows(wh, "select distinct zip_code from datasets.hillstrom")}
    assert zips == {"urban", "suburban", "rural"}


def test_hillstrom_training_examples(hillstrom):
    _, wh = hillstrom
    rows = dict(
        (t, (n, pos))
        for t, n, pos in _rows(
            wh,
            "select target, count(*), sum(label) from datasets.hillstrom_training group by 1",
        )
    )
    assert set(rows) == set(training_targets())
    assert rows["visit__pooled"] == (64_000, 9_394)
    assert rows["conversion__pooled"] == (64_000, 578)
    assert rows["visit__mens_email"] == (21_307, round(0.18275684 * 21_307))
    assert (
        sum(rows[f"conversion__{a}"][1] for a in ("mens_email", "womens_email", "no_email")) == 578
    )


def test_hillstrom_unknown_arm_is_a_named_error(tmp_path):
    import pyarrow.parquet as pq

    table = pq.read_table(shared_file("hillstrom.parquet")).slice(0, 50)
    segment = table.column("segment").to_pylist()
    segment[3] = "SMS"
    table = table.set_column(table.schema.get_field_index("segment"), "segment", [segment])
    bad = tmp_path / "bad.parquet"
    pq.write_table(table, bad)
    with pytest.raises(InputDataError, match="SMS"):
        load_hillstrom(bad, tmp_path / "wh.duckdb")
    assert not (tmp_path / "wh.duckdb").exists()
