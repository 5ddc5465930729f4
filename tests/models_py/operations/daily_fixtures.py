"""A small generated warehouse as a daily run finds it: built, trained with a lean spec (one
gradient-boosting candidate, groups `any`, `sweets` and `wine`; the other active groups have no
champion), scored once by `propensity run daily` at the day after the last order. Built once per
test session; tests copy it before writing."""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from pathlib import Path

import duckdb

from models_py._dbt import run_dbt
from models_py._settings import Settings
from models_py.cli import main
from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from bench_daily import append_day

CUSTOMERS = 2_000
DAYS = 400
SEED = 3
END = dt.date(2026, 10, 1)
#: The first scoring cutoff of the template (the day after its last order).
FIRST_CUTOFF = END
#: The groups with a champion, and the active groups without one.
SCORED_GROUPS = ("any", "sweets", "wine")
UNSCORED_GROUPS = ("alcohol", "books", "garden", "gifts", "kitchen", "party", "spirits", "toys")
BUILD_VARS = {"max_training_cutoffs": 4}

LEAN_SPEC = """
specs:
  - name: lean
    relation: marts.fct_training_examples
    id_columns: [customer_id]
    label: label
    cutoff: as_of_date
    split: split
    group: {column: product_group, groups: [any, sweets, wine]}
    features: {numeric_except: []}
    search: {folds: 2, max_rows: 3000}
    candidates:
      hist_gradient_boosting: {max_iter: [30], learning_rate: [0.1], max_leaf_nodes: [7]}
    calibration: sigmoid
    threshold: max_f1
    promotion: {metric: roc_auc, margin: 0.005}
    max_training_rows: 4000
    max_evaluation_rows: 4000
    importance_rows: 0
"""

_TEMPLATE: dict[str, Path] = {}


def daily_template(tmp_path_factory) -> Path:
    """The template warehouse (built on first use); never write to it, copy it."""
    if "daily" not in _TEMPLATE:
        from models_py import train
        from models_py.ingest.synth import generate_warehouse

        work = tmp_path_factory.mktemp("daily_template")
        path = work / "template.duckdb"
        generate_warehouse(path, customers=CUSTOMERS, seed=SEED, days=DAYS, end_date=END)
        settings = Settings(warehouse=path)
        run_dbt(settings, ["run"], dbt_vars=BUILD_VARS)
        spec = work / "lean.yml"
        spec.write_text(LEAN_SPEC)
        report = train(settings, spec_path=spec)
        assert not report.failed, [r.message for r in report.results]
        assert main(["--warehouse", str(path), "run", "daily"]) == 0
        _TEMPLATE["daily"] = path
    return _TEMPLATE["daily"]


def copy_template(tmp_path_factory, directory: Path, name: str = "wh.duckdb") -> Path:
    """A copy of the template warehouse in `directory`."""
    target = directory / name
    shutil.copy(daily_template(tmp_path_factory), target)
    return target


def query(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def append_days(path: Path, days: int = 1) -> dt.date:
    """Append `days` days of orders (copies of the orders of a week before); returns the last."""
    con = duckdb.connect(str(path))
    try:
        for _ in range(days):
            day = append_day(con)
    finally:
        con.close()
    return day


__all__ = [
    "BUILD_VARS",
    "FIRST_CUTOFF",
    "SCORED_GROUPS",
    "UNSCORED_GROUPS",
    "append_days",
    "copy_template",
    "daily_template",
    "query",
]
