"""The Online Retail loader: reading both spellings and three formats, every cleaning rule on
small hand-made files, the CLI, and the real file against figures computed independently in
pandas (real-data tests load the file once per module)."""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models_py._errors import InputDataError
from models_py._settings import Settings
from models_py._warehouse import connect
from models_py.ingest.loaders import (
    DEFAULT_GROUPS_PATH,
    NON_PRODUCT_CODES,
    load_online_retail,
    read_online_retail,
)

UCI = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
]
II = [
    "Invoice",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "Price",
    "Customer ID",
    "Country",
]
UK = "United Kingdom"


def t(day: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    return dt.datetime(2011, 1, day, hour, minute)


#: One line per cleaning rule plus the lines that survive (see `test_cleaning_rules`).
LINES = [
    ("1001", "85123a", "WHITE HANGING HEART T-LIGHT HOLDER", 6, t(4), 2.55, 17850, UK),
    ("1001", "85123a", "WHITE HANGING HEART T-LIGHT HOLDER", 6, t(4), 2.55, 17850, UK),  # copy
    ("1001", "POST", "POSTAGE", 1, t(4), 18.0, 17850, UK),  # non-product
    ("1001", "22423", "REGENCY CAKESTAND 3 TIER", 2, t(4, 10, 1), 12.75, 17850, UK),
    ("1002", "22423", "REGENCY CAKESTAND 3 TIER", 1, t(5, 11), 0.0, 13047, UK),  # price 0
    ("1002", "84879", "ASSORTED COLOUR BIRD ORNAMENT", 8, t(5, 11), 1.69, 13047, UK),
    ("1003", "84879", "ASSORTED COLOUR BIRD ORNAMENT", 4, t(6, 9), 1.69, None, UK),  # no customer
    ("1004", "22423", "damaged", -3, t(6, 12), 0.0, None, UK),  # stock adjustment
    ("C1005", "22423", "REGENCY CAKESTAND 3 TIER", -1, t(7, 15), 12.75, 17850, UK),  # a return
    ("1006", "gift_0001_20", "Dotcomgiftshop Gift Voucher £20.00", 1, t(8), 16.67, 13047, "France"),
    ("1006", "21731", "RED TOADSTOOL LED NIGHT LIGHT", 0, t(8), 1.65, 13047, "France"),  # qty 0
    ("1007", "21731", "RED TOADSTOOL LED NIGHT LIGHT", 12, t(9), 1.65, 13047, "France"),
    ("A1008", "B", "Adjust bad debt", 1, t(10), -11062.06, None, UK),  # non-product
    ("1009", "DOT", "DOTCOM POSTAGE", 1, t(10), 5.0, 13047, UK),  # non-product
]


def lines_table(rows=LINES, names=UCI) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    types = [pa.string()] * 3 + [pa.int32(), pa.timestamp("us"), pa.float64(), pa.int32()]
    arrays = [pa.array(c, typ) for c, typ in zip(columns, [*types, pa.string()], strict=True)]
    return pa.table(dict(zip(names, arrays, strict=True)))


def write_csv(path: Path, rows=LINES, names=II, *, date_format="%Y-%m-%d %H:%M:%S") -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for r in rows:
            writer.writerow(
                [r[0], r[1], r[2], r[3], r[4].strftime(date_format), r[5], r[6] or "", r[7]]
            )
    return path


def read_raw(warehouse: Path, sql: str) -> list[tuple]:
    con = connect(warehouse, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# ------------------------------------------------------------------------------- small files


def test_cleaning_rules(tmp_path):
    src = tmp_path / "lines.parquet"
    pq.write_table(lines_table(), src)
    wh = tmp_path / "wh.duckdb"
    report = load_online_retail(src, wh)

    assert report.rows_read == 14
    assert report.rows_kept == 5
    assert report.dropped == {
        "exact_duplicate": 1,
        "missing_value": 0,
        "non_product_code": 4,
        "stock_adjustment": 1,
        "cancellation_positive_quantity": 0,
        "quantity_zero": 1,
        "price_not_positive": 1,
        "adjustment_invoice": 0,
        "missing_customer": 1,
    }
    assert report.non_product_codes == {"B": 1, "DOT": 1, "GIFT_0001_20": 1, "POST": 1}
    assert report.lines_without_customer == 3
    assert (report.customers, report.orders, report.returns, report.products) == (2, 4, 1, 4)
    assert report.first_ordered_at == t(4)
    assert report.net_sales == pytest.approx(6 * 2.55 + 2 * 12.75 + 8 * 1.69 - 12.75 + 12 * 1.65)

    lines = read_raw(wh, "select * from raw.order_lines order by order_id, product_id")
    assert lines == [
        (1001, "22423", 2, 12.75),
        (1001, "85123A", 6, 2.55),  # upper-cased stock code, one copy of the duplicate
        (1002, "84879", 8, 1.69),
        (1005, "22423", -1, 12.75),  # the cancellation C1005 is a return
        (1007, "21731", 12, 1.65),
    ]
    orders = read_raw(wh, "select * from raw.orders order by order_id")
    assert orders == [
        (1001, 17850, t(4)),  # earliest of the invoice's two timestamps
        (1002, 13047, t(5, 11)),
        (1005, 17850, t(7, 15)),  # the return belongs to the customer who cancelled
        (1007, 13047, t(9)),
    ]
    customers = read_raw(wh, "select * from raw.customers order by customer_id")
    assert customers == [
        (13047, t(5, 11), "France", False, False),  # 1 invoice each: alphabetical tie-break
        (17850, t(4), UK, False, False),
    ]
    products = dict(read_raw(wh, "select product_id, product_name from raw.products"))
    assert products == {
        "21731": "RED TOADSTOOL LED NIGHT LIGHT",
        "22423": "REGENCY CAKESTAND 3 TIER",  # not "damaged" (a dropped adjustment line)
        "84879": "ASSORTED COLOUR BIRD ORNAMENT",
        "85123A": "WHITE HANGING HEART T-LIGHT HOLDER",
    }
    assert read_raw(wh, "select count(*) from raw.email_events") == [(0,)]
    assert read_raw(wh, "select count(*) from raw.treatments") == [(0,)]
    groups = {
        g for (g,) in read_raw(wh, "select distinct product_group from raw.product_group_rules")
    }
    assert {"christmas", "kitchen", "candles_and_lights"} <= groups
    assert report.group_sizes["candles_and_lights"] == (2, 2)  # T-LIGHT HOLDER, LED NIGHT LIGHT

    summary = report.summary()
    assert "lines read 14, kept 5, dropped 9" in summary
    assert "non_product_code" in summary and "POST 1" in summary


def test_csv_in_online_retail_ii_spelling(tmp_path):
    src = write_csv(tmp_path / "online_retail_II.csv")
    src.write_text(src.read_text(), encoding="utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    table = read_online_retail(src)
    assert table.column_names == UCI
    assert table.num_rows == len(LINES)
    assert table.column("CustomerID").null_count == 3
    assert table.column("InvoiceDate").to_pylist()[3] == t(4, 10, 1)
    report = load_online_retail(src, tmp_path / "wh.duckdb")
    assert (report.rows_kept, report.customers, report.orders) == (5, 2, 4)


def test_csv_us_dates_latin1(tmp_path):
    rows = [(*r[:4], r[4].replace(month=12, day=13, year=2010), *r[5:]) for r in LINES[:4]]
    src = tmp_path / "Online Retail.csv"
    text = write_csv(src, rows, UCI, date_format="%m/%d/%Y %H:%M").read_text(encoding="utf-8")
    src.write_bytes(text.replace("POSTAGE", "POSTAGE £").encode("latin-1"))
    table = read_online_retail(src)
    assert table.column("InvoiceDate").to_pylist()[0] == dt.datetime(2010, 12, 13, 10, 0)
    assert table.column("Description").to_pylist()[2] == "POSTAGE £"


def test_csv_day_first_dates_and_unreadable_dates(tmp_path):
    rows = [(*r[:4], r[4].replace(month=12, day=13, year=2010), *r[5:]) for r in LINES[:4]]
    src = write_csv(tmp_path / "day_first.csv", rows, II, date_format="%d/%m/%Y %H:%M")
    table = read_online_retail(src)
    assert table.column("InvoiceDate").to_pylist()[0] == dt.datetime(2010, 12, 13, 10, 0)
    src.write_text(src.read_text().replace("13/12/2010", "yesterday", 1))
    with pytest.raises(InputDataError, match="cannot parse InvoiceDate"):
        read_online_retail(src)


def test_xlsx_with_two_sheets(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    workbook = openpyxl.Workbook()
    first = workbook.active
    first.title = "Year 2009-2010"
    second = workbook.create_sheet("Year 2010-2011")
    for sheet, rows in ((first, LINES[:5]), (second, LINES[5:])):
        sheet.append(II)
        for r in rows:
            # Excel stores numeric invoices, stock codes and customer ids as numbers.
            invoice = int(r[0]) if r[0].isdigit() else r[0]
            code = int(r[1]) if r[1].isdigit() else r[1]
            customer = float(r[6]) if r[6] is not None else None
            sheet.append([invoice, code, r[2], r[3], r[4], r[5], customer, r[7]])
    src = tmp_path / "online_retail_II.xlsx"
    workbook.save(src)

    table = read_online_retail(src)
    assert table.num_rows == len(LINES)
    assert table.column("InvoiceNo").to_pylist()[:2] == ["1001", "1001"]
    assert table.column("StockCode").to_pylist()[3] == "22423"
    assert table.column("CustomerID").to_pylist()[0] == 17850
    report = load_online_retail(src, tmp_path / "wh.duckdb")
    assert (report.rows_kept, report.customers, report.orders, report.returns) == (5, 2, 4, 1)


def test_xlsx_without_openpyxl_names_the_extra(tmp_path, monkeypatch):
    src = tmp_path / "online_retail.xlsx"
    src.write_bytes(b"not really a workbook")
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # `import openpyxl` raises ImportError
    with pytest.raises(InputDataError, match=re.escape("pip install 'propensity[excel]'")):
        read_online_retail(src)


def test_missing_column_is_named(tmp_path):
    src = write_csv(tmp_path / "no_price.csv")
    text = src.read_text().replace(",Price,", ",Cost,", 1)
    src.write_text(text)
    with pytest.raises(InputDataError) as err:
        read_online_retail(src)
    msg = str(err.value)
    assert "missing column(s) UnitPrice (or Price)" in msg
    assert str(src) in msg
    assert "CustomerID" not in msg.split("Found:")[0]  # only the missing one is listed


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(InputDataError, match="does not exist"):
        read_online_retail(tmp_path / "nope.parquet")
    other = tmp_path / "lines.json"
    other.write_text("{}")
    with pytest.raises(InputDataError, match="cannot tell the format"):
        read_online_retail(other)


def test_unreadable_quantity_is_an_error(tmp_path):
    src = write_csv(tmp_path / "bad.csv")
    src.write_text(src.read_text().replace(",6,", ",six,", 1))
    with pytest.raises(InputDataError, match=r"1 value\(s\) of Quantity .* 'six'"):
        read_online_retail(src)


def test_cancellation_number_colliding_with_a_sale_is_offset(tmp_path):
    rows = [
        ("2001", "22423", "REGENCY CAKESTAND 3 TIER", 2, t(4), 12.75, 1, UK),
        ("C2001", "22423", "REGENCY CAKESTAND 3 TIER", -1, t(5), 12.75, 1, UK),
        ("C2002", "22423", "REGENCY CAKESTAND 3 TIER", -1, t(5), 12.75, 1, UK),
    ]
    src = tmp_path / "collide.parquet"
    pq.write_table(lines_table(rows), src)
    wh = tmp_path / "wh.duckdb"
    report = load_online_retail(src, wh)
    assert report.order_id_offsets == 1
    assert [r[0] for r in read_raw(wh, "select order_id from raw.orders order by 1")] == [
        2001,
        2002,
        1_000_002_001,
    ]
    assert "collided" in report.summary()


def test_invoice_with_two_customers_is_an_error(tmp_path):
    rows = [
        ("3001", "22423", "REGENCY CAKESTAND 3 TIER", 2, t(4), 12.75, 1, UK),
        ("3001", "84879", "ASSORTED COLOUR BIRD ORNAMENT", 2, t(4), 1.69, 2, UK),
    ]
    src = tmp_path / "shared_invoice.parquet"
    pq.write_table(lines_table(rows), src)
    with pytest.raises(InputDataError, match=r"3001 \(2 customers\)"):
        load_online_retail(src, tmp_path / "wh.duckdb")


def test_custom_groups_file(tmp_path):
    src = tmp_path / "lines.parquet"
    pq.write_table(lines_table(), src)
    groups = tmp_path / "groups.yml"
    groups.write_text("product_groups:\n  cakes:\n    product_name: ['cake']\n")
    wh = tmp_path / "wh.duckdb"
    report = load_online_retail(src, wh, groups=groups)
    assert read_raw(wh, "select * from raw.product_group_rules") == [
        ("cakes", "product_name", "cake")
    ]
    assert report.group_sizes == {"cakes": (1, 1)}


def test_cli_loads_and_prints_the_report(tmp_path, capsys):
    from models_py.cli import main

    src = write_csv(tmp_path / "online_retail_II.csv")
    wh = tmp_path / "wh.duckdb"
    assert main(["--warehouse", str(wh), "load", "online-retail", str(src)]) == 0
    out = capsys.readouterr().out
    assert "lines read 14, kept 5, dropped 9" in out
    assert "customers 2, orders 4 (returns 1), products 4" in out
    assert read_raw(wh, "select count(*) from raw.orders") == [(4,)]


def test_cli_missing_file_is_one_line(tmp_path, capsys):
    from models_py.cli import main

    code = main(
        ["--warehouse", str(tmp_path / "wh.duckdb"), "load", "online-retail", "missing.csv"]
    )
    assert code != 0
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "missing.csv does not exist" in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in captured.err + captured.out


def test_default_groups_file_and_codes():
    from models_py.ingest._groups import read_group_rules

    groups = {r.product_group for r in read_group_rules(DEFAULT_GROUPS_PATH)}
    assert groups == {
        "christmas",
        "bags",
        "kitchen",
        "candles_and_lights",
        "party",
        "stationery",
        "gifts",
        "home_decor",
        "garden",
    }
    named = {"POST", "DOT", "M", "C2", "D", "S", "BANK CHARGES", "AMAZONFEE", "CRUK", "B", "PADS"}
    assert named <= set(NON_PRODUCT_CODES)


# --------------------------------------------------------------------------------- real file

REAL_NON_PRODUCT = {
    "POST",
    "DOT",
    "M",
    "C2",
    "D",
    "S",
    "BANK CHARGES",
    "AMAZONFEE",
    "CRUK",
    "B",
    "PADS",
    "23444",  # Next Day Carriage
    "23574",  # PACKING CHARGE
    "23702",  # High Resolution Image
    "22016",  # gift voucher 100
}


@pytest.fixture(scope="module")
def real_load(online_retail_path, tmp_path_factory):
    warehouse = tmp_path_factory.mktemp("online_retail") / "wh.duckdb"
    report = load_online_retail(online_retail_path, warehouse)
    return report, warehouse


@pytest.fixture(scope="module")
def expected(online_retail_path):
    """The cleaning rules written again in pandas, independently of the loader's SQL."""
    raw = pd.read_parquet(online_retail_path)
    df = raw.drop_duplicates().copy()
    code = df["StockCode"].str.strip().str.upper()
    invoice = df["InvoiceNo"].str.strip().str.upper()
    cancel = invoice.str.startswith("C")
    non_product = code.isin(REAL_NON_PRODUCT) | code.str.startswith("GIFT_0001_")
    product_line = ~non_product & (df["UnitPrice"] > 0) & (df["Quantity"] != 0)
    product_line &= ~((df["Quantity"] < 0) & ~cancel) & ~((df["Quantity"] > 0) & cancel)
    product_line &= invoice.str.fullmatch(r"C?\d+")
    df["code"], df["invoice"] = code, invoice
    kept = df[product_line & df["CustomerID"].notna()].copy()
    kept["CustomerID"] = kept["CustomerID"].astype("int64")

    countries = (
        kept.groupby(["CustomerID", "Country"])["invoice"].nunique().reset_index(name="n")
    ).sort_values(["CustomerID", "n", "Country"], ascending=[True, False, True])
    customers = (
        kept.groupby("CustomerID")["InvoiceDate"]
        .min()
        .to_frame("created_at")
        .join(countries.drop_duplicates("CustomerID").set_index("CustomerID")["Country"])
    )
    names = df[product_line & df["Description"].str.strip().fillna("").ne("")].copy()
    names["name"] = names["Description"].str.strip()
    names = (
        names.groupby(["code", "name"])
        .size()
        .reset_index(name="n")
        .sort_values(["code", "n", "name"], ascending=[True, False, True])
        .drop_duplicates("code")
        .set_index("code")["name"]
    )
    orders = kept.groupby("invoice").agg(
        customer_id=("CustomerID", "first"), ordered_at=("InvoiceDate", "min")
    )
    orders.index = orders.index.str.replace(r"\D", "", regex=True).astype("int64")
    return {
        "raw": raw,
        "kept": kept,
        "customers": customers,
        "orders": orders,
        "names": names[names.index.isin(kept["code"])],
    }


@pytest.mark.realdata
def test_real_reader_keeps_the_known_figures(online_retail_path):
    table = read_online_retail(online_retail_path)
    df = table.to_pandas()
    assert len(df) == 541_909
    assert df["InvoiceNo"].nunique() == 25_900
    assert df["CustomerID"].nunique() == 4_372
    assert df["Country"].nunique() == 38
    assert round((df["Quantity"] * df["UnitPrice"]).sum(), 2) == pytest.approx(9_747_747.93)
    assert df["CustomerID"].isna().sum() == 135_080


@pytest.mark.realdata
def test_real_counts_match_an_independent_computation(real_load, expected):
    report, _ = real_load
    kept = expected["kept"]
    assert report.rows_read == 541_909
    assert report.lines_without_customer == 135_080  # the README's figure, before de-duplication
    assert report.dropped["exact_duplicate"] == 5_268  # the README's figure
    assert report.dropped["stock_adjustment"] == 1_336  # the README's figure
    assert report.rows_read - report.rows_dropped == report.rows_kept == len(kept)
    assert report.customers == kept["CustomerID"].nunique()
    assert report.orders == kept["invoice"].nunique()
    assert report.returns == kept.loc[kept["invoice"].str.startswith("C"), "invoice"].nunique()
    assert report.products == kept["code"].nunique()
    assert report.net_sales == pytest.approx((kept["Quantity"] * kept["UnitPrice"]).sum(), abs=1)
    assert report.order_id_offsets == 0
    assert report.first_ordered_at == dt.datetime(2010, 12, 1, 8, 26)
    assert report.last_ordered_at == dt.datetime(2011, 12, 9, 12, 50)
    raw_codes = expected["raw"]["StockCode"].str.strip().str.upper()
    for code, n in report.non_product_codes.items():
        assert 0 < n <= (raw_codes == code).sum()
    assert sum(report.non_product_codes.values()) == report.dropped["non_product_code"]


@pytest.mark.realdata
def test_real_tables_match_an_independent_computation(real_load, expected):
    _, warehouse = real_load
    con = connect(warehouse, read_only=True)
    try:
        customers = (
            con.sql("select customer_id, created_at, country from raw.customers")
            .df()
            .set_index("customer_id")
            .sort_index()
        )
        orders = con.sql("select * from raw.orders").df().set_index("order_id").sort_index()
        products = con.sql("select * from raw.products").df().set_index("product_id")
    finally:
        con.close()
    want = expected["customers"].sort_index()
    assert customers.index.tolist() == want.index.tolist()
    assert (customers["created_at"].to_numpy() == want["created_at"].to_numpy()).all()
    assert customers["country"].tolist() == want["Country"].tolist()
    want_orders = expected["orders"].sort_index()
    assert orders.index.is_unique
    assert orders.index.tolist() == want_orders.index.tolist()
    assert orders["customer_id"].tolist() == want_orders["customer_id"].tolist()
    assert (orders["ordered_at"].to_numpy() == want_orders["ordered_at"].to_numpy()).all()
    names = expected["names"]
    assert products["product_name"].sort_index().to_dict() == names.sort_index().to_dict()
    assert products["category"].isna().all()


@pytest.mark.realdata
def test_real_returns_and_order_invariants(real_load):
    _, warehouse = real_load
    checks = read_raw(
        warehouse,
        """
        with per_order as (
            select order_id, min(quantity) as lo, max(quantity) as hi
            from raw.order_lines group by order_id
        )
        select
            (select count(*) from per_order where lo < 0 and hi > 0) as mixed_orders,
            (select count(*) from per_order
             left join raw.orders using (order_id)
             left join raw.customers using (customer_id)
             where lo < 0 and customers.customer_id is null) as orphan_returns,
            (select count(*) - count(distinct order_id) from raw.orders) as duplicate_ids,
            (select count(*) from raw.order_lines where unit_price <= 0 or quantity = 0) as bad,
            (select count(*) from raw.orders
             left join raw.customers using (customer_id)
             where orders.ordered_at < customers.created_at) as before_created
        """,
    )
    assert checks == [(0, 0, 0, 0, 0)]


@pytest.mark.realdata
def test_real_group_sizes_are_reasonable(real_load):
    report, _ = real_load
    assert set(report.group_sizes) == {
        "christmas",
        "bags",
        "kitchen",
        "candles_and_lights",
        "party",
        "stationery",
        "gifts",
        "home_decor",
        "garden",
    }
    for group, (products, buyers) in report.group_sizes.items():
        assert 50 <= products <= report.products // 4, group
        assert 500 <= buyers <= report.customers, group


@pytest.mark.realdata
@pytest.mark.slow
def test_real_raw_dbt_tests_pass(real_load):
    from models_py._dbt import run_dbt

    _, warehouse = real_load
    outcome = run_dbt(
        Settings(warehouse=warehouse), ["build", "--select", "source:raw+", "--exclude", "marts"]
    )
    assert outcome.success
    assert outcome.count("fail") == 0 and outcome.count("error") == 0
    assert outcome.count("pass") >= 15
