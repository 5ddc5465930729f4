"""Catalogue (docs/reliability.md): cutoff and horizon configuration, training input and model
specs. Each test drives the CLI (or dbt through run_dbt) and asserts the message and that the
registry is untouched."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from models_py._dbt import run_dbt
from models_py._errors import DbtRunError
from models_py.cli import main
from tests.conftest import write_tiny_warehouse
from tests.models_py.training.training_fixtures import FAST_SPEC, copy_warehouse, template_warehouse
from tests.reliability._warehouses import table_fingerprint

REGISTRY = ("ml.model_registry", "ml.model_aliases", "ml.alias_history", "ml.model_metrics")


# ------------------------------------------------------------------------------ cutoffs (dbt)


@pytest.fixture(scope="module")
def early_cutoff(tmp_path_factory):
    """The tiny warehouse (orders on 2024-01-01) built with a scoring cutoff before all data."""
    settings = write_tiny_warehouse(tmp_path_factory.mktemp("early") / "wh.duckdb")
    outcome = run_dbt(
        settings,
        ["build", "--select", "+fct_scoring_features"],
        dbt_vars={"scoring_cutoff": "2020-01-01"},
    )
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        n = con.execute("select count(*) from marts.fct_scoring_features").fetchone()[0]
    finally:
        con.close()
    return outcome, n


@pytest.mark.slow
def test_cutoff_before_all_data(early_cutoff):
    """Builds (a warning), with no customer at the cutoff: nothing to score, nothing invented."""
    outcome, n_features = early_cutoff
    assert outcome.success and outcome.count("fail") == 0
    assert any(
        w.startswith("no training cutoff: the scoring cutoff is 2020-01-01, and a training cutoff")
        for w in outcome.warnings
    )
    assert n_features == 0


@pytest.mark.slow
def test_cutoff_before_all_data_is_named(early_cutoff):
    outcome, _ = early_cutoff
    assert any(
        "scoring cutoff 2020-01-01 is before the first order (2024-01-01)" in w
        for w in outcome.warnings
    )


@pytest.mark.slow
def test_horizon_negative(tmp_path):
    """(horizon 0: tests/dbt/test_features.py::test_invalid_cutoff_configuration_fails_with...)"""
    settings = write_tiny_warehouse(tmp_path / "wh.duckdb")
    with pytest.raises(DbtRunError) as err:
        run_dbt(settings, ["build", "--select", "+dim_cutoffs"], dbt_vars={"horizon_days": -3})
    assert (
        "dbt var horizon_days must be >= 1, got -3. The label window [T, T + horizon_days) needs "
        "at least one day. Set it in dbt_project.yml or with --vars '{horizon_days: ...}'."
    ) in str(err.value)
    assert table_fingerprint(settings.warehouse, "marts.dim_cutoffs") == {
        "marts.dim_cutoffs": "absent"
    }


# --------------------------------------------------------------------------- training (CLI)


@pytest.fixture()
def fake(tmp_path_factory, tmp_path) -> tuple[Path, Path]:
    """A copy of the fake training warehouse (examples with a known truth, empty registry)."""
    settings = copy_warehouse(template_warehouse(tmp_path_factory), tmp_path / "wh.duckdb")
    spec = tmp_path / "spec.yml"
    spec.write_text(FAST_SPEC)
    return settings.warehouse, spec


def _train(capsys, warehouse: Path, spec: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["--warehouse", str(warehouse), "train", "--spec", str(spec), *extra])
    out = capsys.readouterr()
    return code, " ".join(out.out.split()), out.err


def _execute(warehouse: Path, sql: str) -> None:
    con = duckdb.connect(str(warehouse))
    try:
        con.execute(sql)
    finally:
        con.close()


@pytest.mark.slow
def test_label_with_a_single_class_at_a_cutoff(fake, capsys):
    warehouse, spec = fake
    _execute(
        warehouse,
        "update marts.fct_training_examples set label = 0 "
        "where product_group = 'wine' and split = 'test'",
    )
    before = table_fingerprint(warehouse, *REGISTRY)
    code, out, _ = _train(capsys, warehouse, spec, "--group", "wine")
    assert code == 0  # a skipped group is reported, not a failure of the run
    assert "wine skipped" in out
    assert "test period has only negative labels (1500 rows): cannot train or evaluate" in out
    assert table_fingerprint(warehouse, *REGISTRY) == before


@pytest.mark.slow
def test_label_with_a_single_class_in_training(fake, capsys):
    warehouse, spec = fake
    _execute(
        warehouse, "update marts.fct_training_examples set label = 0 where product_group = 'wine'"
    )
    before = table_fingerprint(warehouse, *REGISTRY)
    code, out, _ = _train(capsys, warehouse, spec, "--group", "wine")
    assert code == 0
    assert "wine skipped" in out
    assert "train period has only negative labels (6000 rows): cannot train or evaluate" in out
    assert table_fingerprint(warehouse, *REGISTRY) == before


def test_skipped_group_message_has_no_markup_tags(fake, capsys):
    warehouse, spec = fake
    _execute(
        warehouse, "update marts.fct_training_examples set label = 0 where product_group = 'wine'"
    )
    _, out, _ = _train(capsys, warehouse, spec, "--group", "wine")
    assert "[red]" not in out and "wine skipped: train period has only negative labels" in out


def _spec_with(spec: Path, old: str, new: str) -> Path:
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new))
    return spec


def test_spec_naming_a_missing_feature(fake, capsys):
    warehouse, spec = fake
    _spec_with(spec, "features: {numeric_except: []}", "features: [order_count, spend_999d]")
    spec.write_text(spec.read_text().replace("categorical: [rfm_segment_code]", "categorical: []"))
    before = table_fingerprint(warehouse, *REGISTRY)
    code, _, err = _train(capsys, warehouse, spec)
    assert code == 1 and err.count("\n") == 1
    assert "feature 'spend_999d' is not a column of marts.fct_training_examples" in err
    assert table_fingerprint(warehouse, *REGISTRY) == before


def test_spec_column_name_with_quotes_or_sql(fake, capsys):
    warehouse, spec = fake
    evil = 'order_count\\"; drop table raw.oracle_propensity; --'
    _spec_with(spec, "features: {numeric_except: []}", f'features: [spend_total, "{evil}"]')
    spec.write_text(spec.read_text().replace("categorical: [rfm_segment_code]", "categorical: []"))
    code, _, err = _train(capsys, warehouse, spec)
    assert code == 1
    assert (
        """feature 'order_count"; drop table raw.oracle_propensity; --' is not a column of """
        "marts.fct_training_examples"
    ) in err
    assert table_fingerprint(warehouse, "raw.oracle_propensity")["raw.oracle_propensity"] != (
        "absent"
    )


def test_spec_relation_with_quotes_or_sql(fake, capsys):
    warehouse, spec = fake
    _spec_with(
        spec,
        "relation: marts.fct_training_examples",
        """relation: "marts.x; drop table raw.oracle_propensity; --\"""",
    )
    code, _, err = _train(capsys, warehouse, spec)
    assert code == 1
    assert (
        "relation must be 'schema.table', got 'marts.x; drop table raw.oracle_propensity; --'"
    ) in err
    assert table_fingerprint(warehouse, "raw.oracle_propensity")["raw.oracle_propensity"] != (
        "absent"
    )
