"""The dbt project as a user runs it: `dbt parse --show-all-deprecations` prints no warning (generic
tests use the `arguments:` form), and the tests of the small helper macros pass."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from models_py._dbt import run_dbt
from models_py._settings import Settings


def test_dbt_parse_prints_no_deprecation(tmp_path):
    settings = Settings(warehouse=tmp_path / "wh.duckdb")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from dbt.cli.main import cli; sys.exit(cli())",
            "--log-format",
            "json",
            "parse",
            "--no-partial-parse",
            "--show-all-deprecations",
            "--project-dir",
            str(settings.dbt_project_dir),
            "--profiles-dir",
            str(settings.profiles_dir),
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        env={
            **os.environ,
            "PROPENSITY_WAREHOUSE": str(settings.warehouse),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert any(e["info"]["name"] == "ParsePerfInfoPath" for e in events)  # dbt parsed
    warnings = [
        f"{e['info']['name']}: {e['info']['msg']}"
        for e in events
        if e["info"]["level"] in ("warn", "error") or "Deprecation" in e["info"]["name"]
    ]
    assert warnings == []


def test_helper_macro_tests_pass(tmp_path):
    """tests/macros/*.sql pin the helpers (as_of, days_since_capped, distinct_purchase_days,
    rfm_quintile, product_group_match) on fixed inputs; each returns the cases that differ."""
    settings = Settings(warehouse=tmp_path / "wh.duckdb")
    outcome = run_dbt(settings, ["test", "--select", "path:tests/macros"])
    tests = {name: s for name, s in outcome.statuses.items() if name.startswith("assert_")}
    assert tests == {
        "assert_feature_helpers": "pass",
        "assert_product_group_match": "pass",
    }


def test_python_group_matcher_evaluates_the_dbt_macro_expression():
    """One product-group matcher: Python (ingest._groups) runs the expression of the dbt macro
    (its DuckDB implementation, `default__`; Spark's is pinned by the Spark parity tests)."""
    from models_py.ingest._groups import MATCH_EXPRESSION

    macro = (Settings().dbt_project_dir / "macros" / "product_group_match.sql").read_text()
    body = re.search(
        r"default__product_group_match\(value, pattern\) -%}\s*(.*?)\s*{%- endmacro", macro, re.S
    )
    assert body is not None
    rendered = body.group(1).replace("{{ value }}", "value").replace("{{ pattern }}", "pattern")
    assert rendered == MATCH_EXPRESSION
