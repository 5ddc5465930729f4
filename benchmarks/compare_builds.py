"""Compare the tables two builds of the dbt project wrote: same rows, both ways.

Usage::

    .venv/bin/python benchmarks/compare_builds.py BEFORE.duckdb AFTER.duckdb \
        [--schemas staging,intermediate,marts] [--ignore-column scored_at]

For every table and view of the schemas in either warehouse: the column names and types, the row
counts, and ``EXCEPT ALL`` both ways (rows of one missing from the other, duplicates counted).
Columns stamped with the build time (``scored_at``) are left out of the row comparison. Used to
show that a refactor of the SQL leaves every mart, feature and score identical; exits 1 when any
relation differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb


def relations(con, catalog: str, schemas: list[str]) -> dict[str, list[tuple[str, str]]]:
    rows = con.execute(
        "select table_schema, table_name, column_name, data_type from information_schema.columns "
        "where table_catalog = ? and table_schema in (select unnest(?)) "
        "order by table_schema, table_name, ordinal_position",
        [catalog, schemas],
    ).fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for schema, table, column, dtype in rows:
        out.setdefault(f"{schema}.{table}", []).append((column, dtype))
    return out


def compare(before: Path, after: Path, schemas: list[str], ignore: set[str]) -> list[str]:
    con = duckdb.connect()
    con.execute("attach ? as b (read_only)", [str(before)])
    con.execute("attach ? as a (read_only)", [str(after)])
    rel_b, rel_a = relations(con, "b", schemas), relations(con, "a", schemas)
    problems = []
    for name in sorted(set(rel_b) | set(rel_a)):
        if name not in rel_a or name not in rel_b:
            problems.append(f"{name}: only {'before' if name in rel_b else 'after'}")
            continue
        if sorted(rel_b[name]) != sorted(rel_a[name]):
            problems.append(f"{name}: columns differ: {rel_b[name]} vs {rel_a[name]}")
            continue
        cols = ", ".join(f'"{c}"' for c, _ in rel_b[name] if c not in ignore)
        n_b = con.execute(f"select count(*) from b.{name}").fetchone()[0]
        n_a = con.execute(f"select count(*) from a.{name}").fetchone()[0]
        only_b = con.execute(
            f"select count(*) from (select {cols} from b.{name} except all "
            f"select {cols} from a.{name})"
        ).fetchone()[0]
        only_a = con.execute(
            f"select count(*) from (select {cols} from a.{name} except all "
            f"select {cols} from b.{name})"
        ).fetchone()[0]
        status = "identical" if (n_b == n_a and only_b == only_a == 0) else "DIFFERENT"
        print(
            f"{name:55s} {n_b:>12,} rows  before-after {only_b:>8,}  after-before {only_a:>8,}"
            f"  {status}"
        )
        if status != "identical":
            problems.append(f"{name}: {only_b} rows only before, {only_a} only after")
    con.close()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--schemas", default="staging,intermediate,marts")
    parser.add_argument("--ignore-column", action="append", default=["scored_at"])
    args = parser.parse_args(argv)
    problems = compare(args.before, args.after, args.schemas.split(","), set(args.ignore_column))
    for p in problems:
        print("DIFF", p)
    print("all identical" if not problems else f"{len(problems)} relations differ")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
