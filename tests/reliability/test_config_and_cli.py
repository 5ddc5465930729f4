"""Catalogue (docs/reliability.md): configuration, environment and CLI cases. Each test drives the
`propensity` CLI and asserts the exact message, the exit code and that the warehouse is intact."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from models_py.cli import main
from scoring import ModelIntegrityError, load_model
from tests.conftest import REPO_ROOT, write_tiny_warehouse
from tests.reliability._warehouses import table_fingerprint

SQL = "x'; drop table raw.orders; --"
RAW = ("raw.orders", "raw.product_group_rules", "raw.customers")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    return write_tiny_warehouse(tmp_path / "wh.duckdb").warehouse


def test_group_name_with_quotes_or_sql_is_refused(tiny, tmp_path, capsys):
    before = table_fingerprint(tiny, *RAW)
    config = tmp_path / "groups.yml"
    config.write_text(f'product_groups:\n  "{SQL}":\n    category: [wine]\n')
    code, _, err = _run(capsys, "--warehouse", str(tiny), "groups", "set", str(config))
    assert code == 1
    assert err == (
        f'error: product group name "{SQL}" is not allowed: use 1-40 characters of lowercase '
        "letters, digits and underscores, starting with a letter (e.g. 'candles_and_lights')\n"
    )
    assert table_fingerprint(tiny, *RAW) == before


def test_group_pattern_with_quotes_or_sql_is_stored_as_data(tiny, tmp_path, capsys):
    orders = table_fingerprint(tiny, "raw.orders")
    config = tmp_path / "groups.yml"
    config.write_text(f'product_groups:\n  sneaky:\n    product_name: ["{SQL}", "kid\'s"]\n')
    code, out, _ = _run(capsys, "--warehouse", str(tiny), "groups", "set", str(config))
    assert code == 0
    assert "wrote 2 rules for 1 product groups: sneaky" in out
    con = duckdb.connect(str(tiny), read_only=True)
    try:
        patterns = con.execute(
            "select pattern from raw.product_group_rules order by pattern"
        ).fetchall()
    finally:
        con.close()
    assert patterns == [("kid's",), (SQL,)]
    assert table_fingerprint(tiny, "raw.orders") == orders


def test_campaign_id_with_quotes_or_sql_is_refused(tiny, tmp_path, capsys):
    config = tmp_path / "campaigns.yml"
    config.write_text(
        f'campaigns:\n  "{SQL}":\n    product_group: wine\n    selection: {{top_k: 10}}\n'
    )
    code, _, err = _run(capsys, "--warehouse", str(tiny), "campaigns", "set", str(config))
    assert code == 1
    assert err.startswith(f'error: campaign id "{SQL}" is not allowed: use 1-64 lowercase')
    assert "Traceback" not in err
    assert table_fingerprint(tiny, "raw.orders", "raw.campaign_config")["raw.campaign_config"] == (
        "absent"
    )


def test_campaign_description_with_sql_is_stored_as_data(tiny, tmp_path, capsys):
    config = tmp_path / "campaigns.yml"
    description = "'); drop table raw.orders; --"
    config.write_text(
        "campaigns:\n  wine_top:\n    product_group: wine\n    selection: {top_k: 10}\n"
        f'    description: "{description}"\n'
    )
    code, out, _ = _run(capsys, "--warehouse", str(tiny), "campaigns", "set", str(config))
    assert code == 0 and "wrote 1 campaigns: wine_top" in out
    con = duckdb.connect(str(tiny), read_only=True)
    try:
        assert con.execute("select description from raw.campaign_config").fetchall() == [
            (description,)
        ]
        assert con.execute("select count(*) from raw.orders").fetchone() == (2,)
    finally:
        con.close()


def test_unreadable_warehouse_file_is_named(tmp_path, capsys):
    path = tmp_path / "notes.duckdb"
    path.write_bytes(b"these are my notes, not a database\n")
    code, _, err = _run(capsys, "--warehouse", str(path), "models", "list")
    assert code == 1
    assert err.startswith(f"error: {path} is not a readable DuckDB file (it exists but holds")
    assert path.read_bytes() == b"these are my notes, not a database\n"  # never overwritten


def test_missing_warehouse_file_is_named(tmp_path, capsys):
    path = tmp_path / "absent.duckdb"
    code, _, err = _run(capsys, "--warehouse", str(path), "models", "list")
    assert code == 1
    assert err.startswith(f"error: warehouse file {path} does not exist. Create it with")
    assert not path.exists()


def test_warehouse_env_pointing_at_a_directory_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PROPENSITY_WAREHOUSE", str(tmp_path))
    code, _, err = _run(capsys, "models", "list")
    assert code == 1
    assert err.startswith(f"error: PROPENSITY_WAREHOUSE points at a directory ({tmp_path})")


def test_warehouse_env_below_a_file_is_refused(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("PROPENSITY_WAREHOUSE", str(blocker / "sub" / "wh.duckdb"))
    config = tmp_path / "groups.yml"
    config.write_text("product_groups:\n  wine:\n    category: [wine]\n")
    code, _, err = _run(capsys, "groups", "set", str(config))
    assert code == 1
    assert err.startswith(f"error: cannot create the directory for the warehouse {blocker}/sub")
    assert "Set PROPENSITY_WAREHOUSE to a writable file path." in err
    assert blocker.read_text() == "x"


def test_threads_env_not_a_number_is_refused(tiny, capsys, monkeypatch):
    monkeypatch.setenv("PROPENSITY_THREADS", "two")
    code, _, err = _run(capsys, "--warehouse", str(tiny), "models", "list")
    assert (code, err) == (1, "error: PROPENSITY_THREADS must be an integer, got 'two'\n")


def test_duckdb_memory_limit_env_not_an_amount_is_refused(tiny, capsys, monkeypatch):
    monkeypatch.setenv("PROPENSITY_DUCKDB_MEMORY_LIMIT", "3 gigs")
    code, _, err = _run(capsys, "--warehouse", str(tiny), "models", "list")
    assert (code, err) == (
        1,
        "error: PROPENSITY_DUCKDB_MEMORY_LIMIT must be an amount of memory such as 3GB, 512MB "
        "or 50%, got '3 gigs'\n",
    )


def test_registry_blob_that_is_a_pickle_is_refused_as_not_onnx():
    blob = pickle.dumps({"model": "a pickled estimator"})
    with pytest.raises(ModelIntegrityError, match="onnxruntime cannot load the ONNX bytes"):
        load_model(blob, hashlib.sha256(blob).hexdigest(), model_id="pickled")


def test_corrupted_onnx_blob_with_a_matching_sha256_is_refused():
    from tests.scoring.scoring_fixtures import make_model

    model = make_model("any_lr", kind="lr")
    corrupted = model.onnx_bytes[: len(model.onnx_bytes) // 2]
    with pytest.raises(
        ModelIntegrityError, match="model 'any_lr': onnxruntime cannot load the ONNX bytes"
    ):
        load_model(corrupted, hashlib.sha256(corrupted).hexdigest(), model_id="any_lr")


def test_onnx_blob_whose_sha256_does_not_match_is_refused():
    from tests.scoring.scoring_fixtures import make_model

    model = make_model("any_lr", kind="lr")
    with pytest.raises(ModelIntegrityError, match=r"any_lr.*sha256"):
        load_model(model.onnx_bytes + b"\x00", model.sha256, model_id="any_lr")


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "models_py.cli", *argv],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_error_is_one_line_and_a_nonzero_exit_code(tmp_path):
    proc = _cli("--warehouse", str(tmp_path / "absent.duckdb"), "models", "list")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: warehouse file ")
    assert "Traceback" not in proc.stderr


def test_cli_debug_prints_the_traceback(tmp_path):
    proc = _cli("--debug", "--warehouse", str(tmp_path / "absent.duckdb"), "models", "list")
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "models_py._errors.WarehouseError: warehouse file" in proc.stderr


def test_duckdb_memory_limit_and_spill_directory_bound_python_and_dbt_alike(
    tiny, tmp_path, monkeypatch
):
    """PROPENSITY_DUCKDB_MEMORY_LIMIT and PROPENSITY_DUCKDB_TEMP_DIRECTORY reach both the
    package's own connections and dbt's (through profiles.yml); unset, DuckDB's defaults apply:
    80 % of RAM and the warehouse path + '.tmp'."""
    import json

    from models_py._warehouse import connect

    spill = tmp_path / "spill"
    query = "select current_setting('memory_limit') as m, current_setting('temp_directory') as t"

    def python_side():
        con = connect(tiny, read_only=True)
        try:
            return tuple(con.execute(query).fetchone())
        finally:
            con.close()

    def dbt_side():
        out = subprocess.run(
            [
                str(Path(sys.executable).with_name("dbt")),
                "show",
                "--inline",
                query,
                "--output",
                "json",
                "--log-format",
                "json",
                "--project-dir",
                str(REPO_ROOT / "dbt_project"),
                "--profiles-dir",
                str(REPO_ROOT),
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PROPENSITY_WAREHOUSE": str(tiny)},
            timeout=300,
        )
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        for line in out.stdout.splitlines():
            data = json.loads(line).get("data", {})
            if "preview" in data:
                (row,) = json.loads(data["preview"])
                return row["m"], row["t"]
        raise AssertionError(out.stdout[-2000:])

    monkeypatch.setenv("PROPENSITY_DUCKDB_MEMORY_LIMIT", "1GB")
    monkeypatch.setenv("PROPENSITY_DUCKDB_TEMP_DIRECTORY", str(spill))
    assert python_side() == ("953.6 MiB", str(spill))
    assert dbt_side() == ("953.6 MiB", str(spill))
    monkeypatch.delenv("PROPENSITY_DUCKDB_MEMORY_LIMIT")
    monkeypatch.delenv("PROPENSITY_DUCKDB_TEMP_DIRECTORY")
    default = python_side()
    assert default[1] == f"{tiny}.tmp" and default[0] != "953.6 MiB"
    assert dbt_side() == default


def test_a_model_spilling_to_disk_does_not_fail_the_models_running_beside_it(tmp_path):
    """With 2 dbt threads, models start while another one spills to the temp directory. The
    profile must not SET temp_directory on each new cursor (DuckDB refuses it while the directory
    is in use: it failed a build at 10M customers); it sets it once, when the database opens."""
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: spill\nversion: '1.0.0'\nconfig-version: 2\nprofile: propensity\n"
        "models:\n  spill:\n    +materialized: table\n"
    )
    # A sort of ~2 GB of rows under a 200 MB memory limit spills for seconds ...
    (project / "models" / "big_sort.sql").write_text(
        "select i, md5(cast(i as varchar)) || md5(cast(i * 7 as varchar)) as s\n"
        "from range(12000000) as t (i)\norder by s\n"
    )
    # ... while a chain of small models opens one cursor after another on the other thread.
    previous = None
    for k in range(30):
        source = (
            f"select * from {{{{ ref('small_{previous}') }}}}"
            if previous is not None
            else ("select 1 as x")
        )
        (project / "models" / f"small_{k}.sql").write_text(source + "\n")
        previous = k
    spill = tmp_path / "spill"
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "run",
            "--threads",
            "2",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(REPO_ROOT),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            **os.environ,
            "PROPENSITY_WAREHOUSE": str(tmp_path / "wh.duckdb"),
            "PROPENSITY_DUCKDB_MEMORY_LIMIT": "200MB",
            "PROPENSITY_DUCKDB_TEMP_DIRECTORY": str(spill),
        },
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "Cannot switch temporary directory" not in out.stdout
