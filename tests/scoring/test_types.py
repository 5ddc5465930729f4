"""The one list of feature column types: every listed type is what DuckDB reports for such a
column and casts to FLOAT (what the scorer feeds onnxruntime); nothing else passes."""

from __future__ import annotations

import duckdb
import pytest

from scoring import FEATURE_TYPES, is_feature_type

#: Column DDL (aliases included) -> whether it may be a feature.
CASES = {
    "boolean": True,
    "tinyint": True,
    "smallint": True,
    "int": True,
    "bigint": True,
    "hugeint": True,
    "utinyint": True,
    "usmallint": True,
    "uinteger": True,
    "ubigint": True,
    "uhugeint": True,
    "real": True,
    "double precision": True,
    "numeric": True,
    "decimal(10, 2)": True,
    "varchar": False,
    "date": False,
    "timestamp": False,
    "interval": False,
    "float[]": False,
    "blob": False,
}


def test_the_list_holds_exactly_these_types() -> None:
    assert FEATURE_TYPES == (
        "BOOLEAN",
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
        "FLOAT",
        "DOUBLE",
        "DECIMAL",
    )


@pytest.mark.parametrize(("ddl", "allowed"), CASES.items(), ids=list(CASES))
def test_reported_type_is_classified_and_features_cast_to_float(ddl: str, allowed: bool) -> None:
    con = duckdb.connect()
    con.execute(f"create table t (c {ddl})")
    reported = con.execute(
        "select data_type from information_schema.columns where table_name = 't'"
    ).fetchone()[0]
    assert is_feature_type(reported) is allowed
    if allowed:
        con.execute("insert into t values (1)")
        assert con.execute("select cast(c as float) from t").fetchone()[0] == 1.0


def test_the_dbt_scoring_macro_accepts_the_same_types() -> None:
    """dbt's `propensity_is_numeric_type` (which champion feature columns the scoring model
    accepts) holds the same list: both sides of the scoring contract agree."""
    import re
    from pathlib import Path

    macro = (
        Path(__file__).resolve().parents[2] / "dbt_project" / "macros" / "scoring" / "scoring.sql"
    ).read_text()
    body = macro.split("macro default__propensity_is_numeric_type", 1)[1].split("endmacro", 1)[0]
    listed = re.findall(r"'([a-z ]+)'", body.split("base in [", 1)[1])
    assert tuple(t.upper() for t in listed) == FEATURE_TYPES
