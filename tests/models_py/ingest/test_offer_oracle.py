"""The offer oracle of the synthetic generator: the expected value of a purchase agrees with the
simulated orders, the experiment's realised purchases, revenue and margin agree with the money
columns of raw.oracle_treatment_effect, raw.oracle_offer_effects has the documented shape and
effects, and no table that existed before changes."""

from __future__ import annotations

import datetime as dt
import hashlib

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from models_py.ingest.synth import generate_warehouse
from models_py.ingest.synth._calendar import SECONDS_PER_DAY, build_calendar
from models_py.ingest.synth._catalog import build_catalog
from models_py.ingest.synth._posterior import generator_parts
from models_py.ingest.synth._simulate import (
    ARMS,
    BEHAVIOUR,
    SHIFT_STREAM_KEY,
    SHIFTS,
    draw_customers,
    purchase_value,
    simulate_orders,
)

CUSTOMERS = 20_000
SEED = 21
DAYS = 200
END = dt.date(2026, 10, 1)
CHUNK = 8_000  # three chunks
EXPERIMENT_START = END - dt.timedelta(days=60)
#: Inside the experiment window [2026-08-02, 2026-09-01): its expected money straddles the shift.
SHIFT_AT = dt.date(2026, 8, 17)
SHIFT_KIND = "price_cut"  # prices x 0.7, the price-sensitive half buys 4 times as often
WAREHOUSES = {"plain": {}, "shifted": {"shift_at": SHIFT_AT, "shift": SHIFT_KIND}}

#: Columns of raw.oracle_treatment_effect before its money columns were added.
OLD_TREATMENT_COLUMNS = (
    "customer_id, experiment_id, arm, baseline_probability, treated_probability, effect"
)
#: sha256 (16 hex digits) of every table that existed before raw.oracle_offer_effects (rows
#: ordered, floats rounded to 9 decimals; raw.oracle_treatment_effect on its old columns), as
#: the generator wrote them before the offer oracle existed (commit 379145a, numpy 2.4).
DIGESTS = {
    "plain": {
        "customers": "e7a11c15f37e284c",
        "email_events": "7414ee689636de1c",
        "oracle_customer_state": "15f4d0404126dbce",
        "oracle_propensity": "e19403fea3363937",
        "oracle_treatment_effect": "e74ee9172a249985",
        "order_lines": "78807d3f01a820aa",
        "orders": "6cf12f85a02c1b88",
        "product_group_rules": "e6f925130238f52c",
        "products": "dbfa5fd2fc9c1726",
        "treatments": "ca60cbb4246ebb66",
    },
    "shifted": {
        "customers": "e7a11c15f37e284c",
        "email_events": "7414ee689636de1c",
        "oracle_customer_state": "15f4d0404126dbce",
        "oracle_propensity": "1341c0d43218ab28",
        "oracle_regime_shift": "d3f535d4fcda6559",
        "oracle_treatment_effect": "1292a9453467b825",
        "order_lines": "f74b2686f1979514",
        "orders": "8365f3938458876b",
        "product_group_rules": "e6f925130238f52c",
        "products": "dbfa5fd2fc9c1726",
        "treatments": "ca60cbb4246ebb66",
    },
}


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory):
    root = tmp_path_factory.mktemp("offer")
    paths = {}
    for name, kwargs in WAREHOUSES.items():
        paths[name] = root / f"{name}.duckdb"
        generate_warehouse(
            paths[name],
            customers=CUSTOMERS,
            seed=SEED,
            days=DAYS,
            end_date=END,
            chunk_size=CHUNK,
            oracle_cutoffs=1,
            **kwargs,
        )
    return paths


@pytest.fixture(scope="module", params=list(WAREHOUSES))
def wh(request, warehouses):
    """(name, connection) of a warehouse, its raw schema the default, with
    `list_prices(product_id, list_price)` of its catalogue (not in raw)."""
    con = duckdb.connect()
    con.execute(f"attach '{warehouses[request.param]}' as w (read_only)")
    con.execute("use w.raw")
    _, catalog = generator_parts(seed=SEED, end_date=END, days=DAYS)
    prices = pa.table({"product_id": list(catalog.product_id), "list_price": catalog.price})
    con.register("list_prices", prices)
    yield request.param, con
    con.close()


def _digest(con, table: str) -> str:
    columns = {
        "oracle_treatment_effect": OLD_TREATMENT_COLUMNS,
        "treatments": "* exclude (discount_pct)",  # the optional column added with the offers
    }.get(table, "*")
    h = hashlib.sha256()
    cur = con.execute(f"select {columns} from {table} order by all")
    while rows := cur.fetchmany(10_000):
        for row in rows:
            h.update(repr(tuple(round(v, 9) if isinstance(v, float) else v for v in row)).encode())
    return h.hexdigest()[:16]


def test_tables_that_existed_before_are_unchanged(wh):
    name, con = wh
    tables = {
        name
        for (name,) in con.execute(
            "select table_name from duckdb_tables() where database_name = 'w'"
        ).fetchall()
    }
    assert tables == set(DIGESTS[name]) | {"oracle_offer_effects"}
    assert {t: _digest(con, t) for t in DIGESTS[name]} == DIGESTS[name]


# ------------------------------------------------------------- the value of one purchase


@pytest.mark.parametrize("shift", [None, "price_rise"])
def test_expected_purchase_value_matches_simulated_orders(shift):
    """Mean list value and amount paid per simulated purchase, minus the expectation of the
    customer (and discount, and price factor) that made it, is 0 within 4 standard errors."""
    days, n = 200, 6_000
    shift_at = END - dt.timedelta(days=45) if shift else None
    cal = build_calendar(end_date=END, days=days, shift_at=shift_at, shift=shift or "migration")
    seq_catalog, seq = np.random.SeedSequence(3).spawn(2)
    catalog = build_catalog(np.random.default_rng(seq_catalog))
    rng = np.random.default_rng(seq)
    c = draw_customers(
        rng, first_id=1, n=n, calendar=cal, catalog=catalog, last_customer_on_last_day=True
    )
    # More customers in the experiment, and more purchases, for a tighter interval.
    c.rate *= 3.0
    shift_rng = None
    if shift:
        shift_rng = np.random.default_rng(
            np.random.SeedSequence(3, spawn_key=(SHIFT_STREAM_KEY, 0))
        )
    o = simulate_orders(
        rng, c, calendar=cal, catalog=catalog, first_order_id=1, shift_rng=shift_rng
    )
    buy = o.line_quantity > 0
    orders, line_of = np.unique(o.line_order_id[buy], return_inverse=True)
    qty = o.line_quantity[buy]
    list_price = catalog.price[o.line_product[buy]]
    by_id = dict(zip(o.order_id.tolist(), range(len(o.order_id)), strict=True))
    row = np.array([by_id[i] for i in orders.tolist()])
    cust = o.customer_id[row] - 1
    sec = o.seconds[row]
    factor = np.ones(len(orders))
    if shift:
        factor = np.where(sec >= cal.shift_day * SECONDS_PER_DAY, SHIFTS[shift].price_factor, 1.0)
    in_window = (sec >= cal.experiment_day * SECONDS_PER_DAY) & (
        sec < cal.experiment_end_day * SECONDS_PER_DAY
    )
    arm = np.where(in_window & (c.arm[cust] > 0), c.arm[cust], 0)
    list_value = np.bincount(line_of, weights=qty * list_price) * factor
    paid = np.bincount(line_of, weights=qty * o.line_price[buy])
    expected_list, expected_paid = np.zeros(len(orders)), np.zeros(len(orders))
    for f in np.unique(factor):
        for a in range(len(ARMS)):
            at = (factor == f) & (arm == a)
            lv, pv = purchase_value(c, catalog=catalog, price_factor=f, discount_pct=float(ARMS[a]))
            expected_list[at], expected_paid[at] = lv[cust[at]], pv[cust[at]]
    assert len(orders) > 50_000 and (arm > 0).sum() > 2_000
    if shift:
        assert (factor != 1.0).sum() > 5_000
    for realised, expected in ((list_value, expected_list), (paid, expected_paid)):
        diff = realised - expected
        z = diff.mean() / (diff.std() / np.sqrt(len(diff)))
        print(
            f"shift {shift}: mean {realised.mean():.3f} expected {expected.mean():.3f} z {z:+.2f}"
        )
        assert abs(z) < 4
    # The discounted purchases alone (the discount's rounding to the cent included).
    diff = (paid - expected_paid)[arm > 0]
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(len(diff))


# --------------------------------------------------- experiment: realised against the oracle


def _assert_margin_model(revenue, margin, discount, *, exact: bool) -> None:
    """margin = revenue x (margin_rate - d) / (1 - d): exact without discount and price factor
    (list prices are whole cents); otherwise the cent rounding of the price paid (at most half a
    cent on a unit of at least 0.39) moves it by less than 1 % of the revenue."""
    m = BEHAVIOUR.margin_rate
    model = revenue * (m - discount) / (1 - discount)
    if exact and np.all(discount == 0):
        np.testing.assert_allclose(margin, model, rtol=1e-12, atol=1e-300)
    assert np.all(np.abs(margin - model) <= 0.01 * revenue + 1e-12)
    worst = np.max(np.abs(margin - model) / np.maximum(revenue, 1e-300))
    print(f"margin model: largest deviation {worst:.2e} of the revenue")


REALISED_SQL = """
with lines as (
    select
        o.customer_id,
        l.quantity * l.unit_price as paid,
        l.quantity * p.list_price * (
            case when o.ordered_at >= $shift_at then $price_factor else 1.0 end
        ) as list_value
    from orders as o
    inner join order_lines as l on o.order_id = l.order_id
    inner join list_prices as p on l.product_id = p.product_id
    where l.quantity > 0 and o.ordered_at >= $start and o.ordered_at < $start + interval 30 day
),

per_customer as (
    select
        customer_id,
        sum(paid) as revenue,
        sum(paid) - (1 - $margin_rate) * sum(list_value) as margin
    from lines
    group by customer_id
)

select
    t.arm,
    (r.customer_id is not null)::int as bought,
    coalesce(r.revenue, 0) as revenue,
    coalesce(r.margin, 0) as margin,
    case t.arm when '0' then e.baseline_probability else e.treated_probability end as p,
    case t.arm when '0' then e.baseline_revenue else e.treated_revenue end as e_revenue,
    case t.arm when '0' then e.baseline_margin else e.treated_margin end as e_margin
from treatments as t
left join per_customer as r on t.customer_id = r.customer_id
inner join oracle_treatment_effect as e
    on t.customer_id = e.customer_id
    and e.arm = case t.arm when '0' then '20' else t.arm end
"""


def test_experiment_outcomes_agree_with_the_oracle(wh):
    name, con = wh
    shifted = name == "shifted"
    r = con.execute(
        REALISED_SQL,
        {
            "start": EXPERIMENT_START,
            "shift_at": SHIFT_AT if shifted else END,
            "price_factor": SHIFTS[SHIFT_KIND].price_factor if shifted else 1.0,
            "margin_rate": BEHAVIOUR.margin_rate,
        },
    ).fetchnumpy()
    for arm in ARMS:
        at = r["arm"] == arm
        n = int(at.sum())
        assert n > 1_000
        for realised, expected in (
            (r["bought"][at], r["p"][at]),
            (r["revenue"][at], r["e_revenue"][at]),
            (r["margin"][at], r["e_margin"][at]),
        ):
            realised = realised.astype(float)
            se = np.sqrt(np.var(realised - expected) / n)
            print(
                f"{name} arm {arm}: realised {realised.mean():.4f} "
                f"oracle {expected.mean():.4f} z {(realised.mean() - expected.mean()) / se:+.2f}"
            )
            assert abs(realised.mean() - expected.mean()) < 4 * se
    # The margin model: margin = list value x (margin_rate - d) = revenue x (margin_rate - d) /
    # (1 - d), up to the rounding of the unit price paid to the cent.
    e = con.execute(
        "select arm, baseline_revenue, baseline_margin, treated_revenue, treated_margin "
        "from oracle_treatment_effect"
    ).fetchnumpy()
    d = e["arm"].astype(float) / 100
    for revenue, margin, discount in (
        (e["baseline_revenue"], e["baseline_margin"], 0.0),
        (e["treated_revenue"], e["treated_margin"], d),
    ):
        _assert_margin_model(revenue, margin, discount, exact=not shifted)


# ------------------------------------------------------------------- raw.oracle_offer_effects


def _offers(con) -> dict[str, np.ndarray]:
    """Per customer (sorted by id) and arm (columns '0', '20', '25')."""
    r = con.execute(
        "select o.*, s.price_sensitivity, s.churned_at, c.created_at "
        "from oracle_offer_effects as o "
        "inner join oracle_customer_state as s using (customer_id) "
        "inner join customers as c using (customer_id) "
        "order by customer_id, discount_pct"
    ).fetchnumpy()
    return {k: np.asarray(v).reshape(-1, len(ARMS)) for k, v in r.items()}


def test_offer_rows_one_per_customer_and_arm(wh):
    _, con = wh
    (n_before,) = con.execute(
        "select count(*) from customers where created_at < ?", [END]
    ).fetchone()
    rows = con.execute(
        "select customer_id, count(*), list(arm order by arm), "
        "min(as_of_date), max(as_of_date), list(discount_pct order by arm) "
        "from oracle_offer_effects group by customer_id"
    ).fetchall()
    assert len(rows) == n_before == CUSTOMERS
    for _, n, arms, lo, hi, discounts in rows:
        assert n == 3 and arms == list(ARMS) and lo == hi == END
        assert discounts == [0.0, 20.0, 25.0]
    (n_missing,) = con.execute(
        "select count(*) from customers left join oracle_offer_effects using (customer_id) "
        "where created_at < ? and oracle_offer_effects.customer_id is null",
        [END],
    ).fetchone()
    assert n_missing == 0


def test_offer_effects(wh):
    name, con = wh
    o = _offers(con)
    assert (o["arm"] == np.array(ARMS)).all()
    # Arm '0' is the reference: its effects are exactly 0.
    for col in ("p_purchase_effect", "revenue_effect", "margin_effect"):
        assert (o[col][:, 0] == 0.0).all()
    # The effects are differences to arm '0'.
    for col, effect in (
        ("p_purchase", "p_purchase_effect"),
        ("expected_revenue", "revenue_effect"),
        ("expected_margin", "margin_effect"),
    ):
        np.testing.assert_array_equal(o[effect], o[col] - o[col][:, :1])
    p = o["p_purchase"]
    np.testing.assert_allclose(p, -np.expm1(-o["expected_orders"]), rtol=1e-12)
    # More discount, more purchases: for every customer, strictly where it can buy and reacts.
    assert (np.diff(p, axis=1) >= 0).all()
    assert (np.diff(o["expected_orders"], axis=1) >= 0).all()
    reacts = (o["price_sensitivity"][:, 0] > 0) & (o["expected_orders"][:, 0] > 0)
    assert reacts.sum() > CUSTOMERS / 4
    assert (np.diff(o["expected_orders"][reacts], axis=1) > 0).all()
    # (p_purchase strictly too, unless it is 1 in floating point: a mean above 37 purchases.)
    distinct = reacts & (p[:, 0] > 1e-9) & (p[:, -1] < 1.0)
    assert (np.diff(p[distinct], axis=1) > 0).all()
    # A discount to a customer who does not react to it only gives margin away.
    alive = p[:, 0] > 0
    deaf = (o["price_sensitivity"][:, 0] == 0) & alive
    assert deaf.sum() > 100
    assert (o["margin_effect"][deaf, 1:] < 0).all()
    assert (o["expected_orders"][deaf, 1:] == o["expected_orders"][deaf, :1]).all()
    # Customers dead before the cutoff: nothing to gain or lose.
    dead = o["churned_at"][:, 0] < np.datetime64(END)
    assert dead.sum() > CUSTOMERS / 10
    for col in ("p_purchase", "expected_orders", "expected_revenue", "expected_margin"):
        assert (o[col][dead] == 0).all()
    assert (p[~dead, 0] > 0).all()
    for arm, discount in enumerate(ARMS):
        _assert_margin_model(
            o["expected_revenue"][:, arm],
            o["expected_margin"][:, arm],
            float(discount) / 100,
            exact=name == "plain",
        )


def test_offer_arm_0_is_the_oracle_probability_of_any_purchase(wh):
    _, con = wh
    r = con.execute(
        "select o.p_purchase, p.probability from oracle_offer_effects as o "
        "inner join oracle_propensity as p using (customer_id, as_of_date) "
        "where o.arm = '0' and p.product_group = 'any'"
    ).fetchnumpy()
    assert len(r["p_purchase"]) == CUSTOMERS
    np.testing.assert_allclose(r["p_purchase"], r["probability"], rtol=1e-9, atol=1e-15)


def test_some_but_not_most_customers_are_worth_a_discount(wh):
    """With the default knobs the margin-optimal arm is a discount for a minority: the policy
    problem is neither 'nobody' nor 'everybody'."""
    name, con = wh
    o = _offers(con)
    best = np.argmax(o["expected_margin"], axis=1)  # ties (dead customers) go to arm '0'
    share = float((best > 0).mean())
    alive = o["p_purchase"][:, 0] > 0
    gain = np.take_along_axis(o["margin_effect"], best[:, None], axis=1).sum()
    print(
        f"{name}: margin-optimal arm 20 or 25 for {share:.3f} of the customers "
        f"({(best[alive] > 0).mean():.3f} of those alive; arm 20 {(best == 1).mean():.3f}, "
        f"25 {(best == 2).mean():.3f}); optimal policy gains {gain:,.0f} margin over arm 0, "
        f"{o['margin_effect'][:, 1].sum():,.0f} for arm 20 to everyone"
    )
    assert 0.0 < share < 0.5
    assert gain > 0 > o["margin_effect"][:, 1].sum()


def test_treatments_carry_each_arms_discount(wh):
    """raw.treatments.discount_pct (optional raw column) is the arm's discount in percent."""
    _, con = wh
    rows = con.execute(
        "select arm, min(discount_pct), max(discount_pct), count(*) from treatments group by arm"
    ).fetchall()
    assert {r[0] for r in rows} == {"0", "20", "25"}
    for arm, low, high, n in rows:
        assert low == high == float(arm) and n > 100
