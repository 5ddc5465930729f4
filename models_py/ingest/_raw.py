"""The raw input contract (schema `raw`) and atomic writes of raw tables: what every loader and
the generator write through, and what `propensity build` checks before dbt runs."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import pyarrow as pa

from models_py._errors import WarehouseError
from models_py._warehouse import qualified, quote_ident, transaction

logger = logging.getLogger(__name__)

RAW_SCHEMA = "raw"


def _load_raw_contract() -> dict[str, dict[str, str]]:
    """The raw contract as the dbt project declares it: the tables of source `raw` in
    models/staging/_staging__sources.yml with each column's `data_type` (upper case). That yml is
    the one place the contract is written; staging checks it with `raw_contract_columns`."""
    import yaml

    from models_py._settings import DBT_PROJECT_DIR

    path = DBT_PROJECT_DIR / "models" / "staging" / "_staging__sources.yml"
    raw = next(s for s in yaml.safe_load(path.read_text())["sources"] if s["name"] == RAW_SCHEMA)
    return {
        table["name"]: {
            column["name"]: column["data_type"].upper()
            for column in table.get("columns", [])
            if column.get("data_type")
        }
        for table in raw["tables"]
    }


#: The raw input contract: table -> column -> DuckDB type. Types are minimums a user's tables must
#: cast to; extra columns are allowed and ignored unless configured.
RAW_CONTRACT: dict[str, dict[str, str]] = _load_raw_contract()


_ARROW_TYPES = {
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "VARCHAR": pa.string(),
    "TIMESTAMP": pa.timestamp("us"),
    "BOOLEAN": pa.bool_(),
}


def empty_raw_table(table: str) -> pa.Table:
    """An empty Arrow table with the contract columns of raw `table` (for optional tables)."""
    return pa.table({c: pa.array([], _ARROW_TYPES[t]) for c, t in RAW_CONTRACT[table].items()})


def raw_ddl(table: str, extra_columns: Mapping[str, str] | None = None) -> str:
    columns = dict(RAW_CONTRACT[table])
    columns.update(extra_columns or {})
    cols = ", ".join(f"{quote_ident(c)} {t}" for c, t in columns.items())
    return f"create or replace table {qualified(RAW_SCHEMA, table)} ({cols})"


def write_raw_tables(
    con,
    tables: Mapping[str, pa.Table | Iterable[pa.RecordBatch]],
    *,
    extra_columns: Mapping[str, Mapping[str, str]] | None = None,
    schema: str = RAW_SCHEMA,
) -> dict[str, int]:
    """Replace raw tables atomically (one transaction) from Arrow tables or batch iterables.

    Tables named in `RAW_CONTRACT` are created with the contract's column types (plus any
    `extra_columns`); other tables (ground truth, experiment outcomes) take the Arrow schema.
    Returns the row count written per table.
    """
    extra_columns = extra_columns or {}
    counts: dict[str, int] = {}
    con.execute(f"create schema if not exists {quote_ident(schema)}")
    with transaction(con):
        for name, data in tables.items():
            target = qualified(schema, name)
            batches = [data] if isinstance(data, pa.Table) else data
            created = False
            if schema == RAW_SCHEMA and name in RAW_CONTRACT:
                con.execute(raw_ddl(name, extra_columns.get(name)))
                created = True
            n = 0
            for i, batch in enumerate(batches):
                view = f"__propensity_batch_{i}"
                con.register(view, batch)
                try:
                    if not created:
                        con.execute(f"create or replace table {target} as select * from {view}")
                        created = True
                    else:
                        con.execute(f"insert into {target} by name select * from {view}")
                finally:
                    con.unregister(view)
                n += batch.num_rows
            if not created:
                raise WarehouseError(f"no data and no schema given for table {name}")
            counts[name] = n
    return counts


def _converts(actual: str, expected: str) -> bool:
    """Whether a column of type `actual` satisfies the contract type `expected` without a look."""
    return actual == expected or (expected == "TIMESTAMP" and actual.startswith("TIMESTAMP"))


def check_raw_contract(con, *, schema: str = RAW_SCHEMA) -> list[str]:
    """Problems of the raw tables against `RAW_CONTRACT`, one sentence each (empty when fine).

    A problem is a missing table, a missing (e.g. renamed) column, or a column of another type
    holding values that do not convert to the contract type (the sentence shows one). Columns of
    another type whose values all convert pass (an INTEGER id, a VARCHAR holding numbers, a
    TIMESTAMP WITH TIME ZONE, which staging converts to UTC). The staging models run the same
    check (macro `raw_contract_columns`), so `dbt build` run directly stops with these messages.
    """
    rows = con.execute(
        "select table_name, lower(column_name), upper(data_type) "
        "from information_schema.columns where table_schema = ? order by ordinal_position",
        [schema],
    ).fetchall()
    found: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        found.setdefault(table, {})[column] = data_type
    problems: list[str] = []
    for table, contract in RAW_CONTRACT.items():
        where = f"{schema}.{table}"
        if table not in found:
            problems.append(
                f"raw table {where} does not exist: load it with the columns "
                f"{', '.join(contract)} (an optional table may be empty but must exist)"
            )
            continue
        missing = [f"{c} {t}" for c, t in contract.items() if c not in found[table]]
        if missing:
            problems.append(
                f"raw table {where} has no column {', '.join(missing)} (it has "
                f"{', '.join(found[table])}): rename the column in your load, or point the "
                "source at a view that selects it under the contract name"
            )
            continue
        key = next(iter(contract))
        for column, expected in contract.items():
            actual = found[table][column]
            col = quote_ident(column)
            if not _converts(actual, expected):
                n_bad, example = con.execute(
                    f"select count(*), min(cast({col} as varchar)) from {qualified(schema, table)} "
                    f"where {col} is not null and try_cast({col} as {expected}) is null"
                ).fetchone()
                if n_bad:
                    problems.append(
                        f"raw table {where} column {column} has type {actual} and {n_bad} values "
                        f"that do not convert to {expected} (e.g. {example!r}): fix the values "
                        "or the column type in your load"
                    )
            elif expected == "DOUBLE" and actual in ("DOUBLE", "FLOAT"):
                # NaN and infinity are doubles but no contract value (e.g. a spreadsheet's empty
                # price read as NaN); named here, not as a failed cast deep in the build.
                n_bad, example = con.execute(
                    f"select count(*), min({quote_ident(key)}) from {qualified(schema, table)} "
                    f"where isnan({col}) or isinf({col})"
                ).fetchone()
                if n_bad:
                    problems.append(
                        f"raw table {where} column {column} has {n_bad} values that are not "
                        f"finite numbers (NaN or infinity; e.g. {key} {example}): fix or drop "
                        "these rows in your load"
                    )
    return problems
