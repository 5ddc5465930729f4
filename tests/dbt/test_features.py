"""Feature marts on a small random warehouse: grain, no NULL features, coverage, labels against an
independent pandas computation, time-ordered splits and idempotent rebuilds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from models_py._dbt import run_dbt
from models_py._settings import Settings
from models_py._warehouse import connect
from models_py.ingest._groups import parse_group_rules, rules_to_arrow
from tests.conftest import write_tiny_warehouse

START = dt.datetime(2023, 1, 1)
DAYS = 400
#: Explicit cutoffs so that tests do not depend on the last event date.
TRAINING_CUTOFFS = ["2023-10-01", "2023-11-01", "2023-12-01", "2024-01-01"]
SCORING_CUTOFF = "2024-02-05"
DBT_VARS = {
    "training_cutoffs": TRAINING_CUTOFFS,
    "scoring_cutoff": SCORING_CUTOFF,
    "horizon_days": 30,
    "test_cutoffs": 1,
    "validation_cutoffs": 1,
}
FEATURE_MODELS = "+fct_training_examples +fct_scoring_features"


def random_tables(*, customers: int, seed: int) -> dict[str, pa.Table]:
    """Random raw tables with the edge cases the features must handle: orders exactly at
    midnight, returns inside purchase orders, return-only orders, several orders on one day,
    customers created late, customers without orders, email events of every type."""
    rng = np.random.default_rng(seed)
    n = customers
    ids = np.arange(1, n + 1, dtype=np.int64)
    created = START + pd.to_timedelta(rng.integers(-200 * 24, (DAYS - 20) * 24, n), unit="h")
    products = pa.table(
        {
            "product_id": [f"p{i}" for i in range(40)],
            "product_name": [f"Product {i}" for i in range(40)],
            "category": [["wine", "sweets", "home", "toys"][i % 4] for i in range(40)],
        }
    )
    n_orders = rng.poisson(6, n)
    cust = np.repeat(ids, n_orders)
    cust_created = np.repeat(created.values, n_orders)
    end = np.datetime64(START + dt.timedelta(days=DAYS))
    span = (end - cust_created).astype("timedelta64[s]").astype(np.int64)
    offset = (rng.random(len(cust)) * np.maximum(span, 1)).astype(np.int64)
    ordered_at = cust_created + offset.astype("timedelta64[s]")
    # A fifth of the orders exactly at midnight (the cutoff edge), some at 23:59:59.
    days = ordered_at.astype("datetime64[D]")
    edge = rng.random(len(cust))
    ordered_at = np.where(edge < 0.2, days.astype("datetime64[s]"), ordered_at)
    ordered_at = np.where(
        (edge >= 0.2) & (edge < 0.3),
        days.astype("datetime64[s]") + np.timedelta64(86399, "s"),
        ordered_at,
    )
    m = len(cust)
    order_ids = np.arange(1, m + 1, dtype=np.int64) * 10
    orders = pa.table(
        {
            "order_id": order_ids,
            "customer_id": cust,
            "ordered_at": pa.array(ordered_at.astype("datetime64[us]")),
        }
    )
    n_lines = rng.integers(1, 4, m)
    line_order = np.repeat(order_ids, n_lines)
    k = len(line_order)
    quantity = rng.integers(1, 4, k).astype(np.int32)
    quantity = np.where(rng.random(k) < 0.12, -quantity, quantity).astype(np.int32)
    # Return-only orders: every line of 5% of the orders is negative.
    return_only = np.isin(line_order, order_ids[rng.random(m) < 0.05])
    quantity = np.where(return_only, -np.abs(quantity), quantity).astype(np.int32)
    order_lines = pa.table(
        {
            "order_id": line_order,
            "product_id": [f"p{i}" for i in rng.integers(0, 40, k)],
            "quantity": pa.array(quantity, pa.int32()),
            "unit_price": np.round(rng.uniform(0.5, 40, k), 2),
        }
    )
    n_sends = rng.poisson(10, n)
    e_cust = np.repeat(ids, n_sends)
    e_at = np.datetime64(START - dt.timedelta(days=100)) + rng.integers(
        0, (DAYS + 100) * 86400, len(e_cust)
    ).astype("timedelta64[s]")
    kinds = rng.choice(
        ["sent", "open", "click", "unsubscribe", "bounce"],
        len(e_cust),
        p=[0.55, 0.25, 0.1, 0.02, 0.08],
    )
    email_events = pa.table(
        {
            "customer_id": e_cust,
            "campaign_id": [f"c{i}" for i in rng.integers(0, 50, len(e_cust))],
            "event_type": kinds,
            "occurred_at": pa.array(e_at.astype("datetime64[us]")),
        }
    )
    customers_tbl = pa.table(
        {
            "customer_id": ids,
            "created_at": pa.array(created.values.astype("datetime64[us]")),
            "country": rng.choice(["UK", "FR", "DE"], n),
            "email_opt_in": rng.random(n) < 0.7,
            "is_vip": rng.random(n) < 0.05,
        }
    )
    rules = rules_to_arrow(
        parse_group_rules(
            {
                "product_groups": {
                    "wine": {"category": ["^wine$"]},
                    "sweets": {"category": ["^sweets$"]},
                    "nothing": {"category": ["^no such category$"]},
                }
            }
        )
    )
    return {
        "customers": customers_tbl,
        "orders": orders,
        "order_lines": order_lines,
        "products": products,
        "email_events": email_events,
        "product_group_rules": rules,
    }


def write_random_warehouse(path: Path, *, customers: int = 600, seed: int = 3) -> Settings:
    """A random warehouse (raw contract) written with write_tiny_warehouse's machinery."""
    return write_tiny_warehouse(path, **random_tables(customers=customers, seed=seed))


def read(settings: Settings, sql: str, params: list | None = None) -> pd.DataFrame:
    con = connect(settings.warehouse, read_only=True)
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()


def build(settings: Settings, **extra_vars: object) -> None:
    run_dbt(
        settings,
        ["build", "--select", FEATURE_MODELS],
        dbt_vars={**DBT_VARS, **extra_vars},
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Settings:
    settings = write_random_warehouse(tmp_path_factory.mktemp("features") / "wh.duckdb")
    build(settings)
    return settings


def raw_frames(settings: Settings) -> dict[str, pd.DataFrame]:
    names = ["customers", "orders", "order_lines", "products", "email_events"]
    return {n: read(settings, f"select * from raw.{n}") for n in names}


def numeric_columns(settings: Settings, table: str) -> list[str]:
    cols = read(settings, f"describe marts.{table}")
    return [
        c
        for c, t in zip(cols["column_name"], cols["column_type"], strict=True)
        if t in ("INTEGER", "BIGINT", "DOUBLE")
    ]


MARTS = {
    "fct_customer_features": ["customer_id", "as_of_date"],
    "fct_customer_group_features": ["customer_id", "product_group", "as_of_date"],
    "fct_training_examples": ["customer_id", "product_group", "as_of_date"],
    "fct_scoring_features": ["customer_id", "product_group", "as_of_date"],
}


@pytest.mark.parametrize("table", list(MARTS))
def test_grain_is_unique_and_numeric_features_are_never_null(built, table):
    keys = ", ".join(MARTS[table])
    dupes = read(
        built, f"select {keys}, count(*) from marts.{table} group by all having count(*) > 1"
    )
    assert dupes.empty, dupes.head()
    frame = read(built, f"select * from marts.{table}")
    assert len(frame) > 0
    nulls = frame[numeric_columns(built, table)].isna().sum()
    assert nulls.sum() == 0, nulls[nulls > 0]


def test_every_customer_created_before_the_cutoff_is_present(built):
    customers = raw_frames(built)["customers"]
    features = read(built, "select customer_id, as_of_date from marts.fct_customer_features")
    cutoffs = read(built, "select as_of_date, cutoff_role from marts.dim_cutoffs")
    assert sorted(cutoffs["as_of_date"].astype(str)) == sorted([*TRAINING_CUTOFFS, SCORING_CUTOFF])
    for cutoff in cutoffs["as_of_date"]:
        t = pd.Timestamp(cutoff)
        expected = set(customers.loc[customers["created_at"] < t, "customer_id"])
        got = set(features.loc[pd.to_datetime(features["as_of_date"]) == t, "customer_id"])
        assert got == expected, f"cutoff {t.date()}"
    # Every training example's customer x every active group (not the inactive `nothing`).
    groups = read(built, "select distinct product_group from marts.fct_training_examples")
    assert set(groups["product_group"]) == {"any", "wine", "sweets"}
    n = read(built, "select count(*) as n from marts.fct_training_examples")["n"][0]
    n_features = read(
        built,
        "select count(*) as n from marts.fct_customer_features f "
        "join marts.dim_cutoffs c using (as_of_date) where c.cutoff_role != 'scoring'",
    )["n"][0]
    assert n == 3 * n_features
    n_scoring = read(built, "select count(*) as n from marts.fct_scoring_features")["n"][0]
    assert n_scoring == 3 * (customers["created_at"] < pd.Timestamp(SCORING_CUTOFF)).sum()


@pytest.mark.parametrize(("group", "category"), [("wine", "wine"), ("any", None)])
def test_labels_match_an_independent_pandas_computation(built, group, category):
    raw = raw_frames(built)
    t = pd.Timestamp("2023-12-01")
    end = t + pd.Timedelta(days=30)
    lines = (
        raw["order_lines"]
        .merge(raw["orders"], on="order_id")
        .merge(raw["products"], on="product_id")
    )
    hit = lines[(lines["quantity"] > 0) & (lines["ordered_at"] >= t) & (lines["ordered_at"] < end)]
    if category:
        hit = hit[hit["category"] == category]
    customers = raw["customers"]
    expected = set(hit["customer_id"]) & set(
        customers.loc[customers["created_at"] < t, "customer_id"]
    )
    examples = read(
        built,
        "select customer_id, label from marts.fct_training_examples "
        "where product_group = ? and as_of_date = ?",
        [group, t.date()],
    )
    assert set(examples.loc[examples["label"] == 1, "customer_id"]) == expected
    assert 0 < len(expected) < len(examples)


def test_windowed_features_match_pandas(built):
    """Order, spend, item, product, return and email windows at one cutoff, from raw tables."""
    raw = raw_frames(built)
    t = pd.Timestamp("2023-11-01")
    lines = raw["order_lines"].merge(raw["orders"], on="order_id")
    lines = lines[lines["ordered_at"] < t]
    lines["amount"] = lines["quantity"] * lines["unit_price"]
    per_order = lines.groupby(["order_id", "customer_id", "ordered_at"], as_index=False).agg(
        net=("amount", "sum"),
        purchase=("quantity", lambda q: (q > 0).any()),
        returned=("quantity", lambda q: (q < 0).any()),
    )
    per_order["net"] = per_order["net"].round(2)
    features = read(
        built, "select * from marts.fct_customer_features where as_of_date = ?", [t.date()]
    ).set_index("customer_id")
    for w in (7, 90, 365):
        since = t - pd.Timedelta(days=w)
        o = per_order[per_order["ordered_at"] >= since]
        li = lines[lines["ordered_at"] >= since]
        expected = pd.DataFrame(
            {
                f"order_count_{w}d": o[o["purchase"]].groupby("customer_id").size(),
                f"spend_{w}d": o.groupby("customer_id")["net"].sum(),
                f"return_count_{w}d": o[o["returned"]].groupby("customer_id").size(),
                f"items_{w}d": li[li["quantity"] > 0].groupby("customer_id")["quantity"].sum(),
                f"distinct_products_{w}d": li[li["quantity"] > 0]
                .groupby("customer_id")["product_id"]
                .nunique(),
            }
        )
        expected = expected.reindex(features.index).fillna(0)
        got = features[expected.columns]
        pd.testing.assert_frame_equal(got, expected, check_dtype=False, atol=1e-6)
    events = raw["email_events"]
    ev = events[(events["occurred_at"] < t) & (events["occurred_at"] >= t - pd.Timedelta(days=30))]
    counts = ev.groupby(["customer_id", "event_type"]).size().unstack(fill_value=0)
    counts = counts.reindex(features.index).fillna(0)
    assert (features["email_sends_30d"] == counts["sent"]).all()
    assert (features["email_opens_30d"] == counts["open"]).all()
    last_order = per_order[per_order["purchase"]].groupby("customer_id")["ordered_at"].max()
    days = (t - last_order.dt.normalize()).dt.days.reindex(features.index).fillna(3650)
    assert (features["days_since_last_order"] == days).all()
    unsub = set(
        events.loc[
            (events["event_type"] == "unsubscribe") & (events["occurred_at"] < t), "customer_id"
        ]
    )
    assert set(features.index[features["is_unsubscribed"] == 1]) == unsub & set(features.index)


def test_splits_are_time_ordered(built):
    cutoffs = read(built, "select as_of_date, cutoff_role from marts.dim_cutoffs")
    by_role = cutoffs.groupby("cutoff_role")["as_of_date"].agg(["min", "max"])
    assert by_role.loc["train", "max"] < by_role.loc["validation", "min"]
    assert by_role.loc["validation", "max"] < by_role.loc["test", "min"]
    assert by_role.loc["test", "max"] < by_role.loc["scoring", "min"]
    splits = read(
        built,
        "select split, min(as_of_date) as lo, max(as_of_date) as hi "
        "from marts.fct_training_examples group by split",
    ).set_index("split")
    assert splits.loc["train", "hi"] < splits.loc["validation", "lo"]
    assert splits.loc["validation", "hi"] < splits.loc["test", "lo"]
    assert list(splits.loc[["train", "validation", "test"], "lo"].astype(str)) == [
        "2023-10-01",
        "2023-12-01",
        "2024-01-01",
    ]


def test_rebuild_is_idempotent(built):
    """A second build (the incremental path: delete + insert per cutoff) gives the same rows."""
    tables = ["fct_customer_features", "fct_customer_group_features", "fct_training_examples"]

    def snapshot() -> dict[str, pd.DataFrame]:
        return {
            t: read(built, f"select * from marts.{t} order by all").reset_index(drop=True)
            for t in tables
        }

    before = snapshot()
    run_dbt(built, ["run", "--select", FEATURE_MODELS], dbt_vars=DBT_VARS)
    after = snapshot()
    for t in tables:
        pd.testing.assert_frame_equal(before[t], after[t], check_exact=True, obj=t)


SAMPLE_VARS = {
    "training_sample_positives": 15,
    "training_sample_negatives": 60,
    "evaluation_sample_rows": 150,
}


#: The sample, the feature marts (their training cutoffs follow the sample) and the examples.
SAMPLE_AND_FEATURES = (
    "int_training_sample fct_customer_features fct_customer_group_features fct_training_examples"
)


def test_the_training_set_is_a_weighted_sample_of_every_row(built, tmp_path):
    """With small sample sizes, fct_training_examples keeps rows of the full table (null sizes:
    every row) unchanged, about the sizes asked for per group and cutoff, and weights whose sums
    give back each stratum's rows and positives exactly; a rebuild keeps the same rows. The
    feature marts compute a training cutoff for the sampled customers only, with the values
    (RFM quintiles included) a build of every customer gives; the scoring cutoff keeps all."""
    import shutil

    full = Settings(warehouse=tmp_path / "full.duckdb")
    shutil.copy(built.warehouse, full.warehouse)
    run_dbt(
        full,
        ["run", "--select", SAMPLE_AND_FEATURES],
        dbt_vars={**DBT_VARS, **{k: None for k in SAMPLE_VARS}},
    )
    sampled = Settings(warehouse=tmp_path / "sampled.duckdb")
    shutil.copy(built.warehouse, sampled.warehouse)
    run_dbt(sampled, ["run", "--select", SAMPLE_AND_FEATURES], dbt_vars={**DBT_VARS, **SAMPLE_VARS})

    every = read(full, "select * from marts.fct_training_examples")
    sample = read(sampled, "select * from marts.fct_training_examples")
    assert (every["sample_weight"] == 1.0).all()
    keys = ["customer_id", "product_group", "as_of_date"]
    joined = sample.merge(every, on=keys, suffixes=("", "_full"), validate="one_to_one")
    assert len(joined) == len(sample) < len(every) / 2
    for column in every.columns.drop([*keys, "sample_weight"]):
        assert (joined[column] == joined[f"{column}_full"]).all(), column

    # Features of a training cutoff: the sampled customers only, each row as in the full build.
    features = {
        name: read(settings, "select * from marts.fct_customer_features")
        for name, settings in (("full", full), ("sampled", sampled))
    }
    per_cutoff = {
        name: frame.groupby("as_of_date")["customer_id"].apply(set)
        for name, frame in features.items()
    }
    sampled_customers = sample.groupby("as_of_date")["customer_id"].apply(set)
    for cutoff in TRAINING_CUTOFFS:
        day = pd.Timestamp(cutoff)
        assert per_cutoff["sampled"][day] == sampled_customers[day], cutoff
        assert len(per_cutoff["sampled"][day]) < len(per_cutoff["full"][day]) / 2, cutoff
    scoring_day = pd.Timestamp(SCORING_CUTOFF)
    assert per_cutoff["sampled"][scoring_day] == per_cutoff["full"][scoring_day]
    pd.testing.assert_frame_equal(
        features["sampled"].sort_values(["as_of_date", "customer_id"]).reset_index(drop=True),
        features["full"]
        .merge(features["sampled"][["customer_id", "as_of_date"]])
        .sort_values(["as_of_date", "customer_id"])
        .reset_index(drop=True),
        check_exact=False,
        rtol=1e-12,
    )

    strata = every.groupby(["product_group", "as_of_date"]).agg(
        rows=("label", "size"), positives=("label", "sum"), split=("split", "first")
    )
    sample["weighted_label"] = sample["sample_weight"] * sample["label"]
    got = sample.groupby(["product_group", "as_of_date"]).agg(
        rows=("label", "size"),
        positives=("label", "sum"),
        weight=("sample_weight", "sum"),
        weighted_positives=("weighted_label", "sum"),
    )
    both = strata.join(got.add_suffix("_sample"))
    assert np.allclose(both["weight_sample"], both["rows"], rtol=1e-9)
    train = both[both["split"] == "train"]
    # train strata are per label: their weighted positives are the positives, exactly
    assert np.allclose(train["weighted_positives_sample"], train["positives"], rtol=1e-9)
    # Bernoulli samples: about the sizes asked for (all positives when there are fewer)
    positives_kept = train["positives_sample"] / np.minimum(train["positives"], 15)
    assert positives_kept.between(0.5, 1.5).all() and positives_kept.mean() == pytest.approx(
        1, abs=0.2
    )
    negatives = (train["rows_sample"] - train["positives_sample"]) / 60
    assert negatives.between(0.6, 1.4).all()
    evaluation = both[both["split"] != "train"]
    assert (evaluation["rows_sample"] / 150).between(0.8, 1.2).all()
    rate = evaluation["positives"] / evaluation["rows"]
    error = np.sqrt(rate * (1 - rate) / evaluation["rows_sample"])
    assert (
        abs(evaluation["weighted_positives_sample"] / evaluation["rows"] - rate) < 4 * error
    ).all()
    # one weight per evaluation cutoff and group: a uniform sample
    assert (
        sample[sample["split"] != "train"]
        .groupby(["product_group", "as_of_date"])["sample_weight"]
        .nunique()
        == 1
    ).all()

    run_dbt(sampled, ["run", "--select", SAMPLE_AND_FEATURES], dbt_vars={**DBT_VARS, **SAMPLE_VARS})
    again = read(sampled, "select * from marts.fct_training_examples order by all")
    pd.testing.assert_frame_equal(
        sample.drop(columns="weighted_label")
        .sort_values(list(sample.columns.drop("weighted_label")))
        .reset_index(drop=True),
        again,
        check_exact=True,
    )


def test_a_scoring_only_run_keeps_the_training_sample_and_its_features(built, tmp_path):
    """A run of the features and everything upstream for the scoring cutoff only (var
    feature_cutoff_roles: [scoring], as a scheduler might select it instead of the daily
    selector) leaves the stored sample and the training cutoffs' features as they were."""
    import shutil

    settings = Settings(warehouse=tmp_path / "wh.duckdb")
    shutil.copy(built.warehouse, settings.warehouse)
    training = "select * from marts.fct_customer_features where as_of_date < ? order by all"
    first_scoring = dt.date.fromisoformat(SCORING_CUTOFF)
    before = {
        "sample": read(settings, "select * from intermediate.int_training_sample order by all"),
        "features": read(settings, training, [first_scoring]),
    }
    assert len(before["sample"]) > 0
    run_dbt(
        settings,
        ["run", "--select", "+fct_customer_features", "+fct_customer_group_features"],
        dbt_vars={**DBT_VARS, "feature_cutoff_roles": ["scoring"]},
    )
    pd.testing.assert_frame_equal(
        read(settings, "select * from intermediate.int_training_sample order by all"),
        before["sample"],
    )
    pd.testing.assert_frame_equal(read(settings, training, [first_scoring]), before["features"])


@pytest.mark.parametrize(
    ("dbt_vars", "message"),
    [
        ({"horizon_days": 0}, "horizon_days must be >= 1"),
        ({"training_cutoffs": []}, "training_cutoffs is an empty list"),
        ({"training_cutoffs": ["2024-02-01"]}, "Every date in dbt var training_cutoffs is too"),
    ],
)
def test_invalid_cutoff_configuration_fails_with_a_message(tmp_path, dbt_vars, message):
    from models_py._errors import DbtRunError

    settings = write_tiny_warehouse(tmp_path / "wh.duckdb")
    with pytest.raises(DbtRunError) as err:
        run_dbt(
            settings,
            ["build", "--select", "+dim_cutoffs"],
            dbt_vars={**DBT_VARS, **dbt_vars},
        )
    assert message in str(err.value)


def test_benchmark_pandas_baseline_computes_the_catalogue_features(built):
    """benchmarks/bench_features.py takes its windows from the feature catalogue and raises when
    its pandas features differ from it; run on this warehouse, it computes the same values."""
    import importlib.util

    import duckdb

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_features.py"
    spec = importlib.util.spec_from_file_location("bench_features", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    con = duckdb.connect(str(built.warehouse), read_only=True)
    try:
        feats, _ = bench.pandas_features(con, pd.Timestamp(SCORING_CUTOFF))
    finally:
        con.close()
    sql = read(
        built, "select * from marts.fct_customer_features where as_of_date = ?", [SCORING_CUTOFF]
    ).set_index("customer_id")
    columns = ["order_count", "spend_total", "spend_90d", "items_30d", "btyd_frequency"]
    pd.testing.assert_frame_equal(
        feats.loc[sql.index, columns], sql[columns], check_dtype=False, atol=1e-6
    )


def test_cutoffs_closer_than_the_horizon_are_purged_between_splits(tmp_path):
    """Weekly cutoffs with a 30-day label: a train or validation cutoff whose label window
    reaches past the first cutoff of the later split would label rows with purchases that split's
    features already see; such cutoffs get no role, the others keep theirs."""
    settings = write_tiny_warehouse(tmp_path / "wh.duckdb")
    weekly = [dt.date(2023, 10, 2) + dt.timedelta(days=7 * k) for k in range(14)]
    dbt_vars = {
        **DBT_VARS,
        "training_cutoffs": [d.isoformat() for d in weekly],
        "test_cutoffs": 1,
        "validation_cutoffs": 2,
    }
    run_dbt(settings, ["run", "--select", "+dim_cutoffs"], dbt_vars=dbt_vars)
    rows = read(settings, "select as_of_date, cutoff_role from marts.dim_cutoffs")
    roles: dict[str, list[dt.date]] = {}
    for as_of, role in rows.itertuples(index=False):
        roles.setdefault(role, []).append(pd.Timestamp(as_of).date())
    assert roles["test"] == [dt.date(2024, 1, 1)]
    # The two newest cutoffs whose 30-day windows end by the test cutoff ...
    assert sorted(roles["validation"]) == [dt.date(2023, 11, 20), dt.date(2023, 11, 27)]
    # ... and the train cutoffs whose windows end by the first validation cutoff.
    assert sorted(roles["train"]) == [
        dt.date(2023, 10, 2),
        dt.date(2023, 10, 9),
        dt.date(2023, 10, 16),
    ]
    # The other 8 dates overlap a later split and get no role.
    assert len(rows) == 1 + 2 + 3 + 1
