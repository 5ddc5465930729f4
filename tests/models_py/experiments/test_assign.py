"""`propensity experiment assign`: the salted hash of the campaigns' hold-out macro, in SQL;
re-runs move nobody; every bad input is a named error and leaves nothing written."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shutil

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from models_py._settings import Settings
from models_py.experiments import assign_experiments
from models_py.experiments._assign import BUCKET_EXPRESSION
from models_py.experiments._errors import (
    EmptyAudienceError,
    ExperimentChangedError,
    OverlappingExperimentsError,
    SharesError,
    UnknownArmError,
)
from models_py.ingest.synth import generate_warehouse
from tests.models_py.experiments.experiment_fixtures import END, RESULTS, build, cli

ASSIGNED_AT = dt.datetime(2026, 9, 1)
#: the generator's discount experiment: [2026-08-02, 2026-09-01)
GENERATED_EXPERIMENT = "discount_2026q3"


def bucket(salt: str, experiment_id: str, customer_id: int) -> int:
    """The hash hold-out bucket, computed in Python from its definition (docs/audiences.md)."""
    digest = hashlib.md5(f"{salt}|{experiment_id}|{customer_id}".encode()).hexdigest()
    return int(digest[:8], 16) % 10_000


def test_the_bucket_is_the_dbt_macro_expression():
    """One hash: assignment runs the expression of dbt's propensity_holdout_bucket."""
    macro = (
        Settings().dbt_project_dir / "macros" / "audiences" / "contact_history.sql"
    ).read_text()
    body = re.search(
        r"propensity_holdout_bucket\(salt, id, customer_id\) -%}\s*(.*?)\s*{%- endmacro",
        macro,
        re.S,
    )
    assert body is not None
    rendered = " ".join(
        body.group(1)
        .replace("{{ salt }}", "salt")
        .replace("{{ id }}", "id")
        .replace("{{ customer_id }}", "customer_id")
        .replace("{{ string_type() }}", "varchar")  # the type's name on DuckDB
        .split()
    )
    assert rendered.replace("( ", "(").replace(" )", ")") == BUCKET_EXPRESSION


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("assign") / "template.duckdb"
    generate_warehouse(path, customers=800, seed=3, days=200, end_date=END)
    with duckdb.connect(str(path)) as con:
        con.execute("create schema lists")
        con.execute(
            "create table lists.first_list as select customer_id from raw.customers "
            "where customer_id <= 400"
        )
    return path


@pytest.fixture
def warehouse(template, tmp_path):
    return shutil.copy(template, tmp_path / "wh.duckdb")


def write(tmp_path, text: str, name: str = "experiments.yml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def assignments(warehouse, experiment_id: str | None = None) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        if not con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'raw' and table_name = 'experiment_assignments'"
        ).fetchone()[0]:
            return pd.DataFrame()
        where = "" if experiment_id is None else f"where experiment_id = '{experiment_id}'"
        return con.execute(
            f"select * from raw.experiment_assignments {where} order by experiment_id, customer_id"
        ).df()


THREE_ARMS = """
experiments:
  spring:
    audience: {all_customers: true}
    arms:
      control: {share: 0.5, discount_pct: 0}
      x: {share: 0.3, discount_pct: 10}
      y: {share: 0.2, discount_pct: 20}
    control: control
    salt: s1
    assigned_at: 2026-09-01
"""


def test_every_customer_gets_the_arm_of_its_salted_hash(warehouse, tmp_path, capsys):
    assert cli(warehouse, "experiment", "assign", str(write(tmp_path, THREE_ARMS))) == 0
    out = capsys.readouterr().out
    rows = assignments(warehouse, "spring")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        customers = con.execute(
            "select customer_id from raw.customers where created_at < ? order by 1", [ASSIGNED_AT]
        ).fetchall()
    assert rows["customer_id"].tolist() == [c for (c,) in customers]
    expected_buckets = [bucket("s1", "spring", c) for c in rows["customer_id"]]
    assert rows["bucket"].tolist() == expected_buckets
    expected = ["control" if b < 5000 else "x" if b < 8000 else "y" for b in expected_buckets]
    assert rows["arm"].tolist() == expected
    assert rows["discount_pct"].tolist() == [{"control": 0, "x": 10, "y": 20}[a] for a in expected]
    assert (rows["assigned_at"] == pd.Timestamp(ASSIGNED_AT)).all()
    assert (rows["salt"] == "s1").all()
    shares = rows["arm"].value_counts(normalize=True)
    assert shares["control"] == pytest.approx(0.5, abs=0.06)
    counts = rows["arm"].value_counts()
    assert f"spring: {len(rows):,} customers assigned at 2026-09-01 00:00:00" in out
    assert f"control {counts['control']:,}, x {counts['x']:,}, y {counts['y']:,}" in out


def test_a_rerun_moves_nobody_and_adds_newcomers_on_their_day(warehouse, tmp_path, capsys):
    config = write(
        tmp_path,
        """
experiments:
  newsletter:
    audience: {relation: lists.first_list}
    arms: {a: {share: 0.5}, b: {share: 0.5}}
    control: a
    salt: letters
""",
    )
    assert cli(warehouse, "experiment", "assign", str(config)) == 0
    first = assignments(warehouse, "newsletter")
    assert len(first) == 400
    # default assignment time: the day after the last order (the warehouse's today)
    assert (first["assigned_at"] == pd.Timestamp(END)).all()
    assert cli(warehouse, "experiment", "assign", str(config)) == 0
    assert "0 customers assigned" in capsys.readouterr().out.splitlines()[-2]
    pd.testing.assert_frame_equal(assignments(warehouse, "newsletter"), first)

    # a day later: more orders, and the list has grown by 100 customers
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "insert into raw.orders select max(order_id) + 1, 1, timestamp '2026-10-01 12:00' "
            "from raw.orders"
        )
        con.execute(
            "insert into lists.first_list select customer_id from raw.customers "
            "where customer_id between 401 and 500"
        )
    assert cli(warehouse, "experiment", "assign", str(config)) == 0
    after = assignments(warehouse, "newsletter")
    assert len(after) == 500
    old = after[after["customer_id"] <= 400].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, first)  # same arm, same date
    new = after[after["customer_id"] > 400]
    assert (new["assigned_at"] == pd.Timestamp("2026-10-02")).all()
    assert new["arm"].tolist() == [
        "a" if bucket("letters", "newsletter", c) < 5000 else "b" for c in new["customer_id"]
    ]


def test_the_experiment_id_is_part_of_the_hash(warehouse, tmp_path):
    config = write(
        tmp_path,
        THREE_ARMS.replace("assigned_at: 2026-09-01", "assigned_at: 2025-01-01")
        + THREE_ARMS.replace("experiments:\n  spring:", "  autumn:").replace(
            "assigned_at: 2026-09-01", "assigned_at: 2025-06-01"
        ),
    )
    assert cli(warehouse, "experiment", "assign", str(config)) == 0
    rows = assignments(warehouse).pivot(index="customer_id", columns="experiment_id", values="arm")
    rows = rows.dropna()
    assert len(rows) > 100
    assert (rows["spring"] != rows["autumn"]).mean() > 0.3  # same salt, other experiment


@pytest.mark.parametrize(
    "text,error,message",
    [
        (
            THREE_ARMS.replace("control: control", "control: treatment"),
            UnknownArmError,
            "control arm 'treatment' is not one of its arms ['control', 'x', 'y']",
        ),
        (
            THREE_ARMS.replace("share: 0.2", "share: 0.3"),
            SharesError,
            "the arm shares sum to 1.1, not 1 (control 0.5, x 0.3, y 0.3)",
        ),
        (
            THREE_ARMS.replace("assigned_at: 2026-09-01", "assigned_at: 2000-01-01"),
            EmptyAudienceError,
            "the audience all_customers all holds no customer",
        ),
        (
            THREE_ARMS.replace("assigned_at: 2026-09-01", "assigned_at: 2026-08-20"),
            OverlappingExperimentsError,
            "shares customers with experiments whose outcome windows overlap: discount_2026q3",
        ),
    ],
    ids=["unknown_control_arm", "shares_not_1", "empty_audience", "overlap"],
)
def test_bad_input_is_a_named_error_and_nothing_is_written(
    warehouse, tmp_path, capsys, text, error, message
):
    # a valid experiment first: the failing one must take it down with it (one transaction)
    valid = """
experiments:
  valid_first:
    audience: {relation: lists.first_list}
    arms: {a: {share: 0.5}, b: {share: 0.5}}
    control: a
    salt: v
    assigned_at: 2026-09-05
"""
    config = write(tmp_path, valid + text.replace("experiments:\n", ""))
    with pytest.raises(error, match=re.escape(message)):
        assign_experiments(Settings(warehouse=warehouse), config)
    assert cli(warehouse, "experiment", "assign", str(config)) == 1
    assert message in capsys.readouterr().err
    assert assignments(warehouse).empty


def test_overlap_exclude_leaves_the_overlapping_customers_out(warehouse, tmp_path, capsys):
    config = write(
        tmp_path,
        THREE_ARMS.replace(
            "assigned_at: 2026-09-01", "assigned_at: 2026-08-20\n    overlap: exclude"
        ),
    )
    assert cli(warehouse, "experiment", "assign", str(config)) == 0
    out = capsys.readouterr().out
    with duckdb.connect(str(warehouse), read_only=True) as con:
        in_generated = con.execute(
            "select count(*) from raw.treatments where experiment_id = ?", [GENERATED_EXPERIMENT]
        ).fetchone()[0]
        both = con.execute(
            "select count(*) from raw.experiment_assignments a inner join raw.treatments t "
            "using (customer_id) where a.experiment_id = 'spring'"
        ).fetchone()[0]
    assert both == 0
    assert f"left out, in overlapping experiments: {GENERATED_EXPERIMENT} {in_generated:,}" in out


def test_changing_the_salt_of_an_assigned_experiment_is_refused(warehouse, tmp_path, capsys):
    assert cli(warehouse, "experiment", "assign", str(write(tmp_path, THREE_ARMS))) == 0
    before = assignments(warehouse)
    changed = write(tmp_path, THREE_ARMS.replace("salt: s1", "salt: s2"), "changed.yml")
    with pytest.raises(ExperimentChangedError):
        assign_experiments(Settings(warehouse=warehouse), changed)
    assert cli(warehouse, "experiment", "assign", str(changed)) == 1
    err = capsys.readouterr().err
    assert "experiment 'spring' already has assignments; this file changes salt 's1' -> 's2'" in err
    assert "start a new experiment under a new id" in err
    shares = write(
        tmp_path,
        THREE_ARMS.replace("x: {share: 0.3,", "x: {share: 0.2,").replace(
            "y: {share: 0.2,", "y: {share: 0.3,"
        ),
        "shares.yml",
    )
    assert cli(warehouse, "experiment", "assign", str(shares)) == 1
    assert "arms (share, discount)" in capsys.readouterr().err
    pd.testing.assert_frame_equal(assignments(warehouse), before)


def test_an_experiment_of_raw_treatments_is_described_not_reassigned(warehouse, tmp_path, capsys):
    hashed = write(
        tmp_path,
        THREE_ARMS.replace("spring:", f"{GENERATED_EXPERIMENT}:"),
    )
    assert cli(warehouse, "experiment", "assign", str(hashed)) == 1
    assert "is already in raw.treatments" in capsys.readouterr().err
    missing_arm = write(
        tmp_path,
        f"""
experiments:
  {GENERATED_EXPERIMENT}:
    assignment: external
    arms: {{"0": {{share: 0.5}}, "20": {{share: 0.5}}}}
    control: "0"
""",
        "external.yml",
    )
    assert cli(warehouse, "experiment", "assign", str(missing_arm)) == 1
    assert "raw.treatments has arms ['25'] that experiments.yml does not declare" in (
        capsys.readouterr().err
    )


def _campaign_marts(warehouse, *, share: float = 0.1) -> pd.DataFrame:
    """marts.fct_campaign_audiences and dim_campaigns as dbt builds them (columns read here)."""
    with duckdb.connect(str(warehouse)) as con:
        ids = [
            c
            for (c,) in con.execute(
                "select customer_id from raw.customers where created_at < ? order by 1",
                [ASSIGNED_AT],
            ).fetchall()
        ]
    frame = pd.DataFrame(
        {
            "campaign_id": "wine",
            "customer_id": ids,
            "as_of_date": ASSIGNED_AT.date(),
            "is_eligible": [i % 5 != 0 for i in ids],
            "exclusion_reason": [None if i % 7 else "vip" for i in ids],
            "holdout_bucket": [bucket("w", "wine", i) for i in ids],
        }
    )
    frame["is_holdout"] = frame["holdout_bucket"] < round(share * 10_000)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema if not exists marts")
        con.register("audiences", pa.Table.from_pandas(frame))
        con.execute("create table marts.fct_campaign_audiences as select * from audiences")
        con.execute(
            "create table marts.dim_campaigns as select 'wine' as campaign_id, "
            f"{share} as holdout_share, 'w' as holdout_salt"
        )
    return frame


def test_a_campaign_hold_out_is_recorded_and_analysed(warehouse, tmp_path, capsys):
    frame = _campaign_marts(warehouse)
    config = write(
        tmp_path,
        """
experiments:
  wine_holdout:
    assignment: campaign_holdout
    audience: {campaign: wine}
    window_days: 30
""",
    )
    assert cli(warehouse, "experiment", "assign", str(config)) == 0
    rows = assignments(warehouse, "wine_holdout").set_index("customer_id")
    audience = frame[frame["is_eligible"] & frame["exclusion_reason"].isna()].set_index(
        "customer_id"
    )
    assert list(rows.index) == list(audience.index)
    assert (rows["arm"] == audience["is_holdout"].map({True: "holdout", False: "contacted"})).all()
    assert (rows["assigned_at"] == pd.Timestamp(ASSIGNED_AT)).all()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        shares = dict(
            con.execute(
                "select arm, share from raw.experiment_config where experiment_id = 'wine_holdout'"
            ).fetchall()
        )
    assert shares == pytest.approx({"contacted": 0.9, "holdout": 0.1})

    build(warehouse, ["+fct_experiment_results"])
    capsys.readouterr()
    assert cli(warehouse, "experiment", "analyse", "wine_holdout") == 0
    out = capsys.readouterr().out
    assert "control holdout, status complete" in out
    assert "sample ratio: contacted " in out and "vs 90.0%" in out
    # incremental purchases = (conversion contacted - conversion hold-out) x contacted customers,
    # recomputed from the orders of the window
    with duckdb.connect(str(warehouse), read_only=True) as con:
        bought = con.execute(
            "select a.arm, a.customer_id, count(o.order_id) > 0 as bought "
            "from raw.experiment_assignments as a left join ("
            "  select distinct o.order_id, o.customer_id, o.ordered_at from raw.orders as o "
            "  inner join raw.order_lines as l on o.order_id = l.order_id and l.quantity > 0"
            ") as o on o.customer_id = a.customer_id and o.ordered_at >= a.assigned_at "
            "and o.ordered_at < a.assigned_at + interval 30 day "
            "where a.experiment_id = 'wine_holdout' group by all"
        ).df()
        incremental, lo, hi = con.execute(
            "select incremental_total, incremental_ci_lower, incremental_ci_upper "
            "from marts.fct_experiment_results "
            "where experiment_id = 'wine_holdout' and metric = 'conversion' and arm = 'contacted'"
        ).fetchone()
    rate = bought.groupby("arm")["bought"].mean()
    contacted = (bought["arm"] == "contacted").sum()
    assert incremental == pytest.approx((rate["contacted"] - rate["holdout"]) * contacted)
    assert lo < incremental < hi


def test_a_campaign_without_hold_out_or_audience_is_refused(warehouse, tmp_path, capsys):
    _campaign_marts(warehouse, share=0.0)
    holdout = write(
        tmp_path,
        "experiments:\n  h:\n    assignment: campaign_holdout\n    audience: {campaign: wine}\n",
    )
    assert cli(warehouse, "experiment", "assign", str(holdout)) == 1
    assert "campaign 'wine' has no hold-out (holdout_share 0)" in capsys.readouterr().err
    other = write(
        tmp_path, THREE_ARMS.replace("{all_customers: true}", "{campaign: beer}"), "b.yml"
    )
    assert cli(warehouse, "experiment", "assign", str(other)) == 1
    err = capsys.readouterr().err
    assert (
        "campaign 'beer' has no row in marts.fct_campaign_audiences (campaigns there: ['wine'])"
        in err
    )
    assert assignments(warehouse).empty


def test_results_marts_build_without_assignments_table(tmp_path):
    """A warehouse that never ran `experiment assign`: the marts build from raw.treatments."""
    path = tmp_path / "plain.duckdb"
    generate_warehouse(path, customers=300, seed=1, days=150, end_date=END)
    build(path, ["+" + m for m in RESULTS[1:]])
    with duckdb.connect(str(path), read_only=True) as con:
        experiments = con.execute("select experiment_id from marts.dim_experiments").fetchall()
    assert experiments == [(GENERATED_EXPERIMENT,)]
