"""The synthetic warehouse: deterministic, plausible, passes the raw dbt tests, and its oracle
agrees with the orders it generated (calibration and discrimination against realised labels)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models_py._dbt import run_dbt
from models_py._errors import ConfigError
from models_py._settings import Settings
from models_py._warehouse import connect
from models_py.ingest.synth import generate_warehouse
from models_py.ingest.synth._catalog import group_membership
from models_py.ingest.synth._generate import GROUND_TRUTH_DDL
from models_py.ingest.synth._simulate import BEHAVIOUR

CUSTOMERS = 8_000
SEED = 11
END = dt.date(2026, 10, 1)
EXPERIMENT_START = END - dt.timedelta(days=60)
RAW_TABLES = (
    "customers",
    "orders",
    "order_lines",
    "products",
    "email_events",
    "treatments",
    "product_group_rules",
    *GROUND_TRUTH_DDL,
)

#: Realised labels per (cutoff, group, customer) with dbt's own product-group mapping.
LABELS_SQL = """
with cutoffs as (
    select distinct as_of_date from raw.oracle_propensity where as_of_date < ?
),

purchase_lines as (
    select orders.customer_id, orders.ordered_at, lines.product_id
    from raw.orders as orders
    inner join raw.order_lines as lines on orders.order_id = lines.order_id
    where lines.quantity > 0
),

events as (
    select distinct cutoffs.as_of_date, purchase_lines.customer_id, groups.product_group
    from cutoffs
    inner join purchase_lines
        on purchase_lines.ordered_at >= cutoffs.as_of_date
        and purchase_lines.ordered_at < cutoffs.as_of_date + interval 30 day
    inner join intermediate.int_products_mapped_to_groups as groups
        on purchase_lines.product_id = groups.product_id
)

select
    oracle.as_of_date,
    oracle.product_group,
    oracle.probability,
    events.customer_id is not null as label
from raw.oracle_propensity as oracle
left join events using (as_of_date, customer_id, product_group)
where oracle.as_of_date < ?
"""


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "wh.duckdb"
    report = generate_warehouse(path, customers=CUSTOMERS, seed=SEED, end_date=END)
    outcome = run_dbt(
        Settings(warehouse=path), ["build", "--select", "source:raw+", "--exclude", "marts"]
    )
    return path, report, outcome


@pytest.fixture(scope="module")
def con(warehouse):
    con = connect(warehouse[0], read_only=True)
    yield con
    con.close()


def _one(con, sql: str, params: list | None = None):
    rows = con.execute(sql, params or []).fetchall()  # read fully: duckdb 2 keeps partial results
    assert len(rows) == 1, sql
    return rows[0]


def test_report_and_raw_dbt_tests_pass(warehouse, con):
    _, report, outcome = warehouse
    assert outcome.success
    assert outcome.count("fail") == 0 and outcome.count("error") == 0
    assert outcome.count("pass") >= 15
    for table in RAW_TABLES:
        (n,) = _one(con, f"select count(*) from raw.{table}")
        assert report.rows[table] == n, table
    assert report.rows["customers"] == CUSTOMERS
    assert report.start_date == END - dt.timedelta(days=730)
    assert len(report.oracle_cutoffs) == 13 and report.oracle_cutoffs[0] == END
    text = report.summary()
    assert "raw.order_lines" in text and "seconds" not in text and " s" in text


def test_history_window_and_last_day(con):
    first, last = _one(con, "select min(ordered_at), max(ordered_at) from raw.orders")
    assert first >= dt.datetime(2024, 10, 1) and last < dt.datetime(2026, 10, 1)
    (last_purchase,) = _one(
        con,
        "select max(o.ordered_at) from raw.orders o join raw.order_lines l using (order_id) "
        "where l.quantity > 0",
    )
    assert last_purchase.date() == END - dt.timedelta(days=1)
    (n_email_after,) = _one(
        con, "select count(*) from raw.email_events where occurred_at >= ?", [END]
    )
    assert n_email_after == 0
    (created_before,) = _one(
        con, "select count(*) from raw.customers where created_at < timestamp '2024-10-01'"
    )
    assert created_before > 0.1 * CUSTOMERS
    (purchases_before_created,) = _one(
        con,
        "select count(*) from raw.orders o join raw.customers c using (customer_id) "
        "where o.ordered_at < c.created_at",
    )
    assert purchases_before_created == 0


def test_orders_are_purchases_or_returns_of_earlier_purchases(con):
    (mixed,) = _one(
        con,
        "select count(*) from (select order_id from raw.order_lines group by 1 "
        "having min(quantity) < 0 and max(quantity) > 0)",
    )
    assert mixed == 0
    (zero_qty,) = _one(con, "select count(*) from raw.order_lines where quantity = 0")
    assert zero_qty == 0
    # Every returned product was bought by the same customer in an earlier purchase.
    (orphans,) = _one(
        con,
        """
        with lines as (
            select o.customer_id, o.ordered_at, l.product_id, l.quantity
            from raw.orders o join raw.order_lines l using (order_id)
        )
        select count(*) from lines r
        where r.quantity < 0 and not exists (
            select 1 from lines p
            where p.customer_id = r.customer_id and p.product_id = r.product_id
              and p.quantity >= -r.quantity and p.ordered_at < r.ordered_at
        )
        """,
    )
    assert orphans == 0
    (dup,) = _one(
        con,
        "select count(*) from (select order_id, product_id from raw.order_lines "
        "group by all having count(*) > 1)",
    )
    assert dup == 0


def test_purchase_behaviour_is_heterogeneous_and_plausible(con):
    orders = con.execute(
        "select count(o.order_id) from raw.customers c left join raw.orders o using "
        "(customer_id) group by c.customer_id"
    ).fetchnumpy()
    n = next(iter(orders.values())).astype(float)
    assert n.std() / n.mean() > 1.0
    assert 0.05 < (n == 0).mean() < 0.6
    lines_per_customer = _one(con, "select count(*) from raw.order_lines")[0] / CUSTOMERS
    assert 15 < lines_per_customer < 40
    purchases, returns = _one(
        con,
        "select count(*) filter (where q > 0), count(*) filter (where q < 0) from "
        "(select order_id, max(quantity) as q from raw.order_lines group by 1)",
    )
    assert 0.03 < returns / (purchases + returns) < 0.12
    vip, regular = _one(
        con,
        """
        select
            avg(spend) filter (where is_vip), avg(spend) filter (where not is_vip)
        from (
            select c.customer_id, c.is_vip, coalesce(sum(l.quantity * l.unit_price), 0) as spend
            from raw.customers c
            left join raw.orders o using (customer_id)
            left join raw.order_lines l using (order_id)
            group by all
        )
        """,
    )
    assert vip > 2 * regular
    (negative_price,) = _one(con, "select count(*) from raw.order_lines where unit_price <= 0")
    assert negative_price == 0


def test_q4_peak(con):
    def per_day(lo: str, hi: str) -> float:
        (n,) = _one(
            con,
            "select count(*) from raw.orders where ordered_at >= ? and ordered_at < ?",
            [lo, hi],
        )
        return n / (dt.date.fromisoformat(hi) - dt.date.fromisoformat(lo)).days

    q4 = per_day("2025-11-15", "2025-12-24")
    assert q4 > 1.25 * per_day("2025-09-01", "2025-10-15")
    assert q4 > 1.25 * per_day("2026-01-10", "2026-03-01")


def test_email_funnel(con):
    counts = dict(
        con.execute("select event_type, count(*) from raw.email_events group by 1").fetchall()
    )
    assert set(counts) == {"sent", "open", "click", "unsubscribe", "bounce"}
    assert counts["sent"] > counts["open"] > counts["click"] > 0
    assert 0.12 < counts["open"] / counts["sent"] < 0.4
    assert 0.08 < counts["click"] / counts["open"] < 0.35
    assert counts["bounce"] < 0.02 * counts["sent"]
    assert 10 < sum(counts.values()) / CUSTOMERS < 40
    (opted_out_mail,) = _one(
        con,
        "select count(*) from raw.email_events e join raw.customers c using (customer_id) "
        "where not c.email_opt_in",
    )
    assert opted_out_mail == 0
    # After an unsubscribe, no more sends.
    (after_unsub,) = _one(
        con,
        """
        select count(*) from raw.email_events s
        join (select customer_id, min(occurred_at) as at from raw.email_events
              where event_type = 'unsubscribe' group by 1) u using (customer_id)
        where s.event_type = 'sent' and s.occurred_at > u.at
        """,
    )
    assert after_unsub == 0
    clicked, never_opened = _one(
        con,
        """
        with engagement as (
            select customer_id, bool_or(event_type = 'open') as opened,
                   bool_or(event_type = 'click') as clicked
            from raw.email_events group by 1
        ),
        per_customer as (
            select e.customer_id, e.opened, e.clicked, count(o.order_id) as n_orders
            from engagement e left join raw.orders o using (customer_id) group by all
        )
        select avg(n_orders) filter (where clicked), avg(n_orders) filter (where not opened)
        from per_customer
        """,
    )
    assert clicked > 1.5 * never_opened


def test_group_membership_matches_dbt(con):
    products = con.execute(
        "select product_id, product_name, category from raw.products order by product_id"
    ).fetchall()
    from models_py.ingest._groups import GroupRule

    rules = [GroupRule(*r) for r in con.execute("select * from raw.product_group_rules").fetchall()]
    groups, member = group_membership(
        rules,
        product_id=np.array([p[0] for p in products], dtype=object),
        product_name=np.array([p[1] for p in products], dtype=object),
        category=np.array([p[2] for p in products], dtype=object),
    )
    ours = {(products[i][0], groups[j]) for i, j in zip(*np.nonzero(member), strict=True)}
    dbt = set(
        con.execute(
            "select product_id, product_group from intermediate.int_products_mapped_to_groups"
        ).fetchall()
    )
    assert ours == dbt
    assert 8 <= len(groups) - 1 <= 12
    per_product = member[:, :-1].sum(axis=1)
    assert per_product.max() >= 3  # overlapping groups
    assert (member[:, :-1].sum(axis=0) > 0).all()  # every group matches some product


def test_oracle_covers_customers_groups_and_cutoffs(con, warehouse):
    report = warehouse[1]
    n_groups = _one(con, "select count(distinct product_group) from raw.product_group_rules")[0]
    rows = con.execute(
        """
        select o.as_of_date, count(*), count(distinct o.customer_id),
               min(o.probability), max(o.probability),
               count(distinct o.product_group),
               (select count(*) from raw.customers c where c.created_at < o.as_of_date)
        from raw.oracle_propensity o group by 1 order by 1 desc
        """
    ).fetchall()
    assert [r[0] for r in rows] == list(report.oracle_cutoffs)
    assert [(END - r[0]).days for r in rows] == [30 * k for k in range(13)]
    for _, n, n_cust, lo, hi, n_grp, created_before in rows:
        assert n_grp == n_groups + 1  # plus `any`
        assert n_cust == created_before
        assert n == n_cust * n_grp
        assert lo >= 0.0 and hi <= 1.0
    (not_monotone,) = _one(
        con,
        """
        select count(*) from raw.oracle_propensity g
        join raw.oracle_propensity a on a.customer_id = g.customer_id
            and a.as_of_date = g.as_of_date and a.product_group = 'any'
        where g.probability > a.probability + 1e-12
        """,
    )
    assert not_monotone == 0  # no group is more likely than any purchase at all


def test_churned_customers_have_zero_probability(con):
    churned, churned_positive, alive_zero = _one(
        con,
        """
        select
            count(*) filter (where s.churned_at <= o.as_of_date),
            count(*) filter (where s.churned_at <= o.as_of_date and o.probability > 0),
            count(*) filter (where s.churned_at >= o.as_of_date + interval 30 day
                             and o.product_group = 'any' and o.probability = 0)
        from raw.oracle_propensity o join raw.oracle_customer_state s using (customer_id)
        """,
    )
    assert churned > 1000
    assert churned_positive == 0
    assert alive_zero == 0


def test_oracle_is_calibrated_and_discriminates_against_realised_labels(con):
    per_cell = con.execute(
        f"""
        select as_of_date, product_group, count(*), sum(probability),
               sum(probability * (1 - probability)), sum(label::int)
        from ({LABELS_SQL}) group by all
        """,
        [END, END],
    ).fetchall()
    assert len(per_cell) == 12 * 11
    for d, g, n, sum_p, sum_var, n_pos in per_cell:
        se = np.sqrt(sum_var) / n
        assert abs(n_pos / n - sum_p / n) < 4 * se + 1e-3, (d, g, n_pos / n, sum_p / n)
    # Pooled over cutoffs and groups, the realised rate matches the oracle within 2% relative.
    total_p, total_pos = (sum(c[i] for c in per_cell) for i in (3, 5))
    assert abs(total_pos - total_p) < 0.02 * total_p
    data = con.execute(
        f"select product_group = 'any' as is_any, probability, label from ({LABELS_SQL}) "
        "order by product_group",
        [END, END],
    ).fetchnumpy()
    p, y, is_any = data["probability"], data["label"], data["is_any"]
    # Rows come grouped by product group: one block of equal size per group.
    for block in np.split(np.arange(len(p)), 11):
        g = "any" if is_any[block[0]] else "a product group"
        auc = roc_auc_score(y[block], p[block])
        assert auc > (0.75 if g == "any" else 0.7), (g, auc)


def test_discount_experiment(con):
    arms = dict(
        con.execute(
            "select arm, count(*) from raw.treatments where experiment_id = 'discount_2026q3' "
            "group by 1"
        ).fetchall()
    )
    assert set(arms) == {"0", "20", "25"}
    total = sum(arms.values())
    assert abs(total / CUSTOMERS - BEHAVIOUR.experiment_share) < 0.05
    for n in arms.values():
        assert abs(n / total - 1 / 3) < 4 * np.sqrt(2 / 9 / total)
    (assigned_at,) = _one(con, "select distinct assigned_at from raw.treatments")
    assert assigned_at == dt.datetime.combine(EXPERIMENT_START, dt.time())
    rows = con.execute(
        """
        with bought as (
            select distinct o.customer_id from raw.orders o join raw.order_lines l using (order_id)
            where l.quantity > 0 and o.ordered_at >= ? and o.ordered_at < ? + interval 30 day
        )
        select t.arm, count(*), avg((b.customer_id is not null)::int),
               avg(e20.baseline_probability), avg(e20.effect), avg(e25.effect),
               avg(case t.arm when '0' then e20.baseline_probability
                              when '20' then e20.treated_probability
                              else e25.treated_probability end)
        from raw.treatments t
        left join bought b using (customer_id)
        join raw.oracle_treatment_effect e20 on e20.customer_id = t.customer_id and e20.arm = '20'
        join raw.oracle_treatment_effect e25 on e25.customer_id = t.customer_id and e25.arm = '25'
        group by 1 order by 1
        """,
        [EXPERIMENT_START, EXPERIMENT_START],
    ).fetchall()
    res = {
        arm: (n, rate, base, eff20, eff25, expected)
        for arm, n, rate, base, eff20, eff25, expected in rows
    }
    # True effects: 25% > 20% > 0 on average, some customers unaffected.
    mean20 = np.mean([r[3] for r in res.values()])
    mean25 = np.mean([r[4] for r in res.values()])
    assert mean25 > mean20 > 0.02
    (unaffected,) = _one(
        con,
        "select avg((effect = 0)::int) from raw.oracle_treatment_effect "
        "where arm = '25' and baseline_probability > 0",
    )
    assert 0.03 < unaffected < 0.4  # price-insensitive customers (churned ones excluded)
    # Each arm's realised purchase rate matches the oracle for that arm.
    for n, rate, _, _, _, expected in res.values():
        assert abs(rate - expected) < 4 * np.sqrt(expected * (1 - expected) / n)
    # Realised ordering and effects agree with the truth within sampling error.
    r0, r20, r25 = (res[a][1] for a in ("0", "20", "25"))
    se = np.sqrt(2 * 0.25 / min(r[0] for r in res.values()))
    assert r20 > r0 and r25 > r0
    assert r25 > r20 - 2 * se
    assert abs((r25 - r0) - mean25) < 4 * se
    assert abs((r20 - r0) - mean20) < 4 * se


def test_same_seed_same_content_other_seed_differs(tmp_path):
    def content(path):
        con = connect(path, read_only=True)
        try:
            return {
                t: con.sql(f"select * from raw.{t} order by all").to_arrow_table()
                for t in RAW_TABLES
            }
        finally:
            con.close()

    kwargs = {"customers": 1_500, "days": 200, "chunk_size": 600}
    generate_warehouse(tmp_path / "a.duckdb", seed=3, **kwargs)
    generate_warehouse(tmp_path / "b.duckdb", seed=3, **kwargs)
    report = generate_warehouse(tmp_path / "c.duckdb", seed=4, **kwargs)
    a, b, c = (content(tmp_path / f"{x}.duckdb") for x in "abc")
    for t in RAW_TABLES:
        assert a[t].equals(b[t]), t
    assert not a["orders"].equals(c["orders"])
    assert not a["oracle_propensity"].equals(c["oracle_propensity"])
    # 200 days of history: only cutoffs whose label window lies after the history start.
    assert len(report.oracle_cutoffs) == 6


def test_regenerating_replaces_tables(tmp_path):
    path = tmp_path / "wh.duckdb"
    generate_warehouse(path, customers=300, seed=1, days=150)
    report = generate_warehouse(path, customers=200, seed=2, days=150)
    con = connect(path, read_only=True)
    try:
        assert _one(con, "select count(*) from raw.customers")[0] == 200
        assert _one(con, "select count(*) from raw.orders")[0] == report.rows["orders"]
    finally:
        con.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"customers": 0}, "customers must be a positive integer"),
        ({"customers": -5}, "customers must be a positive integer"),
        ({"customers": 100, "days": 100}, "days must be an integer >= 120"),
        ({"customers": 100, "seed": -1}, "seed must be a non-negative integer"),
        ({"customers": 100, "chunk_size": 0}, "chunk_size must be a positive integer"),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path, kwargs, message):
    path = tmp_path / "wh.duckdb"
    with pytest.raises(ConfigError, match=message):
        generate_warehouse(path, **kwargs)
    assert not path.exists()


def test_failed_generation_leaves_previous_tables(tmp_path, monkeypatch):
    import models_py.ingest.synth._generate as gen

    path = tmp_path / "wh.duckdb"
    before = generate_warehouse(path, customers=300, seed=1, days=150).rows

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure in the middle of a generation")

    monkeypatch.setattr(gen, "simulate_emails", broken)
    with pytest.raises(RuntimeError, match="simulated failure"):
        generate_warehouse(path, customers=500, seed=2, days=150)
    con = connect(path, read_only=True)
    try:
        for table in RAW_TABLES:
            assert _one(con, f"select count(*) from raw.{table}")[0] == before[table], table
        (leftovers,) = _one(
            con,
            "select count(*) from information_schema.tables where table_name like '\\_\\_synth%' "
            "escape '\\'",
        )
        assert leftovers == 0
    finally:
        con.close()


def test_observable_oracle_column_for_the_newest_labelled_cutoffs(tmp_path):
    """observable_cutoffs=1 fills raw.oracle_propensity.observable_probability at the test cutoff
    (end_date - 30 days) only, with what ingest.synth._posterior computes; other rows NULL."""
    from models_py.ingest.synth._posterior import observable_oracle

    path = tmp_path / "wh.duckdb"
    report = generate_warehouse(path, customers=300, seed=1, days=150, observable_cutoffs=1)
    test_cutoff = report.oracle_cutoffs[1]
    expected = observable_oracle(path, cutoff=test_cutoff, seed=1, days=150).to_pylist()
    con = connect(path, read_only=True)
    try:
        per_cutoff = con.execute(
            "select as_of_date, count(*), count(observable_probability) "
            "from raw.oracle_propensity group by all order by as_of_date desc"
        ).fetchall()
        stored = con.execute(
            "select customer_id, product_group, observable_probability "
            "from raw.oracle_propensity where as_of_date = ?",
            [test_cutoff],
        ).fetchall()
    finally:
        con.close()
    counts = {d: (n, known) for d, n, known in per_cutoff}
    assert counts[test_cutoff] == (len(expected), len(expected))
    assert all(known == 0 for d, (_, known) in counts.items() if d != test_cutoff)
    want = {(r["customer_id"], r["product_group"]): r["probability"] for r in expected}
    got = {(c, g): p for c, g, p in stored}
    assert got.keys() == want.keys()
    assert max(abs(got[k] - want[k]) for k in want) < 1e-12
    with pytest.raises(ConfigError, match="observable_cutoffs must be between 0 and"):
        generate_warehouse(path, customers=300, seed=1, days=150, observable_cutoffs=99)
