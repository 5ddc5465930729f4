"""Product-group configuration, settings and warehouse opening: bad input gets a named error."""

from __future__ import annotations

import pytest

from models_py._errors import ConfigError, WarehouseError
from models_py._settings import Settings
from models_py._warehouse import connect
from models_py.ingest._groups import parse_group_rules, read_group_rules


def test_rules_parse_overlapping_groups():
    rules = parse_group_rules(
        {
            "product_groups": {
                "alcohol": {"category": ["^(wine|beer)$"]},
                "wine": {"category": "^wine$", "product_name": ["rioja", "merlot"]},
            }
        }
    )
    assert [(r.product_group, r.match_on, r.pattern) for r in rules] == [
        ("alcohol", "category", "^(wine|beer)$"),
        ("wine", "category", "^wine$"),
        ("wine", "product_name", "rioja"),
        ("wine", "product_name", "merlot"),
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "top-level mapping `product_groups:`"),
        ({"product_groups": {"Wine": {"category": ["x"]}}}, "'Wine' is not allowed"),
        ({"product_groups": {"x'; drop table raw.orders; --": {"category": ["x"]}}}, "not allowed"),
        ({"product_groups": {"any": {"category": ["x"]}}}, "`any` is built in"),
        ({"product_groups": {"wine": {"colour": ["red"]}}}, "unknown field 'colour'"),
        ({"product_groups": {"wine": {"category": ["(unclosed"]}}}, "not a valid regular"),
        ({"product_groups": {"wine": {}}}, "at least one of"),
        ({"product_groups": {"wine": {"category": [""]}}}, "empty pattern"),
    ],
)
def test_bad_group_config_is_named(config, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("$", r"\$")):
        parse_group_rules(config)


def test_group_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_group_rules(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("product_groups: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_group_rules(bad)
    with pytest.raises(ConfigError, match=r"product group config .* cannot be read"):
        read_group_rules(tmp_path)


def test_settings_from_env(tmp_path):
    s = Settings.from_env({"PROPENSITY_WAREHOUSE": str(tmp_path / "w.duckdb")})
    assert s.warehouse == (tmp_path / "w.duckdb").resolve()
    with pytest.raises(ConfigError, match="PROPENSITY_THREADS must be an integer"):
        Settings.from_env({"PROPENSITY_THREADS": "two"})
    with pytest.raises(ConfigError, match="points at a directory"):
        Settings.from_env({"PROPENSITY_WAREHOUSE": str(tmp_path)})


def test_connect_errors(tmp_path):
    with pytest.raises(WarehouseError, match="does not exist"):
        connect(tmp_path / "absent.duckdb", read_only=True)
    not_db = tmp_path / "notes.duckdb"
    not_db.write_text("this is not a database")
    with pytest.raises(WarehouseError, match=r"not a readable DuckDB file|cannot open"):
        connect(not_db)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WarehouseError, match="cannot create the directory"):
        connect(blocker / "sub" / "w.duckdb")


def test_cli_reports_config_error_without_traceback(tmp_path, capsys):
    from models_py.cli import main

    bad = tmp_path / "groups.yml"
    bad.write_text("product_groups:\n  Bad Name:\n    category: [x]\n")
    code = main(["--warehouse", str(tmp_path / "w.duckdb"), "groups", "set", str(bad)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: product group name 'Bad Name' is not allowed")
    assert "Traceback" not in err


def test_lock_error_names_the_holding_process():
    from models_py._warehouse import lock_error

    duckdb_says = (
        'IO Error: Could not set lock on file "/w/wh.duckdb": Conflicting lock is held in '
        "/usr/bin/python3.11 (PID 4242). See also https://duckdb.org/docs/current/connect/concurrency"
    )
    assert str(lock_error("/w/wh.duckdb", duckdb_says)) == (
        "warehouse /w/wh.duckdb is locked by process 4242 (/usr/bin/python3.11): DuckDB allows "
        "one process to open a file for writing. Wait for that run (dbt, propensity, a notebook) "
        "to finish, or stop it, then retry."
    )
    unnamed = duckdb_says.replace("/usr/bin/python3.11", ".")
    assert "locked by process 4242: DuckDB" in str(lock_error("/w/wh.duckdb", unnamed))
    assert "locked by another process: DuckDB" in str(lock_error("/w/wh.duckdb", "lock held"))


def test_check_raw_contract(tmp_path):
    from models_py.ingest._raw import check_raw_contract
    from tests.conftest import write_tiny_warehouse

    settings = write_tiny_warehouse(tmp_path / "wh.duckdb")
    con = connect(settings.warehouse)
    try:
        assert check_raw_contract(con) == []
        # castable differences pass: INTEGER ids, numbers in text, timestamps with a time zone
        con.execute("alter table raw.orders alter order_id type integer")
        con.execute("alter table raw.order_lines alter quantity type varchar")
        con.execute("alter table raw.orders alter ordered_at type timestamptz")
        assert check_raw_contract(con) == []
        con.execute("update raw.order_lines set quantity = 'two' where order_id = 11")
        con.execute("alter table raw.products drop column category")
        con.execute("drop table raw.treatments")
        assert check_raw_contract(con) == [
            "raw table raw.order_lines column quantity has type VARCHAR and 1 values that do not "
            "convert to INTEGER (e.g. 'two'): fix the values or the column type in your load",
            "raw table raw.products has no column category VARCHAR (it has product_id, "
            "product_name): rename the column in your load, or point the source at a view that "
            "selects it under the contract name",
            "raw table raw.treatments does not exist: load it with the columns customer_id, "
            "experiment_id, arm, assigned_at (an optional table may be empty but must exist)",
        ]
    finally:
        con.close()


def test_non_finite_prices_and_quantities_are_named(tmp_path):
    """A NaN unit_price (or quantity stored as a float) is a named raw-contract problem before dbt
    starts (not DuckDB's "Could not cast value nan to DECIMAL" from deep in the build)."""
    import subprocess
    import sys

    from models_py.ingest._raw import check_raw_contract
    from tests.conftest import write_tiny_warehouse

    settings = write_tiny_warehouse(tmp_path / "wh.duckdb")
    con = connect(settings.warehouse)
    try:
        con.execute("update raw.order_lines set unit_price = 'nan'::double where order_id = 10")
        con.execute("alter table raw.order_lines alter quantity type double")
        con.execute("update raw.order_lines set quantity = 'inf'::double where order_id = 11")
        problems = check_raw_contract(con)
    finally:
        con.close()
    assert problems == [
        "raw table raw.order_lines column quantity has type DOUBLE and 1 values that do not "
        "convert to INTEGER (e.g. 'inf'): fix the values or the column type in your load",
        "raw table raw.order_lines column unit_price has 1 values that are not finite numbers "
        "(NaN or infinity; e.g. order_id 10): fix or drop these rows in your load",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "models_py.cli", "--warehouse", str(settings.warehouse), "build"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "column unit_price has 1 values that are not finite numbers" in proc.stderr
    # dbt run directly (no preflight): the staging model stops with the same rule
    from models_py._dbt import run_dbt
    from models_py._errors import DbtRunError

    con = connect(settings.warehouse)
    try:
        con.execute("update raw.order_lines set quantity = 1")
    finally:
        con.close()
    with pytest.raises(DbtRunError) as error:
        run_dbt(settings, ["run", "--select", "stg_raw__order_lines"])
    assert (
        "raw table raw.order_lines column unit_price has 1 values that are not finite numbers "
        "(NaN or infinity; e.g. order_id 10). Fix or drop these rows in your load."
    ) in " ".join(str(error.value).split())
