"""UCI Online Retail (and Online Retail II) into the raw input contract.

The file is a transaction log of a UK online gift retailer: one row per invoice line. The loader
reads CSV, XLSX or parquet in either column spelling, applies the cleaning rules documented in
``docs/data/online_retail.md`` in DuckDB SQL (each rule counted), and writes customers, orders,
order lines, products, empty email events and treatments, and product-group rules to the
warehouse in one transaction.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import logging
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa

from models_py._errors import InputDataError
from models_py._warehouse import connect
from models_py.ingest._groups import read_group_rules, rules_to_arrow
from models_py.ingest._raw import RAW_CONTRACT, RAW_SCHEMA, empty_raw_table, write_raw_tables

logger = logging.getLogger(__name__)

DEFAULT_GROUPS_PATH = Path(__file__).resolve().parent / "online_retail_groups.yml"

#: Canonical column (UCI Online Retail spelling) -> accepted spellings, compared after lowercasing
#: and removing everything but letters and digits ("Customer ID" -> "customerid").
COLUMNS: dict[str, tuple[str, ...]] = {
    "InvoiceNo": ("invoiceno", "invoice"),
    "StockCode": ("stockcode",),
    "Description": ("description",),
    "Quantity": ("quantity",),
    "InvoiceDate": ("invoicedate",),
    "UnitPrice": ("unitprice", "price"),
    "CustomerID": ("customerid",),
    "Country": ("country",),
}
_TEXT_COLUMNS = ("InvoiceNo", "StockCode", "Description", "Country")

#: Stock codes that are fees, postage, discounts, samples or accounting adjustments, not products
#: (compared after trimming and upper-casing), with what they are.
NON_PRODUCT_CODES: dict[str, str] = {
    "POST": "postage",
    "DOT": "dotcom postage",
    "C2": "carriage",
    "M": "manual price adjustment",
    "D": "discount",
    "S": "samples",
    "BANK CHARGES": "bank charges",
    "AMAZONFEE": "Amazon fee",
    "CRUK": "CRUK charity commission",
    "B": "adjust bad debt",
    "PADS": "cushion pads at a nominal price",
    "23444": "next day carriage (numeric code, found by inspecting descriptions)",
    "23574": "packing charge (numeric code)",
    "23702": "high resolution image (a service, numeric code)",
    "22016": "gift voucher GBP 100 (numeric code)",
    "ADJUST": "adjustment (Online Retail II)",
    "ADJUST2": "adjustment (Online Retail II)",
    "TEST001": "test line (Online Retail II)",
    "TEST002": "test line (Online Retail II)",
}
#: Gift vouchers (gift_0001_10 ... gift_0001_50): money, not products.
NON_PRODUCT_PATTERN = r"^GIFT_0001_"

#: Cleaning rules in the order they are applied; a line is counted under the first rule it meets.
RULES: dict[str, str] = {
    "exact_duplicate": "exact copy of an earlier line (all 8 columns equal); one copy kept",
    "missing_value": "no invoice, stock code, quantity, price or date",
    "non_product_code": "fee, postage, discount, sample, adjustment or gift-voucher stock code",
    "stock_adjustment": "negative quantity on an invoice that is not a cancellation",
    "cancellation_positive_quantity": "positive quantity on a cancellation invoice",
    "quantity_zero": "quantity = 0",
    "price_not_positive": "unit price <= 0 (free samples, damages, write-offs)",
    "adjustment_invoice": "invoice number other than digits or C + digits (e.g. A563185)",
    "missing_customer": "no CustomerID: cannot be attributed to a customer",
}

#: Cancellations whose number collides with a sale get this offset added (never on the UCI file).
ORDER_ID_OFFSET = 1_000_000_000

_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%y %H:%M",
    "%d/%m/%y %H:%M",
    "%d.%m.%Y %H:%M",
)


# ------------------------------------------------------------------------------------------ report


@dataclass(frozen=True, kw_only=True)
class LoadReport:
    """What `load_online_retail` read, dropped and wrote.

    Attributes
    ----------
    source, warehouse : Path
        The file read and the DuckDB file written.
    rows_read, rows_kept : int
        Invoice lines in the file and order lines written to ``raw.order_lines``.
    dropped : Mapping[str, int]
        Lines dropped per cleaning rule (see `RULES`), in the order the rules apply; a line is
        counted under the first rule it meets.
    non_product_codes : Mapping[str, int]
        Lines dropped per non-product stock code.
    lines_without_customer : int
        Lines without CustomerID in the file, before de-duplication.
    customers, orders, returns, return_lines, products : int
        Rows written: customers, orders (invoices with a customer; returns included), returns
        (cancellation invoices), their lines, and products.
    first_ordered_at, last_ordered_at : datetime or None
        Date range of the orders written.
    net_sales : float
        Sum of quantity * unit_price over the lines written (returns subtract), GBP.
    order_id_offsets : int
        Cancellation invoices whose number collided with a sale and were offset by
        `ORDER_ID_OFFSET`.
    group_sizes : Mapping[str, tuple[int, int]]
        Product group -> (products matched, customers who bought one of them).
    """

    source: Path
    warehouse: Path
    rows_read: int
    rows_kept: int
    dropped: Mapping[str, int]
    non_product_codes: Mapping[str, int]
    lines_without_customer: int
    customers: int
    orders: int
    returns: int
    return_lines: int
    products: int
    first_ordered_at: dt.datetime | None
    last_ordered_at: dt.datetime | None
    net_sales: float
    order_id_offsets: int = 0
    group_sizes: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())

    def summary(self) -> str:
        """A short multi-line report for people."""

        def when(t: dt.datetime | None) -> str:
            return t.strftime("%Y-%m-%d %H:%M") if t else "-"

        lines = [
            f"Online Retail {self.source.name} -> {self.warehouse}",
            f"  lines read {self.rows_read:,}, kept {self.rows_kept:,}, "
            f"dropped {self.rows_dropped:,}:",
        ]
        lines += [f"    {rule:<31}{n:>9,}" for rule, n in self.dropped.items() if n]
        if self.non_product_codes:
            codes = ", ".join(f"{c} {n:,}" for c, n in self.non_product_codes.items())
            lines.append(_wrap(f"  non-product codes: {codes}"))
        lines += [
            f"  lines without CustomerID (before de-duplication): {self.lines_without_customer:,}",
            f"  customers {self.customers:,}, orders {self.orders:,} "
            f"(returns {self.returns:,}), products {self.products:,}",
            f"  orders {when(self.first_ordered_at)} .. {when(self.last_ordered_at)}, "
            f"net sales {self.net_sales:,.2f}",
        ]
        if self.order_id_offsets:
            lines.append(
                f"  {self.order_id_offsets:,} cancellation numbers collided with sales: "
                f"order_id offset by {ORDER_ID_OFFSET:,}"
            )
        if self.group_sizes:
            sizes = ", ".join(f"{g} {p:,}/{b:,}" for g, (p, b) in self.group_sizes.items())
            lines.append(_wrap(f"  product groups (products/buyers): {sizes}"))
        return "\n".join(lines)


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=78, subsequent_indent="    ", break_on_hyphens=False)


# -------------------------------------------------------------------------------------------- read


def _norm(name: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _map_columns(names: Sequence[object], where: str) -> dict[str, int]:
    """Canonical column -> position in `names`; InputDataError naming what is missing."""
    normalized = [_norm(n) for n in names]
    found: dict[str, int] = {}
    for canonical, aliases in COLUMNS.items():
        for i, n in enumerate(normalized):
            if n in aliases:
                found[canonical] = i
                break
    missing = [c for c in COLUMNS if c not in found]
    if missing:
        spelled = [
            c + (f" (or {COLUMNS[c][1].capitalize()})" if len(COLUMNS[c]) > 1 else "")
            for c in missing
        ]
        raise InputDataError(
            f"{where} is not an Online Retail file: missing column(s) {', '.join(spelled)}. "
            f"Found: {', '.join(str(n) for n in names) or 'no columns'}. Expected the UCI Online "
            "Retail columns (InvoiceNo, StockCode, Description, Quantity, InvoiceDate, "
            "UnitPrice, CustomerID, Country) or the Online Retail II spelling (Invoice, Price, "
            "Customer ID)."
        )
    return found


def _select_canonical(table: pa.Table, where: str) -> pa.Table:
    found = _map_columns(table.column_names, where)
    return pa.table({c: table.column(i) for c, i in found.items()})


def _read_parquet(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputDataError(f"cannot read {path} as parquet: {exc}") from exc
    return _select_canonical(table, str(path))


def _read_csv(path: Path) -> pa.Table:
    import pyarrow.csv as pcsv

    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as fh:
            first = fh.readline()
    except OSError as exc:
        raise InputDataError(f"cannot read {path}: {exc}") from exc
    if not first.strip():
        raise InputDataError(f"{path} is empty: expected a header row and invoice lines")
    delimiter = max(",;\t", key=first.count)
    header = next(csv.reader(io.StringIO(first), delimiter=delimiter))
    _map_columns(header, str(path))  # fail early, before reading the whole file
    convert = pcsv.ConvertOptions(
        column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=True
    )
    parse = pcsv.ParseOptions(delimiter=delimiter)
    last_error: Exception | None = None
    for encoding in ("utf8", "latin-1"):
        try:
            table = pcsv.read_csv(
                path,
                read_options=pcsv.ReadOptions(encoding=encoding),
                parse_options=parse,
                convert_options=convert,
            )
            break
        except pa.ArrowInvalid as exc:  # invalid UTF-8 (the UCI CSV is Latin-1) or bad rows
            last_error = exc
    else:
        raise InputDataError(f"cannot parse {path} as CSV: {last_error}") from last_error
    return _select_canonical(table, str(path))


def _cell_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    text = str(value)
    return text if text.strip() else None


def _xlsx_column(name: str, values: list[object]) -> pa.Array:
    if name in _TEXT_COLUMNS:
        return pa.array([_cell_text(v) for v in values], pa.string())
    if name == "InvoiceDate":
        if all(v is None or isinstance(v, dt.datetime) for v in values):
            return pa.array(values, pa.timestamp("us"))
    elif all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array([_cell_text(v) for v in values], pa.string())


def _read_xlsx(path: Path) -> pa.Table:
    try:
        import openpyxl
    except ImportError as exc:
        raise InputDataError(
            f"reading {path} needs openpyxl: pip install 'propensity[excel]' "
            "(or save the workbook as CSV)"
        ) from exc
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError and its own errors
        raise InputDataError(f"cannot open {path} as an Excel workbook: {exc}") from exc
    columns: dict[str, list[object]] = {c: [] for c in COLUMNS}
    try:
        for sheet in workbook.worksheets:
            rows = sheet.iter_rows(values_only=True)
            header = next((r for r in rows if r and any(v is not None for v in r)), None)
            if header is None:
                logger.debug("sheet %s of %s is empty", sheet.title, path)
                continue
            found = list(
                _map_columns(
                    ["" if v is None else v for v in header], f"{path} (sheet {sheet.title!r})"
                ).items()
            )
            n = 0
            for row in rows:
                if not row or all(v is None for v in row):
                    continue
                width = len(row)
                for name, i in found:
                    columns[name].append(row[i] if i < width else None)
                n += 1
            logger.info("read %s lines from sheet %s", f"{n:,}", sheet.title)
    finally:
        workbook.close()
    return pa.table({c: _xlsx_column(c, v) for c, v in columns.items()})


def _text_expr(name: str, typ: pa.DataType) -> str:
    col = f'"{name}"'
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return col
    if pa.types.is_floating(typ):
        return (
            f"case when {col} = trunc({col}) then cast(cast({col} as bigint) as varchar) "
            f"else cast({col} as varchar) end"
        )
    return f"cast({col} as varchar)"


def _number_expr(name: str, typ: pa.DataType) -> str:
    col = f'"{name}"'
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return f"try_cast(trim({col}) as double)"
    return f"try_cast({col} as double)"


def _memory_connection():
    """A private in-memory DuckDB for the heavy lifting (no progress bar on the terminal)."""
    con = duckdb.connect()
    con.execute("set enable_progress_bar = false").fetchall()
    return con


def _parses_all(con, fmt: str) -> bool:
    bad = con.execute(
        """
        select count(*) from source_file
        where "InvoiceDate" is not null and try_strptime(trim("InvoiceDate"), $fmt) is null
        """,
        {"fmt": fmt},
    ).fetchall()[0][0]
    return bad == 0


def _detect_date_format(con, path: Path) -> str:
    """The first format in `_DATE_FORMATS` that parses every non-empty InvoiceDate."""
    fmt = next((f for f in _DATE_FORMATS if _parses_all(con, f)), None)
    if fmt is None:
        example = con.execute(
            'select "InvoiceDate" from source_file where "InvoiceDate" is not null limit 1'
        ).fetchall()
        raise InputDataError(
            f"cannot parse InvoiceDate in {path} (e.g. {example[0][0] if example else None!r}): "
            "expected YYYY-MM-DD HH:MM[:SS], M/D/YYYY H:MM or D/M/YYYY H:MM"
        )
    if "%m/%d" in fmt and _parses_all(con, fmt.replace("%m/%d", "%d/%m")):
        logger.warning(
            "InvoiceDate in %s reads as month/day and as day/month; using month/day (the UCI "
            "original). Convert the file if its dates are day/month.",
            path,
        )
    return fmt


def _normalize(table: pa.Table, path: Path) -> pa.Table:
    """Cast the canonical columns to their types; unparseable values are an InputDataError."""
    con = _memory_connection()
    try:
        con.register("source_file", table)
        types = {c: table.schema.field(c).type for c in COLUMNS}
        date_type = types["InvoiceDate"]
        params: dict[str, object] = {}
        if pa.types.is_string(date_type) or pa.types.is_large_string(date_type):
            params["fmt"] = _detect_date_format(con, path)
            date_expr = 'try_strptime(trim("InvoiceDate"), $fmt)'
        else:
            date_expr = 'try_cast("InvoiceDate" as timestamp)'
        text = {c: _text_expr(c, types[c]) for c in _TEXT_COLUMNS}
        numbers = {c: _number_expr(c, types[c]) for c in ("Quantity", "UnitPrice", "CustomerID")}
        con.execute(
            f"""
            create temp table parsed as
            select
                {text["InvoiceNo"]} as invoice_no,
                {text["StockCode"]} as stock_code,
                {text["Description"]} as description,
                "Quantity" as quantity_raw,
                {numbers["Quantity"]} as quantity,
                {date_expr} as invoice_date,
                "InvoiceDate" as invoice_date_raw,
                "UnitPrice" as unit_price_raw,
                {numbers["UnitPrice"]} as unit_price,
                "CustomerID" as customer_id_raw,
                {numbers["CustomerID"]} as customer_id,
                {text["Country"]} as country
            from source_file
            """,
            params,
        ).fetchall()
        for column, parsed, integer in (
            ("Quantity", "quantity", True),
            ("UnitPrice", "unit_price", False),
            ("CustomerID", "customer_id", True),
            ("InvoiceDate", "invoice_date", False),
        ):
            bad = f"{parsed}_raw is not null and {parsed} is null"
            if integer:
                bad += f" or {parsed} != trunc({parsed})"
            row = con.execute(
                f"select count(*), any_value(cast({parsed}_raw as varchar)) from parsed where {bad}"
            ).fetchall()[0]
            if row[0]:
                kind = "whole numbers" if integer else "numbers" if parsed != "invoice_date" else ""
                raise InputDataError(
                    f"{row[0]:,} value(s) of {column} in {path} cannot be read"
                    + (f" as {kind}" if kind else "")
                    + f" (e.g. {row[1]!r}); fix or remove those lines"
                )
        return con.sql(
            """
            select
                invoice_no as "InvoiceNo",
                stock_code as "StockCode",
                description as "Description",
                cast(quantity as bigint) as "Quantity",
                cast(invoice_date as timestamp) as "InvoiceDate",
                unit_price as "UnitPrice",
                cast(customer_id as bigint) as "CustomerID",
                country as "Country"
            from parsed
            """
        ).to_arrow_table()
    finally:
        con.close()


def read_online_retail(path: Path | str) -> pa.Table:
    """Read an Online Retail or Online Retail II file (CSV, XLSX or parquet).

    Every sheet of a workbook is read (Online Retail II has one per year). Whatever the input
    spelling, the result has the UCI Online Retail columns and types: ``InvoiceNo``,
    ``StockCode``, ``Description`` (string), ``Quantity`` (int64), ``InvoiceDate`` (timestamp),
    ``UnitPrice`` (float64), ``CustomerID`` (int64, nullable), ``Country`` (string). Values are
    not cleaned (see `load_online_retail`).

    Raises
    ------
    InputDataError
        When the file is missing or unreadable, a column is missing (named), or values cannot be
        read as numbers or timestamps.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputDataError(
            f"{path} does not exist. Download Online Retail from the UCI Machine Learning "
            "Repository (dataset 352 or 502 for Online Retail II) and pass the file's path."
        )
    if path.is_dir():
        raise InputDataError(f"{path} is a directory: pass the CSV, XLSX or parquet file")
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        table = _read_parquet(path)
    elif suffixes and suffixes[-1] in (".xlsx", ".xlsm"):
        table = _read_xlsx(path)
    elif suffixes and (
        suffixes[-1] in (".csv", ".txt", ".tsv") or suffixes[-2:] == [".csv", ".gz"]
    ):
        table = _read_csv(path)
    else:
        raise InputDataError(
            f"cannot tell the format of {path}: use a .csv (or .csv.gz), .xlsx or .parquet file"
            + (" (save an old .xls workbook as .xlsx or CSV)" if suffixes[-1:] == [".xls"] else "")
        )
    logger.info("read %s lines from %s", f"{table.num_rows:,}", path)
    return _normalize(table, path)


# ----------------------------------------------------------------------------------------- clean


def _sql(name: str) -> str:
    """The cleaning statement `name` (online_retail_sql/NAME.sql, shipped as package data).

    Parameters are bound (``$name``); the statements read the registered tables
    ``source_lines``, ``group_rules`` and ``products_out`` and the temp tables they create.
    """
    return (resources.files(__package__) / "online_retail_sql" / f"{name}.sql").read_text()


def clean_online_retail(
    lines: pa.Table, *, rules: pa.Table, source: Path, warehouse: Path
) -> tuple[dict[str, pa.Table], LoadReport]:
    """Apply the cleaning rules to lines from `read_online_retail`.

    Returns the raw tables to write and the report. Raises InputDataError when an invoice has
    several customers or order ids are not unique after the documented offset.
    """
    con = _memory_connection()
    try:
        con.register("source_lines", lines)
        con.register("group_rules", rules)
        con.execute(
            _sql("classify"),
            {
                "non_product_codes": list(NON_PRODUCT_CODES),
                "non_product_pattern": NON_PRODUCT_PATTERN,
            },
        ).fetchall()
        rows_read, without_customer = con.execute(
            "select count(*), count(*) filter (where customer_id is null) from classified"
        ).fetchall()[0]
        counts = dict(
            con.execute(
                "select drop_rule, count(*) from classified where drop_rule is not null "
                "group by drop_rule"
            ).fetchall()
        )
        dropped = {rule: int(counts.get(rule, 0)) for rule in RULES}
        codes = {
            code: int(n)
            for code, n in con.execute(
                "select product_id, count(*) as n from classified "
                "where drop_rule = 'non_product_code' group by product_id order by n desc, "
                "product_id"
            ).fetchall()
        }

        shared = con.execute(
            """
            select invoice, count(distinct customer_id) as n from classified
            where drop_rule is null group by invoice having n > 1 order by invoice limit 5
            """
        ).fetchall()
        if shared:
            names = ", ".join(f"{inv} ({n} customers)" for inv, n in shared)
            raise InputDataError(
                f"invoices in {source} belong to several customers: {names}. An invoice must "
                "belong to one customer; fix CustomerID on those lines."
            )
        con.execute(_sql("invoices"), {"offset": ORDER_ID_OFFSET}).fetchall()
        duplicated = con.execute(
            "select order_id from invoices group by order_id having count(*) > 1 limit 5"
        ).fetchall()
        if duplicated:
            raise InputDataError(
                f"order ids derived from invoice numbers in {source} are not unique even after "
                f"offsetting colliding cancellations by {ORDER_ID_OFFSET:,}: "
                f"{', '.join(str(r[0]) for r in duplicated)}"
            )
        tables = {
            "customers": con.sql(_sql("customers")).to_arrow_table(),
            "orders": con.sql(
                "select order_id, customer_id, ordered_at from invoices order by order_id"
            ).to_arrow_table(),
            "order_lines": con.sql(_sql("order_lines")).to_arrow_table(),
            "products": con.sql(_sql("products")).to_arrow_table(),
            "email_events": empty_raw_table("email_events"),
            "treatments": empty_raw_table("treatments"),
            "product_group_rules": rules,
        }
        con.register("products_out", tables["products"])
        group_sizes = {
            g: (int(p), int(b)) for g, p, b in con.execute(_sql("group_sizes")).fetchall()
        }
        n_orders, n_returns, n_offset, first_at, last_at = con.execute(
            """
            select
                count(*), count(*) filter (where is_cancellation),
                count(*) filter (where is_offset), min(ordered_at), max(ordered_at)
            from invoices
            """
        ).fetchall()[0]
        return_lines, net_sales = con.execute(
            """
            select
                count(*) filter (where quantity < 0),
                coalesce(sum(round(quantity * unit_price, 2)), 0)
            from classified where drop_rule is null
            """
        ).fetchall()[0]
    finally:
        con.close()
    report = LoadReport(
        source=source,
        warehouse=warehouse,
        rows_read=int(rows_read),
        rows_kept=tables["order_lines"].num_rows,
        dropped=dropped,
        non_product_codes=codes,
        lines_without_customer=int(without_customer),
        customers=tables["customers"].num_rows,
        orders=int(n_orders),
        returns=int(n_returns),
        return_lines=int(return_lines),
        products=tables["products"].num_rows,
        first_ordered_at=first_at,
        last_ordered_at=last_at,
        net_sales=round(float(net_sales), 2),
        order_id_offsets=int(n_offset),
        group_sizes=group_sizes,
    )
    return tables, report


# ------------------------------------------------------------------------------------------ load


def load_online_retail(
    path: Path | str, warehouse: Path | str, *, groups: Path | str | None = None
) -> LoadReport:
    """Load UCI Online Retail (or Online Retail II) into the warehouse's raw contract.

    Reads the file (`read_online_retail`), applies the documented cleaning rules in DuckDB, and
    replaces ``raw.customers``, ``raw.orders``, ``raw.order_lines``, ``raw.products``,
    ``raw.email_events`` and ``raw.treatments`` (both empty) and ``raw.product_group_rules`` in one
    transaction. Cancellation invoices become returns: orders of the same customer whose lines
    have negative quantity.

    Parameters
    ----------
    path : Path or str
        CSV, XLSX or parquet file in the Online Retail or Online Retail II spelling.
    warehouse : Path or str
        DuckDB file to write (created when missing).
    groups : Path or str, optional
        Product-group YAML; default: the keyword rules shipped in ``online_retail_groups.yml``.

    Returns
    -------
    LoadReport
        Lines read, kept and dropped per rule, and the counts written.

    Raises
    ------
    InputDataError
        Missing or unreadable file, missing columns, or data no documented rule can clean.
    ConfigError
        Invalid product-group YAML.
    WarehouseError
        The warehouse cannot be opened (e.g. locked by another process).
    """
    source = Path(path).expanduser()
    warehouse = Path(warehouse).expanduser()
    rules = rules_to_arrow(read_group_rules(groups if groups is not None else DEFAULT_GROUPS_PATH))
    lines = read_online_retail(source)
    tables, report = clean_online_retail(lines, rules=rules, source=source, warehouse=warehouse)
    con = connect(warehouse)
    try:
        written = write_raw_tables(con, tables)
        stale = con.execute(
            "select table_name from information_schema.tables where table_schema = ? "
            "order by table_name",
            [RAW_SCHEMA],
        ).fetchall()
    finally:
        con.close()
    extra = [t for (t,) in stale if t not in RAW_CONTRACT]
    if extra:
        logger.warning(
            "raw schema of %s also holds tables this loader does not write: %s (left as they are)",
            warehouse,
            ", ".join(extra),
        )
    logger.info("wrote %s", ", ".join(f"{t} {n:,}" for t, n in written.items()))
    return report
