"""`scoring` is engine-agnostic: it imports nothing from `models_py`, and the CLI still reports
its named errors as messages."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import scoring
from models_py._errors import ConfigError, is_known_error

SCORING_DIR = Path(scoring.__file__).resolve().parent


@pytest.mark.parametrize("path", sorted(SCORING_DIR.glob("*.py")), ids=lambda p: p.name)
def test_no_scoring_module_imports_models_py(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert [m for m in imported if m.split(".")[0] == "models_py"] == []


def test_importing_scoring_and_its_plugin_loads_no_models_py_module() -> None:
    code = (
        "import sys, scoring, scoring.dbt_plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'models_py'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("error", "known"),
    [
        (scoring.ModelIntegrityError("bad bytes"), True),
        (scoring.FeatureError("null feature"), True),
        (scoring.PluginConfigError("threads"), True),
        (ConfigError("bad spec"), True),
        (ValueError("a bug"), False),
    ],
)
def test_the_cli_reports_named_errors_of_both_packages(error: Exception, known: bool) -> None:
    assert is_known_error(error) is known
