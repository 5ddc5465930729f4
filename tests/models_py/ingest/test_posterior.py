"""The observable oracle (posterior predictive given the history before T): probabilities, keys,
calibration against realised labels and the latent oracle, no use of events at or after T, and
an AUC between a simple model's and the latent oracle's."""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from models_py._errors import InputDataError
from models_py.ingest.synth import generate_warehouse
from models_py.ingest.synth._posterior import (
    Quadrature,
    generator_parts,
    load_observed,
    observable_oracle,
)

CUSTOMERS = 3_000
SEED = 5
END = dt.date(2026, 10, 1)
CUTOFF = END - dt.timedelta(days=30)  # the test cutoff of the default dbt settings
TRAIN_CUTOFF = END - dt.timedelta(days=90)
#: Coarse but fast: enough for the properties below (the benchmark uses the defaults).
FAST = Quadrature(
    z_nodes=8, rate_nodes=6, history_intervals=16, window_intervals=4, affinity_samples=24
)

LABELS_SQL = """
select distinct o.customer_id, l.product_id
from raw.orders as o
inner join raw.order_lines as l on o.order_id = l.order_id
where l.quantity > 0 and o.ordered_at >= $lo and o.ordered_at < $hi
"""


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("posterior") / "wh.duckdb"
    generate_warehouse(path, customers=CUSTOMERS, seed=SEED, end_date=END)
    return path


def labelled(path, table, cutoff: dt.date) -> dict[str, dict[str, np.ndarray]]:
    """Per group: customer ids, observable probability, latent oracle and realised label."""
    _, catalog = generator_parts(seed=SEED, end_date=END, days=730)
    product_index = {p: i for i, p in enumerate(catalog.product_id)}
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.register("posterior", table)
        rows = con.execute(
            "select p.customer_id, p.product_group, p.probability, o.probability as latent "
            "from posterior as p inner join raw.oracle_propensity as o "
            "using (customer_id, product_group, as_of_date) order by 2, 1"
        ).fetchnumpy()
        lo = dt.datetime.combine(cutoff, dt.time())
        bought = con.execute(LABELS_SQL, {"lo": lo, "hi": lo + dt.timedelta(days=30)}).fetchall()
    finally:
        con.close()
    positives: dict[str, set[int]] = {g: set() for g in catalog.groups}
    for customer, product in bought:
        for g in np.flatnonzero(catalog.membership[product_index[product]]):
            positives[catalog.groups[g]].add(customer)
    out = {}
    for g in catalog.groups:
        m = rows["product_group"] == g
        ids = np.asarray(rows["customer_id"][m])
        out[g] = {
            "customer_id": ids,
            "p": np.asarray(rows["probability"][m]),
            "latent": np.asarray(rows["latent"][m]),
            "y": np.isin(ids, list(positives[g])).astype(int),
        }
    return out


@pytest.fixture(scope="module")
def result(warehouse):
    table = observable_oracle(warehouse, cutoff=CUTOFF, seed=SEED, end_date=END, quadrature=FAST)
    return table, labelled(warehouse, table, CUTOFF)


def test_one_probability_per_customer_and_group_like_the_latent_oracle(warehouse, result):
    table, data = result
    p = table["probability"].to_numpy()
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        n_oracle = con.execute(
            "select count(*) from raw.oracle_propensity where as_of_date = ?", [CUTOFF]
        ).fetchone()[0]
    finally:
        con.close()
    assert table.num_rows == n_oracle  # every oracle row has its observable counterpart
    assert sum(len(d["p"]) for d in data.values()) == n_oracle
    assert set(table["as_of_date"].to_pylist()) == {CUTOFF}


@pytest.mark.parametrize("group", ["any", "alcohol", "sweets", "books"])
def test_calibrated_against_realised_labels(result, group):
    _, data = result
    d = data[group]
    sd = np.sqrt((d["p"] * (1 - d["p"])).sum())
    assert d["y"].sum() > 50
    assert abs(d["y"].sum() - d["p"].sum()) < 4 * sd, (d["y"].sum(), d["p"].sum(), sd)


def test_calibrated_in_deciles_against_labels_and_the_latent_oracle(result):
    # The latent oracle's conditional mean given the observations is the observable oracle:
    # in every decile of the observable probability both means agree (tower property).
    _, data = result
    d = data["any"]
    order = np.argsort(d["p"], kind="stable")
    for part in np.array_split(order, 10):
        p, y, latent = d["p"][part], d["y"][part], d["latent"][part]
        sd = np.sqrt(max((p * (1 - p)).sum(), 1.0))
        assert abs(y.sum() - p.sum()) < 4 * sd, (p.mean(), y.mean())
        assert abs(latent.mean() - p.mean()) < 0.02 + 0.1 * p.mean(), (p.mean(), latent.mean())


def _features(path, cutoff: dt.date) -> tuple[np.ndarray, np.ndarray]:
    calendar, catalog = generator_parts(seed=SEED, end_date=END, days=730)
    con = duckdb.connect(str(path), read_only=True)
    try:
        obs = load_observed(con, cutoff=cutoff, calendar=calendar, catalog=catalog)
    finally:
        con.close()
    t = float((cutoff - calendar.start).days)
    recency = np.where(np.isnan(obs.last_purchase), 999.0, t - obs.last_purchase)
    tenure = t - np.maximum(obs.created, 0.0)
    x = np.column_stack(
        [
            np.log1p(obs.n_purchases),
            np.log1p(obs.n_purchases / (tenure + 1.0) * 365),
            np.log1p(np.minimum(recency, 999.0)),
            np.log1p(tenure),
            obs.opt_in,
            obs.is_vip,
        ]
    )
    return obs.customer_id, x


def test_auc_between_a_simple_model_and_the_latent_oracle(warehouse, result):
    _, data = result
    train = observable_oracle(
        warehouse, cutoff=TRAIN_CUTOFF, seed=SEED, end_date=END, quadrature=FAST
    )
    train_labels = labelled(warehouse, train, TRAIN_CUTOFF)["any"]
    ids_tr, x_tr = _features(warehouse, TRAIN_CUTOFF)
    ids_te, x_te = _features(warehouse, CUTOFF)
    y_tr = np.isin(ids_tr, train_labels["customer_id"][train_labels["y"] == 1]).astype(int)
    model = LogisticRegression(max_iter=1000).fit(x_tr, y_tr)
    d = data["any"]
    assert np.array_equal(ids_te, d["customer_id"])
    auc_model = roc_auc_score(d["y"], model.predict_proba(x_te)[:, 1])
    auc_obs = roc_auc_score(d["y"], d["p"])
    auc_latent = roc_auc_score(d["y"], d["latent"])
    # ~3k rows: allow sampling noise of a few thousandths around the expected order.
    assert auc_model - 0.005 < auc_obs < auc_latent + 0.005, (auc_model, auc_obs, auc_latent)
    assert auc_latent - auc_obs > 0.005  # the latent state is worth something


def test_uses_nothing_at_or_after_the_cutoff(warehouse, result, tmp_path):
    table, _ = result
    copy = tmp_path / "changed.duckdb"
    shutil.copy(warehouse, copy)
    ts = dt.datetime.combine(CUTOFF, dt.time())
    con = duckdb.connect(str(copy))
    try:
        # Everything at or after T changes: orders (and their lines) vanish, emails move to T,
        # and one customer gets a purchase at exactly T.
        con.execute(
            "delete from raw.order_lines where order_id in "
            "(select order_id from raw.orders where ordered_at >= $t)",
            {"t": ts},
        )
        con.execute("delete from raw.orders where ordered_at >= $t", {"t": ts})
        con.execute(
            "update raw.email_events set occurred_at = $t where occurred_at >= $t", {"t": ts}
        )
        order, customer = con.execute(
            "insert into raw.orders select max(order_id) + 1, "
            "(select min(customer_id) from raw.customers where created_at < $t), $t "
            "from raw.orders returning order_id, customer_id",
            {"t": ts},
        ).fetchone()
        con.execute("insert into raw.order_lines values ($o, 'SKU-10001', 3, 1.0)", {"o": order})
    finally:
        con.close()
    again = observable_oracle(copy, cutoff=CUTOFF, seed=SEED, end_date=END, quadrature=FAST)
    np.testing.assert_array_equal(again["probability"].to_numpy(), table["probability"].to_numpy())

    # ... while a purchase just before T raises that customer's probability.
    con = duckdb.connect(str(copy))
    try:
        con.execute(
            "update raw.orders set ordered_at = $t - interval 1 hour where order_id = $o",
            {"t": ts, "o": order},
        )
    finally:
        con.close()
    moved = observable_oracle(copy, cutoff=CUTOFF, seed=SEED, end_date=END, quadrature=FAST)
    first = np.asarray(moved["customer_id"].to_numpy() == customer)
    before = table["probability"].to_numpy()[first]
    after = moved["probability"].to_numpy()[first]
    assert (after > before).all(), (customer, before, after)


def test_refuses_a_warehouse_from_another_seed(warehouse):
    with pytest.raises(InputDataError, match="seed"):
        observable_oracle(warehouse, cutoff=CUTOFF, seed=SEED + 1, end_date=END, quadrature=FAST)


def test_experiment_arm_is_not_used_before_it_is_assigned(warehouse, result, tmp_path):
    # At the experiment start the arm is assigned at T itself: unobservable, the prediction is
    # the prior mixture over arms (calibrated), and changing the arms changes nothing.
    start = END - dt.timedelta(days=60)
    table = observable_oracle(warehouse, cutoff=start, seed=SEED, end_date=END, quadrature=FAST)
    d = labelled(warehouse, table, start)["any"]
    sd = np.sqrt((d["p"] * (1 - d["p"])).sum())
    assert abs(d["y"].sum() - d["p"].sum()) < 4 * sd, (d["y"].sum(), d["p"].sum(), sd)
    copy = tmp_path / "arms.duckdb"
    shutil.copy(warehouse, copy)
    con = duckdb.connect(str(copy))
    try:
        con.execute("update raw.treatments set arm = '25'")
    finally:
        con.close()
    again = observable_oracle(copy, cutoff=start, seed=SEED, end_date=END, quadrature=FAST)
    np.testing.assert_array_equal(again["probability"].to_numpy(), table["probability"].to_numpy())
    later = observable_oracle(copy, cutoff=CUTOFF, seed=SEED, end_date=END, quadrature=FAST)
    # ... while after the assignment the arm matters.
    assert not np.array_equal(later["probability"].to_numpy(), result[0]["probability"].to_numpy())
