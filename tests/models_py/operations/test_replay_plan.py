"""The dates of a replay: weekly steps whose last label window ends with the data, a shift inside
the replayed steps, and bad arguments refused through the CLI before anything is generated."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from models_py._errors import ConfigError
from models_py.cli import main
from models_py.operations._replay import plan_replay

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
