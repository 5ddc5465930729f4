"""benchmarks/compare_builds.py, the check behind "outputs unchanged": it must see a changed value,
a missing row, a duplicated row and a relation present on one side only."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from compare_builds import compare


def _warehouse(path: Path, rows: list[tuple[int, float]], *, extra: bool = False) -> Path:
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute("create table marts.t (id integer, v double, scored_at timestamp)")
    con.executemany("insert into marts.t values (?, ?, now())", rows)
    if extra:
        con.execute("create view marts.only_here as select 1 as x")
    con.close()
    return path


def test_identical_builds_pass_and_every_difference_is_named(tmp_path):
    base = [(1, 0.5), (2, 0.25)]
    before = _warehouse(tmp_path / "before.duckdb", base)
    # scored_at differs (now() at each insert) and is left out: identical
    assert (
        compare(before, _warehouse(tmp_path / "same.duckdb", base), ["marts"], {"scored_at"}) == []
    )
    changed = _warehouse(tmp_path / "changed.duckdb", [(1, 0.5), (2, 0.26), (2, 0.26)], extra=True)
    assert compare(before, changed, ["marts"], {"scored_at"}) == [
        "marts.only_here: only after",
        "marts.t: 1 rows only before, 2 only after",
    ]
