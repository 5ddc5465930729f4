"""A daily run (`propensity run daily`, a real process) killed while it writes the scores of the
new cutoff leaves the score history and the registry byte-identical, and the next run scores the
cutoff (docs/operations.md, "Daily run")."""

from __future__ import annotations

import datetime as dt
import signal

import pytest

from models_py._dbt import dbt_target_path
from models_py._settings import Settings
from models_py.registry import ML_TABLES as REGISTRY_TABLES
from models_py.registry import SCHEMA
from tests.models_py.operations.daily_fixtures import (
    FIRST_CUTOFF,
    SCORED_GROUPS,
    append_days,
    copy_template,
    query,
)
from tests.reliability._warehouses import (
    cli_process,
    kill_group,
    log_size,
    table_fingerprint,
    wait_for_line,
)

pytestmark = pytest.mark.slow

SCORES = "marts.fct_propensity_scores"
#: Every registry table (the registry's own list, so a table added later is covered).
ML_TABLES = tuple(f"{SCHEMA}.{t}" for t in REGISTRY_TABLES)
MODEL_START = "START sql propensity_by_cutoff model marts.fct_propensity_scores"
MODEL_DONE = "OK created sql propensity_by_cutoff model marts.fct_propensity_scores"


def test_daily_run_killed_while_scoring_leaves_scores_and_registry_as_they_were(
    tmp_path_factory, tmp_path
):
    wh = copy_template(tmp_path_factory, tmp_path)
    as_of = append_days(wh) + dt.timedelta(days=1)
    before = table_fingerprint(wh, SCORES, *ML_TABLES)
    log = dbt_target_path(Settings(warehouse=wh)).parent / "logs" / "dbt.log"
    offset = log_size(log)

    proc = cli_process("run", "daily", warehouse=wh)
    wait_for_line(log, offset, MODEL_START, timeout=300, proc=proc)
    kill_group(proc, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    with log.open("rb") as fh:
        fh.seek(offset)
        assert MODEL_DONE.encode() not in fh.read()  # provably killed while scoring
    assert table_fingerprint(wh, SCORES, *ML_TABLES) == before

    proc = cli_process("run", "daily", warehouse=wh)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err
    last = as_of - dt.timedelta(days=1)
    assert f"daily run: scoring cutoff {as_of} (orders up to {last}; " in out
    rows = 2000 * len(SCORED_GROUPS)
    assert dict(query(wh, f"select as_of_date, count(*) from {SCORES} group by 1")) == {
        FIRST_CUTOFF: rows,
        as_of: rows,
    }
    assert table_fingerprint(wh, *ML_TABLES) == {t: before[t] for t in ML_TABLES}
