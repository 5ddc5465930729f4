"""The dates of a replay: weekly steps whose last label window ends with the data, a shift inside
the replayed steps, and bad arguments refused through the CLI before anything is generated."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from models_py._errors import ConfigError
from models_py.cli import main
from models_py.operations._replay import plan_replay, summarise
from tests.models_py.operations.replay_fixtures import SHIFT_STEP, write_timeline

END = dt.date(2026, 10, 1)


def test_steps_are_weekly_and_the_last_labels_mature_with_the_data():
    plan = plan_replay(weeks=26, data_end=END, shift_at=dt.date(2026, 6, 1))
    steps = plan.steps
    assert len(steps) == 26
    assert {(b - a).days for a, b in itertools.pairwise(steps)} == {7}
    assert steps[-1] + dt.timedelta(days=30) == END
    assert plan.shift_step == next(k for k, d in enumerate(steps) if d >= dt.date(2026, 6, 1))
    assert plan.step_of(steps[5]) == 5
    assert plan_replay(weeks=4, data_end=END).shift_step is None


@pytest.mark.parametrize(
    ("weeks", "shift_at", "message"),
    [
        (1, None, "at least 2"),
        (26, dt.date(2025, 1, 1), "outside the replayed steps"),
        (26, END, "outside the replayed steps"),
    ],
)
def test_bad_plans_are_named(weeks, shift_at, message):
    with pytest.raises(ConfigError, match=message):
        plan_replay(weeks=weeks, data_end=END, shift_at=shift_at)


def test_the_cli_refuses_a_shift_outside_the_steps_before_generating(tmp_path, capsys):
    code = main(
        ["replay", "--weeks", "4", "--shift-at", "2020-01-01", "--workdir", str(tmp_path / "r")]
    )
    assert code != 0
    assert "outside the replayed steps" in capsys.readouterr().err
    assert not (tmp_path / "r" / "generated.duckdb").exists()


def test_the_summary_counts_retrains_alerts_and_decay_per_policy(tmp_path):
    results = tmp_path / "results.duckdb"
    write_timeline(results)
    summary = {r["policy"]: r for r in summarise(results, label="shift price_rise at 2026-07-01")}
    assert set(summary) == {"never", "if-needed"}
    never, if_needed = summary["never"], summary["if-needed"]
    assert never["auc_before"] == pytest.approx(0.90) and never["auc_after"] == pytest.approx(0.85)
    assert if_needed["auc_after"] == pytest.approx(0.90)
    assert (never["retrains"], if_needed["retrains"]) == (0, 2)  # step 5, both groups
    assert never["alerts_before"] == if_needed["alerts_before"] == 0
    assert never["first_alert_step"] == if_needed["first_alert_step"] == SHIFT_STEP
    assert never["max_estimate_error_before"] == pytest.approx(0.005)
    assert summarise(results, label="another replay") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--jobs", "0"], "argument --jobs: not a positive whole number: '0'"),
        (["retrain", "--jobs", "two"], "argument --jobs: not a positive whole number: 'two'"),
        (["retrain", "--as-of", "1/10/2026"], "not a date (YYYY-MM-DD): '1/10/2026'"),
        (["replay", "--weeks", "0"], "argument --weeks: not a positive whole number: '0'"),
        (["replay", "--policy", "monthly"], "invalid choice: 'monthly'"),
    ],
)
def test_malformed_training_and_replay_arguments_are_usage_errors(capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_policy_copy_drops_the_write_ahead_log_a_killed_replay_left(tmp_path):
    """A replay killed mid-step leaves `<policy>.duckdb.wal`; the next replay's copy of the start
    warehouse must not inherit it (DuckDB would refuse the file: "WAL does not match")."""
    import duckdb

    from models_py.operations._replay import _copy_warehouse

    source = tmp_path / "start.duckdb"
    with duckdb.connect(str(source)) as con:
        con.execute("create table t as select 42 as answer")
    target = tmp_path / "if-needed.duckdb"
    target.write_bytes(b"an older warehouse")
    (tmp_path / "if-needed.duckdb.wal").write_bytes(b"its write-ahead log")
    _copy_warehouse(source, target)
    assert not (tmp_path / "if-needed.duckdb.wal").exists()
    with duckdb.connect(str(target), read_only=True) as con:
        assert con.execute("select answer from t").fetchone() == (42,)
