"""The column types a feature may have: the one list, used by training (which columns a spec may
use as features) and by batch scoring. Every such column is cast to FLOAT before it reaches
onnxruntime, so the list holds exactly the DuckDB types whose cast to FLOAT is defined for every
value. Names are the canonical ones DuckDB's information_schema reports (aliases such as INT,
LONG, REAL, NUMERIC or DOUBLE PRECISION are reported as INTEGER, BIGINT, FLOAT, DECIMAL(18,3)
and DOUBLE).
"""

from __future__ import annotations

#: DuckDB type names (DECIMAL with any precision and scale).
FEATURE_TYPES: tuple[str, ...] = (
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


def is_feature_type(sql_type: str) -> bool:
    """True when a column of DuckDB type `sql_type` (e.g. ``DECIMAL(18,3)``) can be a feature."""
    return str(sql_type).split("(")[0].strip().upper() in FEATURE_TYPES
