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
