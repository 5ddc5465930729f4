"""Atomicity, idempotence and concurrency with real processes (docs/reliability.md).

- A scoring run (`propensity build --select fct_propensity_scores`, dbt + onnxruntime) and a
  training run (`propensity train`) are killed by a signal while provably mid-work: the registry,
  the alias tables and the previous scores are byte-identical afterwards, and the next run works.
- Re-running scoring with the same inputs gives the same scores (content hash without the
  `scored_at` run timestamp).
- A second run against a warehouse another run holds fails within seconds, naming the file, the
  holding process and the remedy; the first run completes and nothing is corrupted.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from pathlib import Path

import duckdb
import pytest

from models_py.registry import ML_TABLES as REGISTRY_TABLES
from models_py.registry import SCHEMA
from tests.models_py.training.training_fixtures import FAST_SPEC, copy_warehouse, template_warehouse
from tests.reliability._warehouses import (
    cli_process,
    kill_group,
    log_size,
    table_fingerprint,
    wait_for_line,
)
from tests.scoring.scoring_fixtures import FEATURES, make_model, write_features, write_registry

pytestmark = pytest.mark.slow

#: Large enough that scoring takes seconds (measured 3.8 s for 600k rows on 2 busy cores).
CUSTOMERS = 300_000
DAY = dt.date(2025, 1, 1)
#: Every registry table (the registry's own list, so a table added later is covered).
ML_TABLES = tuple(f"{SCHEMA}.{t}" for t in REGISTRY_TABLES)
SCORES = "marts.fct_propensity_scores"
SCORING = ("build", "--select", "fct_propensity_scores")
MODEL_START = "START sql propensity_by_cutoff model marts.fct_propensity_scores"
MODEL_DONE = "OK created sql propensity_by_cutoff model marts.fct_propensity_scores"


def _dbt_log(warehouse: Path) -> Path:
    return warehouse.parent / ".dbt" / warehouse.stem / "logs" / "dbt.log"


def _finish(proc, timeout: float = 600) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{out}\n{err}"
    return out, err


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> Path:
    """A registry with two champions, features for 300k customers x 2 groups, scored once."""
    path = tmp_path_factory.mktemp("scoring") / "wh.duckdb"
    con = duckdb.connect(str(path))
    try:
        write_registry(
            con,
            [
                make_model("any_hgb_v1", product_group="any", kind="hgb", seed=1),
                make_model(
                    "wine_lr_v1",
                    product_group="wine",
                    kind="lr",
                    seed=2,
                    feature_names=FEATURES[::-1],
                ),
            ],
        )
        write_features(con, as_of_date=DAY, customers=CUSTOMERS)
    finally:
        con.close()
    _finish(cli_process(*SCORING, warehouse=path))
    return path


def test_scoring_run_killed_midway_leaves_registry_and_scores_intact(scored):
    tables = (*ML_TABLES, SCORES)
    before = table_fingerprint(scored, *tables)
    assert before[SCORES].endswith(f":{2 * CUSTOMERS}")
    content = table_fingerprint(scored, SCORES, exclude=("scored_at",))
    log = _dbt_log(scored)
    offset = log_size(log)
    proc = cli_process(*SCORING, warehouse=scored)
    wait_for_line(log, offset, MODEL_START, timeout=300, proc=proc)
    # kill as soon as the model starts: since the scoring speed-ups it finishes in ~1-2 s, and a
    # longer wait raced its OK line (the assertion below proves the kill landed mid-work)
    time.sleep(0.2)
    kill_group(proc, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    with log.open("rb") as fh:
        fh.seek(offset)
        assert MODEL_DONE.encode() not in fh.read()  # provably killed mid-work
    assert table_fingerprint(scored, *tables) == before

    # the next run succeeds; same inputs, same scores (idempotent), newer scored_at
    _finish(cli_process(*SCORING, warehouse=scored))
    after = table_fingerprint(scored, *tables)
    assert {t: after[t] for t in ML_TABLES} == {t: before[t] for t in ML_TABLES}
    assert after[SCORES] != before[SCORES]  # rewritten ...
    assert table_fingerprint(scored, SCORES, exclude=("scored_at",)) == content  # ... identically


def test_second_run_on_a_held_warehouse_fails_fast_naming_the_lock(scored, tmp_path):
    before = table_fingerprint(scored, *ML_TABLES)
    content = table_fingerprint(scored, SCORES, exclude=("scored_at",))
    log = _dbt_log(scored)
    first = cli_process(*SCORING, warehouse=scored)
    wait_for_line(log, log_size(log), MODEL_START, timeout=300, proc=first)

    groups = tmp_path / "groups.yml"
    groups.write_text("product_groups:\n  wine:\n    category: [wine]\n")
    for argv in (SCORING, ("groups", "set", str(groups))):
        started = time.monotonic()
        second = cli_process(*argv, warehouse=scored)
        _, err = second.communicate(timeout=60)
        seconds = time.monotonic() - started
        assert second.returncode == 1
        assert seconds < 15, f"the second run took {seconds:.1f}s to fail"
        assert err.startswith(f"error: warehouse {scored} is locked by process ")
        pid = int(err.split("is locked by process ")[1].split()[0])
        assert os.getpgid(pid) == first.pid  # the holder is the first run's dbt process
        assert err.endswith(
            "DuckDB allows one process to open a file for writing. Wait for that run (dbt, "
            "propensity, a notebook) to finish, or stop it, then retry.\n"
        )
        assert err.count("\n") == 1

    _finish(first)
    assert table_fingerprint(scored, *ML_TABLES) == before
    assert table_fingerprint(scored, SCORES, exclude=("scored_at",)) == content
    assert table_fingerprint(scored, "raw.product_group_rules") == {
        "raw.product_group_rules": "absent"
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """The fake training warehouse with a champion for group `any` (trained through the CLI)."""
    work = tmp_path_factory.mktemp("kill_training")
    settings = copy_warehouse(template_warehouse(tmp_path_factory), work / "wh.duckdb")
    spec = work / "spec.yml"
    spec.write_text(FAST_SPEC)
    _finish(
        cli_process("train", "--spec", str(spec), "--group", "any", warehouse=settings.warehouse)
    )
    return settings.warehouse, spec


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_training_run_killed_midway_leaves_the_registry_intact(trained, tmp_path, sig):
    warehouse, spec = trained
    before = table_fingerprint(warehouse, *ML_TABLES)
    registered = int(before["ml.model_registry"].split(":")[1])
    assert registered >= 1  # a champion exists
    out_path = tmp_path / "train.out"
    with out_path.open("w") as out:
        proc = cli_process(
            "train",
            "--spec",
            str(spec),
            "--group",
            "any",
            warehouse=warehouse,
            env={"PYTHONUNBUFFERED": "1"},
            stdout_override=out,
        )
        # the first candidate is evaluated; the other two, the export and registration are not
        wait_for_line(
            out_path,
            0,
            "purchase_propensity/any logistic_regression: validation AUC",
            timeout=300,
            proc=proc,
        )
        kill_group(proc, sig)
    assert proc.returncode == -sig
    assert "registered" not in out_path.read_text()
    assert table_fingerprint(warehouse, *ML_TABLES) == before

    # the next run succeeds and registers one more model
    _finish(cli_process("train", "--spec", str(spec), "--group", "any", warehouse=warehouse))
    after = table_fingerprint(warehouse, "ml.model_registry")
    assert after["ml.model_registry"].endswith(f":{registered + 1}")


def test_training_run_killed_after_one_group_registers_nothing(trained, tmp_path):
    """Targets register together at the end: a kill after `any` is trained but before `wine`
    is leaves no model of the run behind."""
    warehouse, spec = trained
    before = table_fingerprint(warehouse, *ML_TABLES)
    out_path = tmp_path / "train.out"
    with out_path.open("w") as out:
        proc = cli_process(
            "train",
            "--spec",
            str(spec),
            "--group",
            "any",
            "--group",
            "wine",
            "--jobs",  # one target at a time: `any` is trained before `wine` starts
            "1",
            warehouse=warehouse,
            env={"PYTHONUNBUFFERED": "1"},
            stdout_override=out,
        )
        wait_for_line(
            out_path,
            0,
            "purchase_propensity/wine logistic_regression: validation AUC",
            timeout=300,
            proc=proc,
        )
        assert "registered when every target of the run is trained" in out_path.read_text()
        kill_group(proc, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert table_fingerprint(warehouse, *ML_TABLES) == before


def _sql(warehouse: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(warehouse))
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _failed_scoring(warehouse: Path) -> str:
    proc = cli_process(*SCORING, warehouse=warehouse)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, f"{out}\n{err}"
    return " ".join(err.split())


def test_registry_row_whose_sha256_does_not_match(scored):
    tables = (*ML_TABLES, SCORES)
    (blob,) = _sql(scored, "select onnx_model from ml.model_registry where model_id = 'wine_lr_v1'")
    _sql(
        scored,
        "update ml.model_registry set onnx_model = onnx_model || '\\x00'::blob "
        "where model_id = 'wine_lr_v1'",
    )
    before = table_fingerprint(scored, *tables)
    err = _failed_scoring(scored)
    assert err.startswith("error: dbt build --select fct_propensity_scores failed:")
    assert "ModelIntegrityError" in err and "wine_lr_v1" in err and "sha256" in err
    assert table_fingerprint(scored, *tables) == before
    _sql(
        scored,
        "update ml.model_registry set onnx_model = ? where model_id = 'wine_lr_v1'",
        [blob[0]],
    )


def test_features_whose_columns_differ_from_the_champions(scored):
    tables = (*ML_TABLES, SCORES)
    _sql(scored, "alter table marts.fct_scoring_features drop column days_since_last_order")
    _sql(scored, "alter table marts.fct_scoring_features alter is_vip type varchar")
    before = table_fingerprint(scored, *tables)
    err = _failed_scoring(scored)
    assert "column 'days_since_last_order' is missing" in err
    assert "column 'is_vip' has type" in err
    assert "any_hgb_v1" in err and "wine_lr_v1" in err
    assert table_fingerprint(scored, *tables) == before
