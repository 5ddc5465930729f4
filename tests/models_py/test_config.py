"""Product-group configuration, settings and warehouse opening: bad input gets a named error."""

from __future__ import annotations

import pytest

from models_py._errors import ConfigError, WarehouseError
from models_py._groups import parse_group_rules, read_group_rules
from models_py._settings import Settings
from models_py._warehouse import connect


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
