"""`propensity run daily` through the CLI entry point: the normal run and its bad input (no new
data, a cutoff before the newest scored one, a gap of days, a cutoff after the data ends, no
champion), each with its message, exit code and the rows it leaves (docs/operations.md)."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from models_py._dbt import dbt_target_path
from models_py._settings import Settings
from models_py.cli import main
from models_py.operations import DEFAULT_LOOKBACK_DAYS
from models_py.operations._daily import last_order_date
from tests.models_py.operations.daily_fixtures import (
    FIRST_CUTOFF,
    SCORED_GROUPS,
    UNSCORED_GROUPS,
    append_days,
    copy_template,
    query,
)
from tests.reliability._warehouses import table_fingerprint

SCORES = "marts.fct_propensity_scores"
ML = ("ml.model_registry", "ml.model_aliases", "ml.alias_history", "ml.model_metrics")
LAST_ORDER = FIRST_CUTOFF - dt.timedelta(days=1)
ROWS = 2000 * len(SCORED_GROUPS)  # every customer is created before the cutoffs tested here


@pytest.fixture
def wh(tmp_path_factory, tmp_path):
    return copy_template(tmp_path_factory, tmp_path)


def daily(wh, *args: str) -> int:
    return main(["--warehouse", str(wh), "run", "daily", *args])


def scores_by_cutoff(wh) -> dict[dt.date, int]:
    return dict(query(wh, f"select as_of_date, count(*) from {SCORES} group by 1 order by 1"))


def test_default_lookback_is_the_one_the_cli_help_names(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "daily", "--help"])
    assert exit_.value.code == 0
    assert f"default {DEFAULT_LOOKBACK_DAYS})" in " ".join(capsys.readouterr().out.split())


def test_no_new_data_rescores_the_same_cutoff_idempotently(wh, capsys):
    content = table_fingerprint(wh, SCORES, exclude=("scored_at",))
    (stamp,) = query(wh, f"select max(scored_at) from {SCORES}")[0]
    ml = table_fingerprint(wh, *ML)

    assert daily(wh) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"daily run: scoring cutoff {FIRST_CUTOFF} (orders up to {LAST_ORDER}; previous scored "
        f"cutoff {FIRST_CUTOFF})\n  scored {ROWS:,} rows in 3 groups: any 2,000, sweets 2,000, "
        "wine 2,000\n"
    )
    assert (
        f"  note: no new data: the last order is still on {LAST_ORDER}, as when cutoff "
        f"{FIRST_CUTOFF} was scored; its scores were recomputed and replace the stored ones\n"
    ) in out
    # The data tests check the rows the run rewrote: orders of the lookback window and on.
    since = LAST_ORDER - dt.timedelta(days=DEFAULT_LOOKBACK_DAYS)
    assert (
        f" tests passed, 0 warned (rows from {since}); intermediate tables: orders of the last "
        "7 stored days"
    ) in out
    assert (
        f"  note: not scored (no champion): {', '.join(UNSCORED_GROUPS)}; train them with "
        "`propensity train --group GROUP`\n"
    ) in out
    # The scores' grain is tested; the view's grain (tag build_only: it follows from the tested
    # grains of its inputs) is left to builds.
    results = json.loads((dbt_target_path(Settings(warehouse=wh)) / "run_results.json").read_text())
    tests_run = {r["unique_id"] for r in results["results"] if r["unique_id"].startswith("test.")}
    assert any("unique_combination_fct_propensity_scores" in t for t in tests_run)
    assert not any("unique_combination_fct_scoring_features" in t for t in tests_run)
    assert scores_by_cutoff(wh) == {FIRST_CUTOFF: ROWS}
    assert table_fingerprint(wh, SCORES, exclude=("scored_at",)) == content  # same scores
    assert query(wh, f"select min(scored_at) from {SCORES}")[0][0] > stamp  # ... rewritten
    assert table_fingerprint(wh, *ML) == ml


def test_cutoff_before_the_newest_scored_one_is_refused_unless_backfilled(wh, capsys):
    before = table_fingerprint(wh, SCORES, *ML)
    assert daily(wh, "--as-of", "2026-09-15") == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: --as-of 2026-09-15 is earlier than the newest scored cutoff {FIRST_CUTOFF} in "
        f"{SCORES}: a daily run moves forward. To (re)score an earlier cutoff deliberately, add "
        "--backfill: that cutoff's scores are computed with today's champions from the data now "
        "in the warehouse (orders before it only) and replace its stored scores, if any; later "
        "cutoffs are kept.\n"
    )
    assert table_fingerprint(wh, SCORES, *ML) == before  # refused before dbt started

    newest = table_fingerprint(wh, SCORES, exclude=("scored_at",))
    training = table_fingerprint(wh, "marts.fct_training_examples")
    assert daily(wh, "--as-of", "2026-09-15", "--backfill") == 0
    out = capsys.readouterr().out
    assert "daily run: scoring cutoff 2026-09-15 " in out
    assert (
        f"note: backfill: cutoff 2026-09-15 is before the newest scored cutoff {FIRST_CUTOFF}; "
        "its scores use today's champions and replace any stored for it"
    ) in out
    backfilled = scores_by_cutoff(wh)
    assert backfilled[FIRST_CUTOFF] == ROWS and 0 < backfilled[dt.date(2026, 9, 15)] <= ROWS
    con = duckdb.connect(str(wh))
    try:
        con.execute(f"delete from {SCORES} where as_of_date = date '2026-09-15'")
    finally:
        con.close()
    # The newest cutoff's scores and the training examples are untouched by the backfill.
    assert table_fingerprint(wh, SCORES, exclude=("scored_at",)) == newest
    assert table_fingerprint(wh, "marts.fct_training_examples") == training


def test_gap_of_days_scores_the_asked_cutoff_and_names_the_gap(wh, capsys):
    """Also: a registry made by an older version (no ml.retrain_decisions) gets its new tables
    before the checks read it; `--vars` reaches dbt (reason codes for the top decile only, data
    tests from the date given)."""
    con = duckdb.connect(str(wh))
    try:
        con.execute("drop table ml.retrain_decisions")
    finally:
        con.close()
    last = append_days(wh, 3)
    as_of = last + dt.timedelta(days=1)
    assert as_of == FIRST_CUTOFF + dt.timedelta(days=3)
    vars_ = "{score_reasons_max_decile: 1, data_tests_since: 1900-01-01}"
    assert daily(wh, "--vars", vars_) == 0
    out = capsys.readouterr().out
    assert f"daily run: scoring cutoff {as_of} (orders up to {last}; previous " in out
    assert " tests passed, 0 warned (rows from 1900-01-01); " in out  # the user's date wins
    assert (
        f"note: gap: 2 day(s) without scores since the last scored cutoff {FIRST_CUTOFF} "
        f"({FIRST_CUTOFF + dt.timedelta(days=1)} .. {last}); this run scores {as_of} only. Score "
        "a missing day with `propensity run daily --as-of DATE --backfill`."
    ) in out
    assert scores_by_cutoff(wh) == {FIRST_CUTOFF: ROWS, as_of: ROWS}
    assert query(wh, "select count(*) from ml.retrain_decisions") == [(0,)]  # created again
    explained = query(
        wh,
        "select r.as_of_date, max(s.decile), count(distinct (r.customer_id, r.product_group)) "
        "from marts.fct_score_reasons r join marts.fct_propensity_scores s using (customer_id, "
        "product_group, as_of_date) group by 1",
    )
    assert explained == [(as_of, 1, ROWS // 10)]  # deciles are tenths of 2,000 per group


def test_the_last_order_date_counts_orders_with_a_customer_and_a_line_only(wh):
    # Newer orders without a line or without a customer do not move the data's end, in the
    # last 31 days (the fast path) or before them (the whole table).
    con = duckdb.connect(str(wh))
    try:
        con.execute(
            "insert into raw.orders select order_id + 10000000, customer_id, ordered_at + "
            "interval 2 day, * exclude (order_id, customer_id, ordered_at) from raw.orders "
            "where cast(ordered_at as date) = ?",
            [LAST_ORDER],
        )  # no lines
        con.execute(
            "insert into raw.orders select order_id + 20000000, null, ordered_at + interval 1 day, "
            "* exclude (order_id, customer_id, ordered_at) from raw.orders "
            "where cast(ordered_at as date) = ?",
            [LAST_ORDER],
        )
        con.execute(
            "insert into raw.order_lines select order_id + 20000000, * exclude (order_id) from "
            "raw.order_lines where order_id in (select order_id from raw.orders "
            "where cast(ordered_at as date) = ?)",
            [LAST_ORDER],
        )  # lines, but no customer
        assert last_order_date(con) == LAST_ORDER
        # Every order of the last 31 days loses its lines: the whole table is searched.
        recent = "select order_id from raw.orders where ordered_at >= ? and customer_id is not null"
        con.execute(
            f"delete from raw.order_lines where order_id in ({recent})",
            [LAST_ORDER - dt.timedelta(days=40)],
        )
        newest = con.execute(
            "select max(cast(ordered_at as date)) from raw.orders where customer_id is not null "
            "and order_id in (select order_id from raw.order_lines)"
        ).fetchone()[0]
        assert newest < LAST_ORDER - dt.timedelta(days=31)
        assert last_order_date(con) == newest
    finally:
        con.close()


def test_cutoff_after_the_data_ends_is_refused(wh, capsys):
    before = table_fingerprint(wh, SCORES, *ML)
    assert daily(wh, "--as-of", "2026-10-03") == 1
    assert capsys.readouterr().err == (
        f"error: --as-of 2026-10-03 is after the data ends: the last order is on {LAST_ORDER}, "
        "so features at 2026-10-03 would see no orders for the 2 day(s) from 2026-10-01 to "
        "2026-10-02 (recency and window features would be wrong). Load those days' orders "
        "first, or run without --as-of (cutoff 2026-10-01).\n"
    )
    assert table_fingerprint(wh, SCORES, *ML) == before


def test_no_champion_is_refused_naming_propensity_train(wh, capsys):
    con = duckdb.connect(str(wh))
    try:
        con.execute("delete from ml.model_aliases")
    finally:
        con.close()
    before = table_fingerprint(wh, SCORES)
    assert daily(wh) == 1
    assert capsys.readouterr().err == (
        "error: no champion model to score with: the daily run scores every product group with "
        "its champion (ml.model_aliases, trained on marts.fct_training_examples) and there is "
        "none. Train them first: `propensity train` (after `propensity build`).\n"
    )
    assert table_fingerprint(wh, SCORES) == before


def test_malformed_arguments_are_usage_errors(capsys):
    for args, message in (
        (["--as-of", "01/10/2026"], "not a date (YYYY-MM-DD): '01/10/2026'"),
        (["--lookback-days", "-1"], "not a whole number >= 0: '-1'"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(["run", "daily", *args])
        assert exit_.value.code == 2
        assert message in capsys.readouterr().err


def test_bad_rows_in_the_new_day_stop_the_run_before_the_scores(wh, capsys):
    last = append_days(wh)
    con = duckdb.connect(str(wh))
    try:  # the load delivered one order twice
        con.execute(
            "insert into raw.orders select * from raw.orders where cast(ordered_at as date) = ? "
            "order by order_id limit 1",
            [last],
        )
        (duplicate,) = con.execute(
            "select order_id from raw.orders group by 1 having count(*) > 1"
        ).fetchone()
    finally:
        con.close()
    before = table_fingerprint(wh, SCORES, *ML)
    assert daily(wh) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: dbt build --selector daily failed:\n")
    assert (
        f"duplicate order_id {duplicate} appears 2 times in orders. Each key must appear once: "
        "deduplicate the source table."
    ) in err
    assert table_fingerprint(wh, SCORES, *ML) == before
