"""BTYD columns on UCI Online Retail equal lifetimes' `summary_data_from_transaction_data`.

lifetimes is not a dependency: `lifetimes_summary` below re-implements its definition
(lifetimes 0.11 `utils.summary_data_from_transaction_data` with freq="D", a monetary column and
`observation_period_end`) in pandas, step by step, and the test compares it with the SQL.
Transactions are purchase orders (an order with at least one line of quantity > 0) with their net
line amount rounded to cents; features at cutoff T use observation_period_end = T - 1 day.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models_py._dbt import run_dbt
from models_py._settings import Settings
from tests.dbt.test_features import read

CUTOFFS = ["2011-06-01", "2011-09-01"]
DBT_VARS = {
    "training_cutoffs": CUTOFFS,
    "scoring_cutoff": "2011-12-10",
    "test_cutoffs": 1,
    "validation_cutoffs": 0,
}


def lifetimes_summary(
    transactions: pd.DataFrame,
    customer_id_col: str,
    datetime_col: str,
    monetary_value_col: str,
    observation_period_end: pd.Timestamp,
) -> pd.DataFrame:
    """lifetimes.utils.summary_data_from_transaction_data(freq="D"), re-implemented."""
    freq = "D"
    end = pd.Timestamp(observation_period_end).to_period(freq).to_timestamp()
    # _find_first_transactions
    tx = transactions[[customer_id_col, datetime_col, monetary_value_col]]
    tx = tx.sort_values([customer_id_col, datetime_col, monetary_value_col]).copy()
    tx[datetime_col] = tx[datetime_col].dt.to_period(freq).dt.to_timestamp()
    tx = tx[tx[datetime_col] <= end]
    period = tx.groupby([datetime_col, customer_id_col], sort=False, as_index=False)[
        monetary_value_col
    ].sum()
    period["first"] = False
    first = period.groupby(customer_id_col, sort=True, as_index=False).head(1).index
    period.loc[first, "first"] = True
    # summary_data_from_transaction_data
    customers = period.groupby(customer_id_col, sort=False)[datetime_col].agg(
        ["min", "max", "count"]
    )
    customers["frequency"] = customers["count"] - 1
    customers["T"] = (end - customers["min"]) / np.timedelta64(1, freq)
    customers["recency"] = (customers["max"] - customers["min"]) / np.timedelta64(1, freq)
    period.loc[period["first"], monetary_value_col] = np.nan
    customers["monetary_value"] = (
        period.groupby(customer_id_col)[monetary_value_col].mean().fillna(0)
    )
    return customers[["frequency", "recency", "T", "monetary_value"]]


@pytest.fixture(scope="module")
def online_retail(online_retail_path, tmp_path_factory) -> Settings:
    from models_py.ingest.loaders import load_online_retail

    warehouse = tmp_path_factory.mktemp("online_retail") / "wh.duckdb"
    load_online_retail(online_retail_path, warehouse)
    settings = Settings(warehouse=warehouse)
    run_dbt(settings, ["run", "--select", "+fct_customer_features"], dbt_vars=DBT_VARS)
    return settings


@pytest.mark.realdata
@pytest.mark.parametrize("cutoff", CUTOFFS)
def test_btyd_matches_lifetimes_definition(online_retail, cutoff):
    t = pd.Timestamp(cutoff)
    purchases = read(
        online_retail,
        """
        select o.order_id, o.customer_id, o.ordered_at,
               round(sum(l.quantity * l.unit_price), 2) as amount
        from raw.orders as o
        inner join raw.order_lines as l on o.order_id = l.order_id
        group by all
        having max(l.quantity) > 0
        """,
    )
    purchases = purchases[purchases["ordered_at"] < t]
    expected = lifetimes_summary(
        purchases, "customer_id", "ordered_at", "amount", t - pd.Timedelta(days=1)
    )
    got = read(
        online_retail,
        "select customer_id, btyd_frequency, btyd_recency_days, btyd_age_days, "
        "btyd_monetary_value from marts.fct_customer_features where as_of_date = ?",
        [t.date()],
    ).set_index("customer_id")
    expected = expected.reindex(got.index).fillna(0)  # no purchase before T: zeros (documented)
    assert (expected["frequency"] > 0).sum() > 500
    np.testing.assert_array_equal(got["btyd_frequency"], expected["frequency"])
    np.testing.assert_array_equal(got["btyd_recency_days"], expected["recency"])
    np.testing.assert_array_equal(got["btyd_age_days"], expected["T"])
    np.testing.assert_allclose(
        got["btyd_monetary_value"], expected["monetary_value"], rtol=0, atol=1e-6
    )
