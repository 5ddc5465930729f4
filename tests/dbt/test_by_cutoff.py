"""Materialization propensity_by_cutoff (one cutoff per statement): incremental runs replace the
cutoffs they build and keep the others, a column change stops the run with the differing columns,
and --full-refresh rebuilds the table."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from models_py._dbt import run_dbt
from models_py._errors import DbtRunError
from models_py._warehouse import connect
from tests.conftest import write_tiny_warehouse
from tests.dbt.test_features import DBT_VARS, SCORING_CUTOFF, random_tables

MODEL = "fct_customer_group_features"
LATER_SCORING_CUTOFF = "2024-02-12"


def read(settings, sql: str) -> pd.DataFrame:
    con = connect(settings.warehouse, read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def rows_of(settings, as_of_date: str) -> pd.DataFrame:
    return read(
        settings,
        f"select * from marts.{MODEL} where as_of_date = date '{as_of_date}' order by all",
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    settings = write_tiny_warehouse(
        tmp_path_factory.mktemp("by_cutoff") / "wh.duckdb", **random_tables(customers=200, seed=5)
    )
    run_dbt(settings, ["run", "--select", f"+{MODEL}"], dbt_vars=DBT_VARS)
    return settings


def test_incremental_run_keeps_older_cutoffs_and_adds_the_new_one(built):
    before_dates = set(read(built, f"select distinct as_of_date from marts.{MODEL}")["as_of_date"])
    assert len(before_dates) == 5
    before_scoring = rows_of(built, SCORING_CUTOFF)
    assert len(before_scoring) > 50
    run_dbt(
        built,
        ["run", "--select", "dim_cutoffs", MODEL],
        dbt_vars={
            **DBT_VARS,
            "scoring_cutoff": LATER_SCORING_CUTOFF,
            "feature_cutoff_roles": ["scoring"],
        },
    )
    after_dates = set(read(built, f"select distinct as_of_date from marts.{MODEL}")["as_of_date"])
    assert after_dates == before_dates | {pd.Timestamp(LATER_SCORING_CUTOFF)}
    pd.testing.assert_frame_equal(rows_of(built, SCORING_CUTOFF), before_scoring)
    duplicates = read(
        built,
        f"select count(*) - count(distinct (customer_id, product_group, as_of_date)) as n "
        f"from marts.{MODEL}",
    )["n"].iloc[0]
    assert duplicates == 0
    # Re-running the same cutoff replaces it (delete + insert), never appends a second copy.
    n_later = len(rows_of(built, LATER_SCORING_CUTOFF))
    run_dbt(
        built,
        ["run", "--select", MODEL],
        dbt_vars={
            **DBT_VARS,
            "scoring_cutoff": LATER_SCORING_CUTOFF,
            "feature_cutoff_roles": ["scoring"],
        },
    )
    assert len(rows_of(built, LATER_SCORING_CUTOFF)) == n_later > 0


def test_column_change_fails_with_the_columns_then_full_refresh_rebuilds(built):
    con = connect(built.warehouse)
    try:
        con.execute(f"alter table marts.{MODEL} add column stale_feature integer")
    finally:
        con.close()
    with pytest.raises(DbtRunError) as err:
        run_dbt(built, ["run", "--select", "dim_cutoffs", MODEL], dbt_vars=DBT_VARS)
    message = str(err.value)
    assert "stale_feature INTEGER" in message
    assert "--full-refresh" in message
    run_dbt(built, ["run", "--full-refresh", "--select", "dim_cutoffs", MODEL], dbt_vars=DBT_VARS)
    columns = read(built, f"describe marts.{MODEL}")["column_name"].tolist()
    assert "stale_feature" not in columns
    # A full refresh keeps only the cutoffs of dim_cutoffs (the later scoring cutoff is gone).
    dates = set(read(built, f"select distinct as_of_date from marts.{MODEL}")["as_of_date"])
    assert pd.Timestamp(SCORING_CUTOFF) in dates
    assert pd.Timestamp(LATER_SCORING_CUTOFF) not in dates


def test_compiled_model_is_the_select_of_one_cutoff(built):
    """The model's own SQL is one cutoff's select (as_of() is the first cutoff of dim_cutoffs when
    dbt compiles it); the materialization renders it again for every cutoff."""
    from models_py._dbt import dbt_target_path

    run_dbt(built, ["compile", "--select", MODEL], dbt_vars=DBT_VARS)
    compiled = next((dbt_target_path(built) / "compiled").rglob(f"{MODEL}.sql")).read_text()
    first = DBT_VARS["training_cutoffs"][0]
    assert f"cast('{first}' as date) as as_of_date" in compiled
    assert SCORING_CUTOFF not in compiled
    assert "union all" not in compiled.lower()
    # Window bounds are plain date literals: 90 days before the first cutoff.
    assert "cast('2023-07-03' as date)" in compiled


def test_a_sampled_training_set_is_written_several_cutoffs_per_statement_with_the_same_rows(
    tmp_path,
):
    """fct_training_examples writes several training cutoffs of a sampled training set per
    statement (a union all of each cutoff's select; config cutoffs_per_statement, about 200,000
    sampled rows per group and statement); sample sizes too large for that write one cutoff per
    statement. Every way gives the same table (on 200 customers every size keeps every row), and
    the statement dbt ran last shows which way it went."""
    from models_py._dbt import dbt_target_path

    settings = write_tiny_warehouse(tmp_path / "wh.duckdb", **random_tables(customers=200, seed=5))
    examples = "select * from marts.fct_training_examples order by all"
    last_statement = (
        dbt_target_path(settings) / "run" / "propensity" / "models" / "features"
    ) / "fct_training_examples.sql"

    def sizes(rows: int) -> dict[str, int]:
        return {
            "training_sample_positives": rows // 2,
            "training_sample_negatives": rows // 2,
            "evaluation_sample_rows": rows,
        }

    def union_parts() -> int:
        return len(re.findall(r"\) as cutoff_\d+\b", last_statement.read_text()))

    # 200,000 // 40,000 = 5 cutoffs per statement: the 4 training cutoffs in one create.
    run_dbt(
        settings,
        ["run", "--select", "+fct_training_examples"],
        dbt_vars={**DBT_VARS, **sizes(40_000)},
    )
    assert union_parts() == len(DBT_VARS["training_cutoffs"]) == 4
    batched = read(settings, examples)
    assert set(batched["as_of_date"].astype(str).str[:10]) == set(DBT_VARS["training_cutoffs"])

    # 3 per statement (3 + 1), then 1 per statement (200,000 // 600,000 = 0).
    rebuild = "int_training_sample fct_customer_features fct_training_examples"
    for rows in (60_000, 600_000):
        run_dbt(settings, ["run", "--select", rebuild], dbt_vars={**DBT_VARS, **sizes(rows)})
        assert union_parts() == 0
        pd.testing.assert_frame_equal(read(settings, examples), batched)
