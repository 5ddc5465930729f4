"""The package as a user installs it: built like a release (sdist, then the wheel from the sdist),
installed with its dependencies into a fresh virtual environment, and `propensity demo` run from
an empty directory, far from the repository. dbt runs the project shipped inside the wheel and
writes nothing into the installed package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

BUNDLE = "models_py/_bundle/"
CUSTOMERS = 2000


def _run(args: list, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, **kwargs
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def _user_env() -> dict[str, str]:
    """This environment without anything that points back at the repository or its venv."""
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {
        k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("PROPENSITY_")
    }


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_a_checkout_runs_the_repository_dbt_project():
    from models_py import Settings

    settings = Settings()
    assert settings.dbt_project_dir == REPO_ROOT / "dbt_project"
    assert settings.profiles_dir == REPO_ROOT
    assert (settings.profiles_dir / "profiles.yml").is_file()


@pytest.mark.slow
def test_wheel_installs_and_runs_the_demo_from_an_empty_directory(tmp_path):
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--outdir", dist, REPO_ROOT])
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        bundled = {n.removeprefix(BUNDLE) for n in zf.namelist() if n.startswith(BUNDLE)}
    assert {"profiles.yml", "dbt_project/dbt_project.yml"} <= bundled
    source = REPO_ROOT / "dbt_project"
    for folder in ("models", "macros", "tests"):
        assert {f"dbt_project/{folder}/{f}" for f in _files(source / folder)} <= bundled, folder
    runtime = tuple(f"dbt_project/{d}/" for d in ("target", "logs", "dbt_packages"))
    assert not [n for n in bundled if n.startswith(runtime)]

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    # --no-compile: byte-compiling every dependency at install takes longer than the imports do.
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
    _run([*pip, wheel])
    where = _run(
        [
            python,
            "-c",
            "import json, models_py; s = models_py.Settings(); print(json.dumps("
            "[models_py.__file__, str(s.dbt_project_dir), str(s.profiles_dir)]))",
        ],
        cwd=tmp_path,
        env=_user_env(),
    )
    package_file, project_dir, profiles_dir = map(Path, json.loads(where.stdout))
    installed = Path(package_file).parent
    assert venv in installed.parents  # the wheel's code, not the repository's
    assert project_dir == installed / "_bundle" / "dbt_project"
    assert profiles_dir == installed / "_bundle"
    shipped = _files(installed / "_bundle")

    user_dir = tmp_path / "empty"
    user_dir.mkdir()
    demo = _run(
        [venv / "bin" / "propensity", "demo", "--customers", CUSTOMERS],
        cwd=user_dir,
        env=_user_env(),
    )
    assert "report/index.html" in demo.stdout.replace(os.sep, "/")
    # Everything the demo wrote is in the user's directory: the warehouse (dbt's target and logs
    # beside it) and the report; the installed package is unchanged.
    assert sorted(p.name for p in user_dir.iterdir()) == ["report", "warehouse"]
    warehouse = user_dir / "warehouse" / "propensity.duckdb"
    assert (
        user_dir / "warehouse" / ".dbt" / "propensity" / "target" / "run_results.json"
    ).is_file()
    assert _files(installed / "_bundle") == shipped

    counts = _run(
        [
            python,
            "-c",
            "import json, sys, duckdb; con = duckdb.connect(sys.argv[1], read_only=True); "
            'print(json.dumps(con.execute("select count(*), count(distinct product_group), '
            "count(distinct customer_id), min(score), max(score), "
            "(select count(*) from ml.model_aliases where alias = 'champion') "
            "from marts.fct_propensity_scores "
            'where as_of_date = (select max(as_of_date) from marts.fct_propensity_scores)").'
            "fetchone()))",
            warehouse,
        ],
        cwd=tmp_path,
        env=_user_env(),
    )
    rows, groups, customers, low, high, champions = json.loads(counts.stdout)
    assert customers == CUSTOMERS
    assert groups >= 2 and champions == groups
    assert rows == customers * groups
    assert 0.0 <= low < high <= 1.0
    page = (user_dir / "report" / "index.html").read_text()
    assert page.count("<img ") >= groups
