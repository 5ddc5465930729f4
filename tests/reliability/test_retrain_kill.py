"""A retrain (`propensity retrain`, a real process) killed after one group's model is trained,
before the run registers anything, leaves the registry and ``ml.retrain_decisions``
byte-identical, and the next retrain on the same file works (docs/operations.md, "Retraining")."""

from __future__ import annotations

import json
import signal

import pytest

from models_py.registry import ML_TABLES as REGISTRY_TABLES
from models_py.registry import SCHEMA
from tests.models_py.operations.daily_fixtures import (
    BUILD_VARS,
    LEAN_SPEC,
    SCORED_GROUPS,
    copy_template,
    query,
)
from tests.reliability._warehouses import cli_process, kill_group, table_fingerprint, wait_for_line

pytestmark = pytest.mark.slow

#: Every registry table (the registry's own list, so a table added later is covered).
ML_TABLES = tuple(f"{SCHEMA}.{t}" for t in REGISTRY_TABLES)


def test_retrain_killed_after_one_group_is_trained_lands_nothing(tmp_path_factory, tmp_path):
    wh = copy_template(tmp_path_factory, tmp_path)
    spec = tmp_path / "lean.yml"
    spec.write_text(LEAN_SPEC)
    before = table_fingerprint(wh, *ML_TABLES)
    decisions = query(wh, "select count(*) from ml.retrain_decisions")[0][0]
    common = ["--spec", str(spec), "--vars", json.dumps(BUILD_VARS)]
    out_path = tmp_path / "retrain.out"
    with out_path.open("w") as out:
        proc = cli_process(
            "retrain",
            *common,
            "--jobs",  # one group at a time: the first is trained before the next starts
            "1",
            warehouse=wh,
            env={"PYTHONUNBUFFERED": "1"},
            stdout_override=out,
        )
        wait_for_line(
            out_path,
            0,
            "registered when every target of the run is trained",
            timeout=300,
            proc=proc,
        )
        kill_group(proc, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    text = out_path.read_text()
    assert "test AUC" in text and "registered any-" not in text  # one trained, none landed
    assert table_fingerprint(wh, *ML_TABLES) == before

    proc = cli_process("retrain", *common, warehouse=wh)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"{out}\n{err}"
    after = query(wh, "select count(*) from ml.retrain_decisions")[0][0]
    assert after == decisions + len(SCORED_GROUPS)
