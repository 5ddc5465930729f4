"""The generator's `email_fatigue` regime shift: nothing before it changes (order ids of every
chunk included), the email features and the purchases move after it as documented, the latent
and the observable oracle follow the new regime, bad input is refused."""

from __future__ import annotations

import datetime as dt
import hashlib
from contextlib import closing

import duckdb
import numpy as np
import pyarrow.compute as pc
import pytest

from models_py._errors import ConfigError, InputDataError
from models_py._warehouse import connect
from models_py.ingest.synth import generate_warehouse
from models_py.ingest.synth._posterior import (
    generator_parts,
    load_observed,
    observable_oracle,
    posterior_probabilities,
)
from models_py.ingest.synth._simulate import BEHAVIOUR, SHIFT_KINDS, SHIFTS

CUSTOMERS = 3_000
SEED = 5
DAYS = 400
END = dt.date(2026, 10, 1)
SHIFT_AT = END - dt.timedelta(days=100)  # 2026-06-23; the experiment window starts 2026-08-02
CHUNK = 1_000  # three chunks: order ids of the new regime follow all of the unshifted ones
KIND = "email_fatigue"

#: sha256 (first 16 hex digits) of every table, rows ordered, floats rounded to 9 decimals, of
#: generate_warehouse(customers=1500, seed=5, days=400, chunk_size=600) on main before regime
#: shifts existed (commit 55f7039, numpy 2.4): without a shift the generator writes exactly this.
UNSHIFTED_DIGESTS = {
    "customers": "cedbec02d59183c6",
    "orders": "c694fc2b14725f9f",
    "order_lines": "f419412192ade82b",
    "products": "e1099c2a680e8858",
    "email_events": "ee2cacb7667b502d",
    "treatments": "7713631cf7e0697d",
    "product_group_rules": "e6f925130238f52c",
    "oracle_propensity": "5062763d547b9d0f",
    "oracle_treatment_effect": "a63059879194b27d",
    "oracle_customer_state": "fb5ca81ed72339ab",
}
#: Tables that gained columns since (the money columns of the offer oracle): their digest covers
#: the columns pinned above, which must not change.
PINNED_COLUMNS = {
    "oracle_treatment_effect": (
        "customer_id, experiment_id, arm, baseline_probability, treated_probability, effect"
    ),
    # the optional discount_pct column came later (offers); the pinned rows are the same
    "treatments": "* exclude (discount_pct)",
}


def _digest(con, table: str) -> str:
    h = hashlib.sha256()
    columns = PINNED_COLUMNS.get(table, "*")
    cur = con.execute(f"select {columns} from raw.{table} order by all")
    while rows := cur.fetchmany(10_000):
        for row in rows:
            h.update(repr(tuple(round(v, 9) if isinstance(v, float) else v for v in row)).encode())
    return h.hexdigest()[:16]


def test_without_a_shift_the_warehouse_is_what_it_was_before_shifts(tmp_path):
    path = tmp_path / "wh.duckdb"
    generate_warehouse(path, customers=1_500, seed=5, days=400, chunk_size=600)
    con = connect(path, read_only=True)
    try:
        digests = {table: _digest(con, table) for table in UNSHIFTED_DIGESTS}
        tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    finally:
        con.close()
    assert digests == UNSHIFTED_DIGESTS
    assert "oracle_regime_shift" not in tables


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory):
    root = tmp_path_factory.mktemp("shift")
    args = {"customers": CUSTOMERS, "seed": SEED, "days": DAYS, "chunk_size": CHUNK}
    unshifted = root / "unshifted.duckdb"
    shifted = root / "shifted.duckdb"
    generate_warehouse(unshifted, **args)
    report = generate_warehouse(shifted, shift_at=SHIFT_AT, shift=KIND, **args)
    return unshifted, shifted, report


@pytest.fixture(scope="module")
def con(warehouses):
    """The shifted warehouse (`s`), with the unshifted one attached as `u`."""
    unshifted, shifted, _ = warehouses
    con = duckdb.connect()
    con.execute(f"attach '{shifted}' as s (read_only)")
    con.execute(f"attach '{unshifted}' as u (read_only)")
    yield con
    con.close()


def _difference(con, sql: str) -> tuple[float, float, int]:
    """Shares of the rows of the unshifted result not in the shifted one and the other way
    round, and the rows of the shifted one."""
    u, s = sql.format(db="u"), sql.format(db="s")
    only_u = con.execute(f"select count(*) from (({u}) except all ({s}))").fetchone()[0]
    only_s = con.execute(f"select count(*) from (({s}) except all ({u}))").fetchone()[0]
    rows_u = con.execute(f"select count(*) from ({u})").fetchone()[0]
    rows_s = con.execute(f"select count(*) from ({s})").fetchone()[0]
    return only_u / max(rows_u, 1), only_s / max(rows_s, 1), rows_s


@pytest.mark.parametrize(
    "sql",
    [
        "select * from {db}.raw.customers",
        "select * from {db}.raw.products",
        "select * from {db}.raw.product_group_rules",
        "select * from {db}.raw.treatments",
        "select * from {db}.raw.oracle_customer_state",
        # Order ids included: the new regime's orders take ids after all the unshifted ones.
        "select * from {db}.raw.orders as o inner join {db}.raw.order_lines as l "
        "using (order_id) where o.ordered_at < date '2026-06-23'",
        "select * from {db}.raw.email_events where occurred_at < date '2026-06-23'",
        "select * from {db}.raw.oracle_propensity where as_of_date + 30 <= date '2026-06-23'",
    ],
)
def test_nothing_before_the_shift_changes(con, sql):
    only_unshifted, only_shifted, rows = _difference(con, sql)
    assert rows > 0
    assert (only_unshifted, only_shifted) == (0, 0)


@pytest.mark.parametrize(
    ("sql", "share"),
    [
        # Purchases are thinned (f < 1) or added to (f > 1): the kept ones are the same rows.
        ("select * from {db}.raw.orders where ordered_at >= date '2026-06-23'", 0.1),
        # The weekly campaigns stop; the new programme's emails are all new.
        ("select * from {db}.raw.email_events where occurred_at >= date '2026-06-23'", 0.8),
    ],
)
def test_what_follows_the_shift_changes(con, sql, share):
    only_unshifted, only_shifted, _ = _difference(con, sql)
    assert only_unshifted > share and only_shifted > share


def test_orders_keep_unique_ids_and_their_lines(con):
    n, distinct, max_id = con.execute(
        "select count(*), count(distinct order_id), max(order_id) from s.raw.orders"
    ).fetchone()
    assert n == distinct
    max_unshifted = con.execute("select max(order_id) from u.raw.orders").fetchone()[0]
    # New ids follow the unshifted ones, and are all orders of the new regime (or their returns).
    new_before = con.execute(
        "select count(*) from s.raw.orders where order_id > ? and ordered_at < ?",
        [max_unshifted, SHIFT_AT],
    ).fetchone()[0]
    assert max_id > max_unshifted and new_before == 0
    orphans = con.execute(
        "select (select count(*) from s.raw.order_lines anti join s.raw.orders using (order_id)),"
        " (select count(*) from s.raw.orders anti join s.raw.order_lines using (order_id))"
    ).fetchone()
    assert orphans == (0, 0)


EMAIL_SQL = """
with sends as (
    select customer_id, count(*) filter (where event_type = 'sent') as sends,
        count(*) filter (where event_type = 'open') as opens
    from {db}.raw.email_events
    where occurred_at >= $cutoff - interval 30 day and occurred_at < $cutoff
    group by customer_id
)

select c.customer_id, coalesce(sends.sends, 0) as sends, coalesce(sends.opens, 0) as opens
from {db}.raw.customers as c
left join sends using (customer_id)
where c.created_at < $cutoff and c.email_opt_in
order by c.customer_id
"""


@pytest.mark.parametrize("days_after", [-21, -7, 0, 7, 14, 42])
def test_email_features_move_after_the_shift_and_not_before(con, days_after):
    """email_sends_30d and the open rate as the features compute them (events in [T - 30, T))."""
    cutoff = SHIFT_AT + dt.timedelta(days=days_after)
    u = con.execute(EMAIL_SQL.format(db="u"), {"cutoff": cutoff}).fetchnumpy()
    s = con.execute(EMAIL_SQL.format(db="s"), {"cutoff": cutoff}).fetchnumpy()
    if days_after <= 0:
        for column in ("customer_id", "sends", "opens"):
            np.testing.assert_array_equal(s[column], u[column])
        return
    # Every 2 days to every opted-in customer instead of weekly to 35 %: out of the old range.
    assert s["sends"].mean() > 2.5 * u["sends"].mean()
    above_old_range = np.mean(s["sends"] > u["sends"].max())
    assert above_old_range > (0.3 if days_after >= 14 else 0.05)
    # Fewer opens per email (fatigue), though more emails.
    assert s["opens"].sum() / s["sends"].sum() < 0.7 * u["opens"].sum() / u["sends"].sum()


PURCHASES_SQL = """
with purchases as (
    select o.customer_id, count(*) as n
    from {db}.raw.orders as o
    where o.ordered_at >= $shift
        and exists (
            select 1 from {db}.raw.order_lines as l where l.order_id = o.order_id and l.quantity > 0
        )
        and o.ordered_at <> (select c.created_at from {db}.raw.customers as c
            where c.customer_id = o.customer_id)
    group by all
)

select
    c.email_opt_in,
    state.engagement,
    coalesce(purchases.n, 0) as n
from {db}.raw.customers as c
inner join {db}.raw.oracle_customer_state as state using (customer_id)
left join purchases using (customer_id)
order by c.customer_id
"""


def test_purchases_move_from_the_engaged_to_the_disengaged_opted_in_customers(con):
    u = con.execute(PURCHASES_SQL.format(db="u"), {"shift": SHIFT_AT}).fetchnumpy()
    s = con.execute(PURCHASES_SQL.format(db="s"), {"shift": SHIFT_AT}).fetchnumpy()
    z, opted_in = u["engagement"], u["email_opt_in"]

    def ratio(mask: np.ndarray) -> float:
        return s["n"][mask].sum() / u["n"][mask].sum()

    # f = exp(-(z + 0.15)): about 0.3 above z = 1, above 2 below z = -1 (purchase-weighted).
    assert ratio(opted_in & (z > 1.0)) < 0.45
    assert ratio(opted_in & (z < -1.0)) > 1.8
    assert 0.85 < ratio(~opted_in) < 1.15  # a new random draw of the same process


def _shift_factor(con) -> tuple[np.ndarray, np.ndarray]:
    r = con.execute(
        "select f.customer_id, f.purchase_rate_factor, c.email_opt_in, s.engagement "
        "from s.raw.oracle_regime_shift as f "
        "inner join s.raw.customers as c using (customer_id) "
        "inner join s.raw.oracle_customer_state as s using (customer_id) order by customer_id"
    ).fetchnumpy()
    g, a = SHIFTS[KIND].engagement_on_rate, BEHAVIOUR.engagement_on_rate
    expected = np.where(r["email_opt_in"], np.exp(-g * (r["engagement"] + g / 2 - a)), 1.0)
    return r["purchase_rate_factor"], expected


def test_shift_table_holds_the_documented_purchase_rate_factor(con, warehouses):
    factor, expected = _shift_factor(con)
    assert len(factor) == CUSTOMERS
    np.testing.assert_allclose(factor, expected, rtol=1e-12)
    kinds = con.execute("select distinct shift, shift_at from s.raw.oracle_regime_shift").fetchall()
    assert kinds == [(KIND, SHIFT_AT)]
    report = warehouses[2]
    assert (report.shift, report.shift_at) == (KIND, SHIFT_AT)
    assert f"regime shift {KIND!r} from {SHIFT_AT}" in report.summary()


ORACLE_PAIRS_SQL = """
select s.as_of_date, s.customer_id, s.probability as p_shifted, u.probability as p_unshifted,
    f.purchase_rate_factor as factor
from s.raw.oracle_propensity as s
inner join u.raw.oracle_propensity as u using (customer_id, product_group, as_of_date)
inner join s.raw.oracle_regime_shift as f using (customer_id)
where s.as_of_date + 30 > $shift and u.probability < 0.999999
"""


def test_oracle_after_the_shift_is_the_documented_effect(con):
    """Purchases in a window after the shift are Poisson with f times the old mean:
    -log(1 - p) scales by f; a window straddling the shift scales by a number between 1 and f."""
    r = con.execute(ORACLE_PAIRS_SQL, {"shift": SHIFT_AT}).fetchnumpy()
    after = r["as_of_date"] >= np.datetime64(SHIFT_AT)
    assert after.sum() > 0 and (~after).sum() > 0
    old, new, f = -np.log1p(-r["p_unshifted"]), -np.log1p(-r["p_shifted"]), r["factor"]
    np.testing.assert_allclose(new[after], f[after] * old[after], rtol=1e-9, atol=1e-15)
    s = ~after  # straddling: only the part of the window after the shift is scaled
    lo, hi = np.minimum(1.0, f[s]) * old[s], np.maximum(1.0, f[s]) * old[s]
    assert np.all((new[s] >= lo * (1 - 1e-9)) & (new[s] <= hi * (1 + 1e-9)))
    moved = (np.abs(f[s] - 1) > 0.1) & (old[s] > 0)
    strictly = (new[s] > lo * (1 + 1e-6)) & (new[s] < hi * (1 - 1e-6))
    assert strictly[moved].mean() > 0.9


def test_treatment_effect_follows_the_new_regime(con):
    """The experiment window (2026-08-02 .. 2026-09-01) lies after the shift."""
    r = con.execute(
        "select s.baseline_probability as b_s, u.baseline_probability as b_u, "
        "s.treated_probability / nullif(s.baseline_probability, 0) as lift_s, "
        "f.purchase_rate_factor as factor "
        "from s.raw.oracle_treatment_effect as s "
        "inner join u.raw.oracle_treatment_effect as u using (customer_id, experiment_id, arm) "
        "inner join s.raw.oracle_regime_shift as f using (customer_id)"
    ).fetchnumpy()
    np.testing.assert_allclose(
        -np.log1p(-r["b_s"]), r["factor"] * -np.log1p(-r["b_u"]), rtol=1e-9, atol=1e-15
    )


LABELS_SQL = """
with purchases as (
    select distinct o.customer_id, cutoffs.as_of_date
    from s.raw.orders as o
    inner join s.raw.order_lines as l on o.order_id = l.order_id and l.quantity > 0
    inner join (select distinct as_of_date from s.raw.oracle_propensity) as cutoffs
        on o.ordered_at >= cutoffs.as_of_date
        and o.ordered_at < cutoffs.as_of_date + interval 30 day
)

select p.probability, f.purchase_rate_factor as factor, purchases.customer_id is not null as y
from s.raw.oracle_propensity as p
inner join s.raw.oracle_regime_shift as f using (customer_id)
left join purchases using (customer_id, as_of_date)
where p.product_group = 'any' and p.as_of_date >= $shift and p.as_of_date < $end
"""


def test_oracle_after_the_shift_is_calibrated_against_the_realised_purchases(con):
    """The simulation of the new regime and its oracle agree, overall and where f moves most."""
    r = con.execute(LABELS_SQL, {"shift": SHIFT_AT, "end": END}).fetchnumpy()
    p, y, f = r["probability"], r["y"], r["factor"]
    for part in (np.ones(len(p), dtype=bool), f < 0.5, (f >= 0.5) & (f <= 1.5), f > 1.5):
        expected = p[part].sum()
        z = (y[part].sum() - expected) / np.sqrt((p[part] * (1 - p[part])).sum())
        assert expected > 30 and abs(z) < 4, (part.sum(), y[part].sum(), expected)


def test_observable_oracle_needs_the_regime_the_warehouse_was_generated_with(warehouses):
    unshifted, shifted, _ = warehouses
    cutoff = SHIFT_AT + dt.timedelta(days=10)
    with pytest.raises(InputDataError, match="with regime shift 'email_fatigue' from 2026-06-23"):
        observable_oracle(shifted, cutoff=cutoff, seed=SEED, days=DAYS)
    with pytest.raises(InputDataError, match="with no regime shift"):
        observable_oracle(
            unshifted, cutoff=cutoff, seed=SEED, days=DAYS, shift_at=SHIFT_AT, shift=KIND
        )
    # The other kinds are not modelled after the shift (before it they are: nothing differs).
    with pytest.raises(InputDataError, match="does not model a regime shift of kind 'migration'"):
        observable_oracle(unshifted, cutoff=cutoff, seed=SEED, days=DAYS, shift_at=SHIFT_AT)


OBSERVABLE_CUTOFF = dt.date(2026, 7, 3)  # an oracle cutoff 10 days after the shift


def test_observable_oracle_follows_the_new_regime(warehouses, con):
    """E[latent oracle | observations] = observable oracle, also where the shift moves purchases
    most; the posterior of the old regime (same observations) overestimates the engaged."""
    _, shifted, _ = warehouses
    table = observable_oracle(
        shifted, cutoff=OBSERVABLE_CUTOFF, seed=SEED, days=DAYS, shift_at=SHIFT_AT, shift=KIND
    )
    calendar, catalog = generator_parts(seed=SEED, end_date=END, days=DAYS)
    with closing(connect(shifted, read_only=True)) as wh:
        obs = load_observed(wh, cutoff=OBSERVABLE_CUTOFF, calendar=calendar, catalog=catalog)
    old = posterior_probabilities(
        obs, cutoff=OBSERVABLE_CUTOFF, calendar=calendar, catalog=catalog, seed=SEED
    )[:, catalog.groups.index("any")]
    latent = con.execute(
        "select probability from s.raw.oracle_propensity "
        "where as_of_date = ? and product_group = 'any' order by customer_id",
        [OBSERVABLE_CUTOFF],
    ).fetchnumpy()
    any_rows = table.filter(pc.equal(table["product_group"], "any"))
    new = any_rows["probability"].to_numpy()
    np.testing.assert_array_equal(any_rows["customer_id"].to_numpy(), obs.customer_id)
    p = latent["probability"]
    # Tower property on observable parts: all, the opted-in (whom the shift touches), the top
    # 40 % by the observable oracle. The old regime's posterior overestimates them (by 9-16 %).
    top = new >= np.quantile(new, 0.6)
    for part in (p >= 0, obs.opt_in, top):
        expected = p[part].sum()
        assert abs(new[part].sum() / expected - 1) < 0.04, (part.sum(), expected)
        assert old[part].sum() / expected - 1 > 0.06


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shift_at": END - dt.timedelta(days=DAYS)}, "outside the history"),
        ({"shift_at": dt.date(2020, 1, 1)}, "outside the history"),
        ({"shift_at": END + dt.timedelta(days=40)}, "outside the history"),
        ({"shift_at": "2026-06-01"}, "shift_at must be a date"),
        ({"shift_at": SHIFT_AT, "shift": "price_crash"}, "unknown shift kind 'price_crash'"),
        ({"shift": "nope"}, "known: " + ", ".join(SHIFT_KINDS)),
        ({"end_date": dt.datetime(2026, 10, 1)}, "end_date must be a date"),
    ],
)
def test_bad_shift_arguments_raise_config_error(tmp_path, kwargs, message):
    path = tmp_path / "wh.duckdb"
    with pytest.raises(ConfigError, match=message):
        generate_warehouse(path, customers=100, seed=0, days=DAYS, **kwargs)
    assert not path.exists()


def test_observable_column_with_a_shift_and_regenerating_without_one(tmp_path):
    path = tmp_path / "wh.duckdb"
    shift_at = END - dt.timedelta(days=50)
    generate_warehouse(
        path, customers=200, days=200, shift_at=shift_at, shift=KIND, observable_cutoffs=1
    )
    with closing(connect(path, read_only=True)) as con:
        filled = con.execute(
            "select as_of_date, count(observable_probability) from raw.oracle_propensity "
            "where observable_probability is not null group by all"
        ).fetchall()
    assert len(filled) == 1 and filled[0][0] == END - dt.timedelta(days=30) and filled[0][1] > 0
    generate_warehouse(path, customers=200, days=200)
    with closing(connect(path, read_only=True)) as con:
        tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    assert "orders" in tables and "oracle_regime_shift" not in tables


def test_cli_generate_with_a_shift(tmp_path, capsys):
    from models_py.cli import main

    wh = tmp_path / "wh.duckdb"
    args = ["--warehouse", str(wh), "generate", "--customers", "200", "--days", "200"]
    dates = ["--end-date", "2026-03-01", "--shift-at", "2026-02-01"]
    assert main([*args, *dates, "--shift", "email_fatigue"]) == 0
    out = capsys.readouterr().out
    assert "history 2025-08-13 .. 2026-02-28" in out
    assert "regime shift 'email_fatigue' from 2026-02-01" in out

    assert main([*args, "--shift", "email_fatigue"]) != 0
    assert "--shift needs --shift-at" in capsys.readouterr().err
    assert main([*args, "--shift-at", "2026-02-01", "--shift", "nope"]) != 0
    assert "unknown shift kind 'nope'" in capsys.readouterr().err
    assert main([*args, "--shift-at", "2027-01-01"]) != 0
    assert "outside the history" in capsys.readouterr().err
