"""Kaggle "Customer Personality Analysis" (marketing_campaign.csv) into a customer-level table.

The file is a CRM extract of 2,240 customers of a food retailer with their spend per category,
channel use, earlier campaign acceptances and `Response` to the last campaign (0/1). It has no
time axis: one row per customer, so it is written as ``datasets.marketing_campaign`` (not into the
``raw`` transaction contract), where a model spec with ``validation: stratified_kfold`` trains on
it. The cleaning rules are documented in ``docs/data/marketing_campaign.md`` and each is counted.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from models_py._errors import InputDataError
from models_py._warehouse import connect, qualified, quote_ident
from models_py.ingest._raw import write_raw_tables

logger = logging.getLogger(__name__)

DATASETS_SCHEMA = "datasets"
TABLE = "marketing_campaign"

#: The 29 columns of the Kaggle file, in file order.
SOURCE_COLUMNS: tuple[str, ...] = (
    "ID",
    "Year_Birth",
    "Education",
    "Marital_Status",
    "Income",
    "Kidhome",
    "Teenhome",
    "Dt_Customer",
    "Recency",
    "MntWines",
    "MntFruits",
    "MntMeatProducts",
    "MntFishProducts",
    "MntSweetProducts",
    "MntGoldProds",
    "NumDealsPurchases",
    "NumWebPurchases",
    "NumCatalogPurchases",
    "NumStorePurchases",
    "NumWebVisitsMonth",
    "AcceptedCmp3",
    "AcceptedCmp4",
    "AcceptedCmp5",
    "AcceptedCmp1",
    "AcceptedCmp2",
    "Complain",
    "Z_CostContact",
    "Z_Revenue",
    "Response",
)

#: Integer source column -> column written (renamed to the project's naming conventions).
INTEGER_COLUMNS: dict[str, str] = {
    "Kidhome": "kids_at_home",
    "Teenhome": "teens_at_home",
    "Recency": "days_since_last_purchase",
    "MntWines": "spend_wines_2y",
    "MntFruits": "spend_fruits_2y",
    "MntMeatProducts": "spend_meat_2y",
    "MntFishProducts": "spend_fish_2y",
    "MntSweetProducts": "spend_sweets_2y",
    "MntGoldProds": "spend_gold_2y",
    "NumDealsPurchases": "deal_purchases",
    "NumWebPurchases": "web_purchases",
    "NumCatalogPurchases": "catalog_purchases",
    "NumStorePurchases": "store_purchases",
    "NumWebVisitsMonth": "web_visits_last_month",
    "AcceptedCmp1": "accepted_campaign_1",
    "AcceptedCmp2": "accepted_campaign_2",
    "AcceptedCmp3": "accepted_campaign_3",
    "AcceptedCmp4": "accepted_campaign_4",
    "AcceptedCmp5": "accepted_campaign_5",
    "Complain": "has_complained",
}

#: Education as written in the file -> integer code (an ordering of the degree, Basic lowest).
#: "2n Cycle" is the Bologna second cycle (a master's level), kept as its own code.
EDUCATION_CODES: dict[str, int] = {
    "Basic": 0,
    "2n Cycle": 1,
    "Graduation": 2,
    "Master": 3,
    "PhD": 4,
}
#: Marital statuses kept as they are; anything else (Alone, Absurd, YOLO) becomes "other".
MARITAL_STATUS_CODES: dict[str, int] = {
    "Married": 0,
    "Together": 1,
    "Single": 2,
    "Divorced": 3,
    "Widow": 4,
    "other": 5,
}
#: Incomes above this are entry errors (the file has one, 666,666; the next is 162,397).
MAX_PLAUSIBLE_INCOME = 200_000
#: Birth years before this are entry errors (1893, 1899, 1900: over 110 years old in 2014).
MIN_PLAUSIBLE_BIRTH_YEAR = 1920

#: Columns never written: constant in the Kaggle file (cost 3 and revenue 11 per contact).
DROPPED_COLUMNS = ("Z_CostContact", "Z_Revenue")

#: Counted cleaning rules, in the order they apply (a row may meet several: each is counted).
RULES: dict[str, str] = {
    "near_duplicate": "row equal to a row with a lower ID in every column but ID: dropped",
    "income_missing": "Income empty: median income imputed, is_income_imputed = true",
    "income_implausible": (
        f"Income above {MAX_PLAUSIBLE_INCOME:,}: treated as missing (imputed and flagged)"
    ),
    "birth_year_implausible": (
        f"Year_Birth before {MIN_PLAUSIBLE_BIRTH_YEAR}: median birth year imputed, "
        "is_birth_year_imputed = true"
    ),
    "marital_status_other": "Marital_Status not in "
    + ", ".join(list(MARITAL_STATUS_CODES)[:-1])
    + ': set to "other"',
    "education_unknown": "Education not in " + ", ".join(EDUCATION_CODES) + ": an error",
}


@dataclass(frozen=True, kw_only=True)
class MarketingCampaignReport:
    """What `load_marketing_campaign` read, cleaned and wrote.

    Attributes
    ----------
    source, warehouse : Path
        The file read and the DuckDB file written.
    relation : str
        The table written (``datasets.marketing_campaign``).
    rows_read, rows_written : int
        Customers in the file and rows written.
    cleaned : Mapping[str, int]
        Rows touched per cleaning rule (see `RULES`).
    constant_columns : tuple of str
        Source columns holding a single value in every row. `DROPPED_COLUMNS` (constant in the
        Kaggle file) are never written; any other constant column is kept with a warning, so the
        table's columns (and the models trained on them) do not depend on the file's content.
    positives : int
        Rows written with response = 1.
    income_imputed_with, birth_year_imputed_with : float, int
        The medians used for imputation.
    reference_date : date
        Day after the latest enrolment date; ``days_since_enrolment`` counts up to it.
    """

    source: Path
    warehouse: Path
    relation: str
    rows_read: int
    rows_written: int
    cleaned: Mapping[str, int]
    constant_columns: tuple[str, ...]
    positives: int
    income_imputed_with: float
    birth_year_imputed_with: int
    reference_date: dt.date
    marital_status_values: Mapping[str, int] = field(default_factory=dict)

    @property
    def response_rate(self) -> float:
        return self.positives / self.rows_written if self.rows_written else 0.0

    def summary(self) -> str:
        """A short multi-line report for people."""
        lines = [
            f"Customer Personality {self.source.name} -> {self.warehouse} ({self.relation})",
            f"  customers read {self.rows_read:,}, written {self.rows_written:,}; response "
            f"{self.positives:,} ({self.response_rate:.1%})",
        ]
        lines += [f"    {rule:<24}{n:>7,}" for rule, n in self.cleaned.items() if n]
        lines.append(
            f"  constant columns in the file: {', '.join(self.constant_columns) or 'none'}; "
            f"not written: {', '.join(DROPPED_COLUMNS)}"
        )
        lines.append(
            f"  imputed: income {self.income_imputed_with:,.0f} (median), birth year "
            f"{self.birth_year_imputed_with} (median); days_since_enrolment as of "
            f"{self.reference_date:%Y-%m-%d}"
        )
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------- read


def _open_source(con, path: Path) -> None:
    """Register the file's rows as the view ``src`` (every column as text)."""
    if not path.exists():
        raise InputDataError(
            f"{path} does not exist: download marketing_campaign.csv from Kaggle "
            "(Customer Personality Analysis) and pass its path"
        )
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            con.execute("create temp table src_typed as select * from read_parquet(?)", [str(path)])
            cols = [r[0] for r in con.execute("describe src_typed").fetchall()]
            casts = ", ".join(
                f"cast({quote_ident(c)} as varchar) as {quote_ident(c)}" for c in cols
            )
            con.execute(f"create view src as select {casts} from src_typed")
        elif name.endswith((".csv", ".csv.gz", ".tsv", ".txt")):
            # The Kaggle file is tab-separated with CRLF line ends; the sniffer finds either.
            con.execute(
                "create temp table src as "
                "select * from read_csv(?, all_varchar = true, header = true)",
                [str(path)],
            )
        else:
            raise InputDataError(
                f"{path}: unknown file type; expected .csv (tab or comma separated) or .parquet"
            )
        columns = [r[0] for r in con.execute("describe src").fetchall()]
    except duckdb.Error as exc:
        raise InputDataError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    missing = [c for c in SOURCE_COLUMNS if c not in columns]
    if missing:
        raise InputDataError(
            f"{path} lacks column(s) {', '.join(missing)} of the Customer Personality file "
            f"(found: {', '.join(columns[:12])}{' ...' if len(columns) > 12 else ''})"
        )


def _typed(con, path: Path) -> None:
    """Create the view ``typed``: parsed values; unparseable values are an `InputDataError`."""
    q = quote_ident
    ints = ["ID", "Year_Birth", *INTEGER_COLUMNS, "Z_CostContact", "Z_Revenue", "Response"]
    parts = [f"try_cast(trim({q(c)}) as bigint) as {q(c)}" for c in ints]
    parts += [
        "nullif(trim(Education), '') as Education",
        "nullif(trim(Marital_Status), '') as Marital_Status",
        "try_cast(nullif(trim(Income), '') as double) as Income",
        "coalesce(try_strptime(trim(Dt_Customer), '%d-%m-%Y'), "
        "try_strptime(trim(Dt_Customer), '%Y-%m-%d'))::date as Dt_Customer",
    ]
    con.execute(f"create temp table typed as select {', '.join(parts)} from src")
    # A value that is present in the file but does not parse is an error, never a silent null.
    checks = [(c, f"try_cast(trim({q(c)}) as bigint)") for c in ints]
    checks += [
        ("Income", "try_cast(nullif(trim(Income), '') as double)"),
        (
            "Dt_Customer",
            "coalesce(try_strptime(trim(Dt_Customer), '%d-%m-%Y'), "
            "try_strptime(trim(Dt_Customer), '%Y-%m-%d'))",
        ),
    ]
    for col, expr in checks:
        bad = con.execute(
            f"select {q(col)} from src where nullif(trim({q(col)}), '') is not null "
            f"and {expr} is null limit 3"
        ).fetchall()
        if bad:
            raise InputDataError(
                f"{path}: column {col} holds value(s) that are not "
                f"{'dates (dd-mm-yyyy)' if col == 'Dt_Customer' else 'numbers'}: "
                + ", ".join(repr(b[0]) for b in bad)
            )
    required = [c for c in SOURCE_COLUMNS if c not in ("Income", "Year_Birth")]
    for col in required:
        n = con.execute(f"select count(*) from typed where {q(col)} is null").fetchall()[0][0]
        if n:
            raise InputDataError(f"{path}: column {col} is empty in {n:,} row(s)")
    dupes = con.execute(
        "select ID, count(*) from typed group by ID having count(*) > 1 order by ID limit 3"
    ).fetchall()
    if dupes:
        raise InputDataError(
            f"{path}: duplicate customer ID(s) {', '.join(str(d[0]) for d in dupes)}"
        )
    for col in ("Response", *[c for c in INTEGER_COLUMNS if c.startswith(("Accepted", "Compl"))]):
        bad = con.execute(f"select distinct {q(col)} from typed where {q(col)} not in (0, 1)")
        values = [r[0] for r in bad.fetchall()]
        if values:
            raise InputDataError(f"{path}: column {col} must be 0 or 1, found {values[:5]}")
    unknown = con.execute(
        "select distinct Education from typed where Education not in "
        f"({', '.join('?' for _ in EDUCATION_CODES)}) order by 1",
        list(EDUCATION_CODES),
    ).fetchall()
    if unknown:
        raise InputDataError(
            f"{path}: unknown Education value(s) {', '.join(repr(u[0]) for u in unknown)}; "
            f"known: {', '.join(EDUCATION_CODES)}"
        )


def _constant_columns(con) -> tuple[str, ...]:
    q = quote_ident
    counts = ", ".join(f"count(distinct {q(c)}) as {q(c)}" for c in SOURCE_COLUMNS)
    row = con.execute(f"select {counts} from typed").fetchall()[0]
    return tuple(c for c, n in zip(SOURCE_COLUMNS, row, strict=True) if n <= 1)


# ---------------------------------------------------------------------------------------- clean


def clean_marketing_campaign(
    path: Path | str, *, keep_duplicates: bool = False
) -> tuple[pa.Table, dict[str, object]]:
    """Read and clean the file; return the customer table and what the cleaning did.

    See `load_marketing_campaign` for the rules. Nothing is written.
    """
    source = Path(path).expanduser()
    con = duckdb.connect()
    try:
        _open_source(con, source)
        _typed(con, source)
        rows_read = con.execute("select count(*) from typed").fetchall()[0][0]
        if rows_read == 0:
            raise InputDataError(f"{source} has no rows")
        constant = _constant_columns(con)
        q = quote_ident
        # near-duplicates: every column but ID equal (nulls compare equal), lowest ID kept.
        same = ", ".join(q(c) for c in SOURCE_COLUMNS if c != "ID")
        con.execute(
            f"create temp table ranked as select *, row_number() over "
            f"(partition by {same} order by ID) > 1 as is_near_duplicate from typed"
        )
        n_dupes = con.execute("select count(*) from ranked where is_near_duplicate").fetchall()[0][
            0
        ]
        keep = "true" if keep_duplicates else "not is_near_duplicate"
        con.execute(f"create temp table kept as select * from ranked where {keep}")
        counts = con.execute(
            """
            select
                count(*) filter (where Income is null),
                count(*) filter (where Income > ?),
                count(*) filter (where Year_Birth < ? or Year_Birth is null),
                count(*) filter (where Marital_Status not in (select unnest(?))),
                max(Dt_Customer) + 1
            from kept
            """,
            [MAX_PLAUSIBLE_INCOME, MIN_PLAUSIBLE_BIRTH_YEAR, list(MARITAL_STATUS_CODES)[:-1]],
        ).fetchall()[0]
        n_income_missing, n_income_bad, n_birth_bad, n_marital_other, reference_date = counts
        income_median, birth_median = con.execute(
            """
            select
                median(Income) filter (where Income <= ?),
                cast(round(median(Year_Birth) filter (where Year_Birth >= ?)) as bigint)
            from kept
            """,
            [MAX_PLAUSIBLE_INCOME, MIN_PLAUSIBLE_BIRTH_YEAR],
        ).fetchall()[0]
        marital_values = dict(
            con.execute(
                "select Marital_Status, count(*) from kept group by 1 order by 2 desc, 1"
            ).fetchall()
        )
        for col in constant:
            if col not in DROPPED_COLUMNS:
                logger.warning("%s: column %s holds one value in every row (kept)", source, col)
        ints = list(INTEGER_COLUMNS)
        int_cols = ",\n".join(f"cast({q(c)} as integer) as {q(INTEGER_COLUMNS[c])}" for c in ints)
        spend = " + ".join(q(c) for c in ints if c.startswith("Mnt"))
        accepted = " + ".join(q(c) for c in ints if c.startswith("AcceptedCmp"))
        marital_case = " ".join(
            f"when ? then {code}" for s, code in MARITAL_STATUS_CODES.items() if s != "other"
        )
        education_case = " ".join(f"when ? then {code}" for code in EDUCATION_CODES.values())
        table = con.sql(
            f"""
            with valid as (
                select
                    *,
                    Income is null or Income > ? as income_bad,
                    Year_Birth is null or Year_Birth < ? as birth_bad,
                    case when Marital_Status in (select unnest(?)) then Marital_Status
                        else 'other' end as marital_status_clean
                from kept
            ),
            final as (
                select
                    cast(ID as bigint) as customer_id,
                    cast(case when birth_bad then ? else Year_Birth end as integer) as birth_year,
                    birth_bad as is_birth_year_imputed,
                    Education as education,
                    cast(case Education {education_case} end as integer) as education_code,
                    marital_status_clean as marital_status,
                    cast(case marital_status_clean {marital_case} else 5 end as integer)
                        as marital_status_code,
                    cast(case when income_bad then ? else Income end as double) as income,
                    income_bad as is_income_imputed,
                    Dt_Customer as enrolled_on,
                    cast(date_diff('day', Dt_Customer, cast(? as date)) as integer)
                        as days_since_enrolment,
                    {int_cols},
                    cast({spend} as integer) as spend_total_2y,
                    cast({accepted} as integer) as accepted_campaigns,
                    cast(Response as integer) as response
                from valid
            )
            select * from final order by customer_id
            """,
            params=[
                MAX_PLAUSIBLE_INCOME,
                MIN_PLAUSIBLE_BIRTH_YEAR,
                list(MARITAL_STATUS_CODES)[:-1],
                birth_median,
                *list(EDUCATION_CODES),
                *[s for s in MARITAL_STATUS_CODES if s != "other"],
                income_median,
                reference_date,
            ],
        ).to_arrow_table()
    except duckdb.Error as exc:
        raise InputDataError(f"cannot clean {source}: {str(exc).splitlines()[0]}") from exc
    finally:
        con.close()
    info: dict[str, object] = {
        "source": source,
        "rows_read": rows_read,
        "cleaned": {
            "near_duplicate": 0 if keep_duplicates else n_dupes,
            "income_missing": n_income_missing,
            "income_implausible": n_income_bad,
            "birth_year_implausible": n_birth_bad,
            "marital_status_other": n_marital_other,
        },
        "near_duplicates_found": n_dupes,
        "constant_columns": constant,
        "income_imputed_with": float(income_median),
        "birth_year_imputed_with": int(birth_median),
        "reference_date": reference_date,
        "marital_status_values": marital_values,
    }
    return table, info


def load_marketing_campaign(
    path: Path | str,
    warehouse: Path | str,
    *,
    keep_duplicates: bool = False,
) -> MarketingCampaignReport:
    """Load the Customer Personality file into ``datasets.marketing_campaign``.

    Cleaning (each rule counted in the report, see ``docs/data/marketing_campaign.md``):
    near-duplicate rows (equal in every column but ID) keep the lowest ID; missing and
    implausible incomes (> 200,000) get the median income and ``is_income_imputed``; birth years
    before 1920 get the median birth year and ``is_birth_year_imputed``; marital statuses other
    than Married, Together, Single, Divorced and Widow become ``other``; constant columns
    (Z_CostContact, Z_Revenue) are dropped. Education and marital status are also written as
    integer codes for the models.

    Parameters
    ----------
    path : Path or str
        ``marketing_campaign.csv`` (tab or comma separated) or a parquet copy.
    warehouse : Path or str
        DuckDB file to write (created when missing). The table is replaced in one transaction.
    keep_duplicates : bool
        Keep the near-duplicate rows (as community notebooks do).

    Raises
    ------
    InputDataError
        Missing file or column, unparseable value, duplicate ID, a 0/1 column with other values.
    WarehouseError
        The warehouse cannot be opened (e.g. locked by another process).
    """
    table, info = clean_marketing_campaign(path, keep_duplicates=keep_duplicates)
    warehouse = Path(warehouse).expanduser()
    con = connect(warehouse)
    try:
        write_raw_tables(con, {TABLE: table}, schema=DATASETS_SCHEMA)
        positives = con.execute(
            f"select count(*) filter (where response = 1) from {qualified(DATASETS_SCHEMA, TABLE)}"
        ).fetchall()[0][0]
    finally:
        con.close()
    report = MarketingCampaignReport(
        source=info["source"],  # type: ignore[arg-type]
        warehouse=warehouse,
        relation=f"{DATASETS_SCHEMA}.{TABLE}",
        rows_read=info["rows_read"],  # type: ignore[arg-type]
        rows_written=table.num_rows,
        cleaned=info["cleaned"],  # type: ignore[arg-type]
        constant_columns=info["constant_columns"],  # type: ignore[arg-type]
        positives=positives,
        income_imputed_with=info["income_imputed_with"],  # type: ignore[arg-type]
        birth_year_imputed_with=info["birth_year_imputed_with"],  # type: ignore[arg-type]
        reference_date=info["reference_date"],  # type: ignore[arg-type]
        marital_status_values=info["marital_status_values"],  # type: ignore[arg-type]
    )
    logger.info("wrote %s: %s rows", report.relation, f"{report.rows_written:,}")
    return report
