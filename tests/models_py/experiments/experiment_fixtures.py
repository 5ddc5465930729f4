"""One generated warehouse with experiments, built once per session and copied by the tests that
write to it: the generator's discount experiment (raw.treatments, described in experiments.yml),
a complete A/A split of every customer and a running experiment, with the experiment marts
built by dbt."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from models_py._dbt import run_dbt
from models_py._settings import Settings
from models_py.cli import main
from models_py.ingest.synth import generate_warehouse

END = dt.date(2026, 10, 1)
CUSTOMERS = 3_000
SEED = 7
#: The experiment marts and what they need (features at the assignment days, outcomes).
MARTS = [
    "+fct_experiment_results",
    "+fct_experiment_balance",
    "+fct_experiment_cumulative",
    "dim_experiment_designs",
    "+fct_experiment_examples",
]
#: The experiment marts alone (after a change of the assignments).
RESULTS = [
    "int_experiment_assignments",
    "dim_experiments",
    "fct_experiment_outcomes",
    "fct_experiment_results",
    "fct_experiment_cumulative",
]
EXPERIMENTS_YML = """
experiments:
  discount_2026q3:
    assignment: external
    arms: {"0": {share: 0.3334}, "20": {share: 0.3333}, "25": {share: 0.3333}}
    control: "0"
  aa_sept:
    description: A/A split of every customer.
    audience: {all_customers: true}
    arms: {a: {share: 0.5}, b: {share: 0.5}}
    control: a
    salt: aa-2026
    assigned_at: 2026-09-01
    window_days: 20
  running_test:
    audience: {all_customers: true}
    arms: {control: {share: 0.6}, mail: {share: 0.4}}
    control: control
    salt: running
    assigned_at: 2026-09-21
    window_days: 15
    primary_metric: revenue
"""

_TEMPLATE: dict[str, Path] = {}


def build(warehouse: Path, select: list[str]) -> None:
    run_dbt(Settings(warehouse=warehouse), ["build", "--select", *select])


def cli(warehouse: Path, *args: str) -> int:
    return main(["--warehouse", str(warehouse), *args])


def experiment_template(tmp_path_factory) -> Path:
    """The built warehouse (do not write to it: `copy_template`)."""
    if "wh" not in _TEMPLATE:
        work = tmp_path_factory.mktemp("experiments_template")
        path = work / "wh.duckdb"
        generate_warehouse(path, customers=CUSTOMERS, seed=SEED, days=400, end_date=END)
        config = work / "experiments.yml"
        config.write_text(EXPERIMENTS_YML)
        assert cli(path, "experiment", "assign", str(config)) == 0
        build(path, MARTS)
        _TEMPLATE["wh"] = path
    return _TEMPLATE["wh"]


def copy_template(tmp_path_factory, target: Path) -> Path:
    shutil.copy(experiment_template(tmp_path_factory), target)
    return target
