"""The warehouse: opening the DuckDB file, transactions, quoting and catalogue look-ups.

The raw input contract and the writer of raw tables are `models_py.ingest._raw`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import duckdb

from models_py._errors import WarehouseError

logger = logging.getLogger(__name__)


def quote_ident(name: str) -> str:
    """Quote an SQL identifier for DuckDB (double quotes, embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def connect(path: Path | str, *, read_only: bool = False, threads: int | None = None):
    """Open the warehouse file, turning lock and path problems into a `WarehouseError`."""
    path = Path(path)
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WarehouseError(
                f"cannot create the directory for the warehouse {path}: {exc.strerror}. "
                "Set PROPENSITY_WAREHOUSE to a writable file path."
            ) from exc
    elif not path.exists():
        raise WarehouseError(
            f"warehouse file {path} does not exist. Create it with `propensity generate` or "
            "`propensity load ...`, or set PROPENSITY_WAREHOUSE to an existing DuckDB file."
        )
    config: dict[str, object] = {"threads": threads} if threads else {}
    config.update(resource_settings(path))
    try:
        with _CONNECT_LOCK:
            return duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        msg = str(exc)
        if "lock" in msg.lower():
            raise lock_error(path, msg) from exc
        if "not a valid DuckDB database file" in msg:
            raise WarehouseError(
                f"{path} is not a readable DuckDB file (it exists but holds something else); "
                "it was left untouched. Point PROPENSITY_WAREHOUSE or --warehouse at a DuckDB "
                "file, or move this file away."
            ) from exc
        raise WarehouseError(f"cannot open warehouse {path}: {msg.splitlines()[0]}") from exc
    except duckdb.Error as exc:
        raise WarehouseError(
            f"{path} is not a readable DuckDB file: {str(exc).splitlines()[0]}"
        ) from exc


def resource_settings(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """DuckDB's memory_limit and temp_directory for a connection of the package, from the same
    variables profiles.yml gives dbt (PROPENSITY_DUCKDB_MEMORY_LIMIT, default 80 % of RAM;
    PROPENSITY_DUCKDB_TEMP_DIRECTORY, default the warehouse path + '.tmp'), so every step of a
    run, dbt's and Python's, is bounded the same way. The limit's format is checked by
    `Settings.from_env` before anything runs; DuckDB refuses a malformed one here too."""
    env = os.environ if environ is None else environ
    return {
        "memory_limit": env.get("PROPENSITY_DUCKDB_MEMORY_LIMIT") or "80%",
        "temp_directory": env.get("PROPENSITY_DUCKDB_TEMP_DIRECTORY") or f"{path}.tmp",
    }


#: DuckDB's Python client (2.0): two threads opening the same file at once may get a connection
#: whose catalog lacks `python_arrow_scan`, so `register` of an Arrow table fails on it (training
#: fits groups in threads). Opening connections one at a time avoids it.
_CONNECT_LOCK = threading.Lock()

_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")


def lock_error(path: Path | str, duckdb_message: str) -> WarehouseError:
    """The error for a warehouse file another process holds: which file, which process, what to do.

    Parameters
    ----------
    path : Path or str
        The warehouse file.
    duckdb_message : str
        DuckDB's lock message (it names the holding program and PID when the OS reports them).
    """
    holder = _LOCK_HOLDER.search(duckdb_message)
    who = "another process"
    if holder:
        program = holder["program"].strip()
        who = f"process {holder['pid']}" + (f" ({program})" if len(program) > 1 else "")
    return WarehouseError(
        f"warehouse {path} is locked by {who}: DuckDB allows one process to open a file for "
        "writing. Wait for that run (dbt, propensity, a notebook) to finish, or stop it, "
        "then retry."
    )


@contextmanager
def transaction(con) -> Iterator[None]:
    """Run a block in one transaction: all of it lands or none of it does.

    Inside a transaction already open on `con`, the block joins it: the outer block commits or
    rolls back (DuckDB has no nested transactions).
    """
    key = id(con)
    if key in _OPEN_TRANSACTIONS:
        yield
        return
    _OPEN_TRANSACTIONS.add(key)
    try:
        with _transaction(con):
            yield
    finally:
        _OPEN_TRANSACTIONS.discard(key)


#: id() of the connections with a `transaction` block open (alive while in the set).
_OPEN_TRANSACTIONS: set[int] = set()


@contextmanager
def _transaction(con) -> Iterator[None]:
    con.execute("begin transaction")
    try:
        yield
    except BaseException:
        con.execute("rollback")
        raise
    else:
        con.execute("commit")


def table_exists(con, schema: str, table: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def relation_exists(con, relation: str) -> bool:
    schema, table = relation.split(".")
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def relation_columns(con, relation: str) -> dict[str, str]:
    """Column name -> upper-case DuckDB type, in table order."""
    schema, table = relation.split(".")
    rows = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall()
    return {name: str(dtype).upper() for name, dtype in rows}
