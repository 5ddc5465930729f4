"""`models_py._warehouse.connect` from several threads at once (training fits groups in threads)."""

from __future__ import annotations

import threading
import uuid

import duckdb
import pyarrow as pa

from models_py._warehouse import connect


def test_threads_opening_one_file_at_once_can_register_arrow_tables(tmp_path):
    path = tmp_path / "wh.duckdb"
    duckdb.connect(str(path)).close()
    errors: list[str] = []

    def work() -> None:
        try:
            con = connect(path, read_only=True)
            view = f"v_{uuid.uuid4().hex[:8]}"
            con.register(view, pa.table({"a": [1, 2, 3]}))
            assert con.execute(f"select sum(a) from {view}").fetchone() == (6,)
            con.close()
        except Exception as exc:  # collected: an assertion in a thread would be lost
            errors.append(str(exc).splitlines()[0])

    # Each round opens the file anew from two threads (the connections of the round before are
    # closed); without one-at-a-time opening DuckDB 2.0 failed from the second round on.
    for _ in range(10):
        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
