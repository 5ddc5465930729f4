"""Hillstrom's MineThatData E-Mail Analytics challenge (2008) into the warehouse.

64,000 customers who bought in the last twelve months were randomly assigned to three arms (an
e-mail featuring men's merchandise, one featuring women's merchandise, no e-mail); visits,
conversions and spend were tracked for the two weeks after. The loader writes

- ``raw.customers``: one row per customer with a synthetic integer id (the row's position in the
  file, 1-based) and the pre-treatment covariates as extra attribute columns;
- ``raw.treatments``: the experiment (``experiment_id``, ``arm``, ``assigned_at``);
- ``datasets.hillstrom``: per customer, the arm, the pre-treatment covariates (also one-hot coded
  for the models) and the outcomes ``visit``, ``conversion``, ``spend``: the table uplift
  (CATE per arm, Qini) reads as it is;
- ``datasets.hillstrom_training``: the propensity training examples, one row per customer and
  model target (``visit``/``conversion`` x each arm and pooled), with ``target`` and ``label``.

The other raw contract tables are written empty (the file has no orders). See
``docs/data/hillstrom.md``.
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
from models_py._warehouse import connect, quote_ident, transaction
from models_py.ingest._raw import RAW_CONTRACT, empty_raw_table, write_raw_tables

logger = logging.getLogger(__name__)

DATASETS_SCHEMA = "datasets"
EXPERIMENT_ID = "hillstrom_2008_email"
#: The file carries no date. The challenge was published in March 2008; the experiment is dated
#: 2008-03-01 00:00 so that tables needing a timestamp have one. Change it with `assigned_at=`.
DEFAULT_ASSIGNED_AT = dt.datetime(2008, 3, 1)
#: Arm as written in the file -> arm written (snake case; `no_email` is the control).
ARMS: dict[str, str] = {
    "Mens E-Mail": "mens_email",
    "Womens E-Mail": "womens_email",
    "No E-Mail": "no_email",
}
CONTROL_ARM = "no_email"
OUTCOMES = ("visit", "conversion")
#: zip_code as written in the file -> value written (the file spells Suburban "Surburban").
ZIP_CODES: dict[str, str] = {"Urban": "urban", "Surburban": "suburban", "Rural": "rural"}
CHANNELS: dict[str, str] = {"Web": "web", "Phone": "phone", "Multichannel": "multichannel"}
SOURCE_COLUMNS = (
    "recency",
    "history_segment",
    "history",
    "mens",
    "womens",
    "zip_code",
    "newbie",
    "channel",
    "segment",
    "visit",
    "conversion",
    "spend",
)
#: Numeric pre-treatment covariates in `datasets.hillstrom` and `datasets.hillstrom_training`:
#: the features of the propensity models.
FEATURES = (
    "recency_months",
    "history",
    "history_segment_code",
    "bought_mens",
    "bought_womens",
    "is_newbie",
    "is_urban",
    "is_suburban",
    "is_rural",
    "is_channel_web",
    "is_channel_phone",
    "is_channel_multichannel",
    "is_mens_email",
    "is_womens_email",
)


def training_targets() -> tuple[str, ...]:
    """The ``target`` values of ``datasets.hillstrom_training`` (``visit__mens_email``, ...)."""
    return tuple(f"{o}__{a}" for o in OUTCOMES for a in (*ARMS.values(), "pooled"))


@dataclass(frozen=True, kw_only=True)
class HillstromReport:
    """What `load_hillstrom` read and wrote.

    Attributes
    ----------
    arms : Mapping[str, tuple[int, int, int, float]]
        Arm -> (customers, visits, conversions, spend).
    cleaned : Mapping[str, int]
        Values rewritten per documented rule (``zip_code_spelling``).
    """

    source: Path
    warehouse: Path
    rows: int
    arms: Mapping[str, tuple[int, int, int, float]]
    assigned_at: dt.datetime
    training_rows: int
    cleaned: Mapping[str, int] = field(default_factory=dict)

    @property
    def visits(self) -> int:
        return sum(a[1] for a in self.arms.values())

    @property
    def conversions(self) -> int:
        return sum(a[2] for a in self.arms.values())

    @property
    def spend(self) -> float:
        return round(sum(a[3] for a in self.arms.values()), 2)

    def visit_rate(self, arm: str) -> float:
        n, visits, _, _ = self.arms[arm]
        return visits / n

    def summary(self) -> str:
        """A short multi-line report for people."""
        lines = [
            f"Hillstrom {self.source.name} -> {self.warehouse}",
            f"  customers {self.rows:,} (ids 1..{self.rows:,} in file order); experiment "
            f"{EXPERIMENT_ID} assigned {self.assigned_at:%Y-%m-%d}",
            f"  visits {self.visits:,}, conversions {self.conversions:,}, spend {self.spend:,.2f}",
        ]
        for arm, (n, v, c, s) in self.arms.items():
            lines.append(
                f"    {arm:<13}{n:>8,} customers, visit rate {v / n:6.2%}, "
                f"conversion rate {c / n:6.2%}, spend {s:,.2f}"
            )
        lines += [f"  {rule}: {n:,} values rewritten" for rule, n in self.cleaned.items() if n]
        lines.append(f"  training examples (datasets.hillstrom_training): {self.training_rows:,}")
        return "\n".join(lines)


def _read(con, path: Path) -> None:
    if not path.exists():
        raise InputDataError(
            f"{path} does not exist: download the Hillstrom MineThatData e-mail file and pass "
            "its path (CSV or parquet)"
        )
    name = path.name.lower()
    if name.endswith(".parquet"):
        reader = "read_parquet(?)"
    elif name.endswith((".csv", ".csv.gz")):
        reader = "read_csv(?, header = true)"
    else:
        raise InputDataError(f"{path}: unknown file type; expected .csv or .parquet")
    try:
        con.execute(
            f"create temp table src as select *, row_number() over () as __row from {reader}",
            [str(path)],
        )
        columns = [r[0] for r in con.execute("describe src").fetchall()]
    except duckdb.Error as exc:
        raise InputDataError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    missing = [c for c in SOURCE_COLUMNS if c not in columns]
    if missing:
        raise InputDataError(f"{path} lacks column(s) {', '.join(missing)} of the Hillstrom file")


def _check(con, path: Path) -> None:
    q = quote_ident
    for col in SOURCE_COLUMNS:
        n = con.execute(f"select count(*) from src where {q(col)} is null").fetchall()[0][0]
        if n:
            raise InputDataError(f"{path}: column {col} is empty in {n:,} row(s)")
    for col, allowed in (("segment", ARMS), ("zip_code", ZIP_CODES), ("channel", CHANNELS)):
        bad = con.execute(
            f"select distinct cast({q(col)} as varchar) from src "
            f"where cast({q(col)} as varchar) not in (select unnest(?)) order by 1 limit 5",
            [list(allowed)],
        ).fetchall()
        if bad:
            raise InputDataError(
                f"{path}: column {col} holds {', '.join(repr(b[0]) for b in bad)}; "
                f"expected {', '.join(allowed)}"
            )
    for col in ("mens", "womens", "newbie", "visit", "conversion"):
        bad = con.execute(
            f"select distinct {q(col)} from src where {q(col)} not in (0, 1) limit 5"
        ).fetchall()
        if bad:
            raise InputDataError(f"{path}: column {col} must be 0 or 1, found {bad}")
    row = con.execute(
        "select count(*) filter (where conversion = 1 and visit = 0), "
        "count(*) filter (where spend > 0 and conversion = 0), count(*) filter (where spend < 0) "
        "from src"
    ).fetchall()[0]
    if any(row):
        raise InputDataError(
            f"{path}: outcomes disagree: {row[0]:,} conversions without a visit, {row[1]:,} "
            f"rows with spend but no conversion, {row[2]:,} negative spends"
        )


def _customer_table(con, assigned_at: dt.datetime) -> pa.Table:
    arm_case = " ".join("when ? then ?" for _ in ARMS)
    zip_case = " ".join("when ? then ?" for _ in ZIP_CODES)
    channel_case = " ".join("when ? then ?" for _ in CHANNELS)
    params: list[object] = [EXPERIMENT_ID]
    params += [v for kv in ARMS.items() for v in kv]
    params += [v for kv in ZIP_CODES.items() for v in kv]
    params += [v for kv in CHANNELS.items() for v in kv]
    params += [assigned_at]
    return con.sql(
        f"""
        with src as (
            select * from src
        ),
        coded as (
            select
                cast(__row as bigint) as customer_id,
                cast(? as varchar) as experiment_id,
                case cast(segment as varchar) {arm_case} end as arm,
                cast(recency as integer) as recency_months,
                round(cast(history as double), 2) as history,
                cast(history_segment as varchar) as history_segment,
                cast(try_cast(left(cast(history_segment as varchar), 1) as integer) as integer)
                    as history_segment_code,
                cast(mens as integer) as bought_mens,
                cast(womens as integer) as bought_womens,
                cast(newbie as integer) as is_newbie,
                case cast(zip_code as varchar) {zip_case} end as zip_code,
                case cast(channel as varchar) {channel_case} end as channel,
                cast(visit as integer) as visit,
                cast(conversion as integer) as conversion,
                round(cast(spend as double), 2) as spend
            from src
        ),
        final as (
            select
                customer_id,
                experiment_id,
                arm,
                cast(arm <> 'no_email' as integer) as is_treated,
                cast(? as timestamp) as assigned_at,
                recency_months,
                history,
                history_segment,
                history_segment_code,
                bought_mens,
                bought_womens,
                is_newbie,
                zip_code,
                channel,
                cast(zip_code = 'urban' as integer) as is_urban,
                cast(zip_code = 'suburban' as integer) as is_suburban,
                cast(zip_code = 'rural' as integer) as is_rural,
                cast(channel = 'web' as integer) as is_channel_web,
                cast(channel = 'phone' as integer) as is_channel_phone,
                cast(channel = 'multichannel' as integer) as is_channel_multichannel,
                cast(arm = 'mens_email' as integer) as is_mens_email,
                cast(arm = 'womens_email' as integer) as is_womens_email,
                visit,
                conversion,
                spend
            from coded
        )
        select * from final order by customer_id
        """,
        params=params,
    ).to_arrow_table()


_TRAINING_SQL = """
with experiment as (
    select * from {experiment}
),
targets as (
    select unnest(?) as outcome
),
per_arm as (
    select
        targets.outcome || '__' || experiment.arm as target,
        targets.outcome,
        experiment.arm as slice,
        experiment.*
    from experiment
    cross join targets
),
pooled as (
    select
        targets.outcome || '__pooled' as target,
        targets.outcome,
        'pooled' as slice,
        experiment.*
    from experiment
    cross join targets
),
unioned as (
    select * from per_arm
    union all
    select * from pooled
),
final as (
    select
        customer_id,
        cast(target as varchar) as target,
        cast(outcome as varchar) as outcome,
        cast(slice as varchar) as slice,
        cast(case outcome when 'visit' then visit else conversion end as integer) as label,
        {features}
    from unioned
)
select * from final order by target, customer_id
"""


def load_hillstrom(
    path: Path | str,
    warehouse: Path | str,
    *,
    assigned_at: dt.datetime = DEFAULT_ASSIGNED_AT,
) -> HillstromReport:
    """Load the Hillstrom e-mail experiment: customers, treatments, outcomes, training examples.

    Parameters
    ----------
    path : Path or str
        The MineThatData file (CSV as published, or parquet) with its original column names.
    warehouse : Path or str
        DuckDB file to write (created when missing).
    assigned_at : datetime
        Assignment time written to ``raw.treatments`` (the file has none).

    Returns
    -------
    HillstromReport
        Customers, and per arm: customers, visits, conversions and spend.

    Notes
    -----
    The raw tables are replaced in one transaction, then the two ``datasets`` tables in another.

    Raises
    ------
    InputDataError
        Missing file or column, empty values, unknown arm/zip/channel values, 0/1 columns with
        other values, or outcomes that contradict each other (a conversion without a visit).
    """
    source = Path(path).expanduser()
    warehouse = Path(warehouse).expanduser()
    mem = duckdb.connect()
    try:
        _read(mem, source)
        _check(mem, source)
        spelling = mem.execute(
            "select count(*) from src where cast(zip_code as varchar) = 'Surburban'"
        ).fetchall()[0][0]
        experiment = _customer_table(mem, assigned_at)
    finally:
        mem.close()

    extra = {
        "recency_months": "INTEGER",
        "history": "DOUBLE",
        "history_segment": "VARCHAR",
        "bought_mens": "INTEGER",
        "bought_womens": "INTEGER",
        "is_newbie": "INTEGER",
        "zip_code": "VARCHAR",
        "channel": "VARCHAR",
    }
    customers = experiment.select(["customer_id", *extra])
    n = customers.num_rows
    customers = customers.append_column(
        "created_at", pa.array([assigned_at] * n, pa.timestamp("us"))
    )
    customers = customers.append_column("country", pa.array(["US"] * n, pa.string()))
    customers = customers.append_column("email_opt_in", pa.array([True] * n, pa.bool_()))
    customers = customers.append_column("is_vip", pa.array([False] * n, pa.bool_()))
    treatments = experiment.select(["customer_id", "experiment_id", "arm", "assigned_at"])
    raw_tables: dict[str, pa.Table] = {
        "customers": customers,
        "treatments": treatments,
        **{t: empty_raw_table(t) for t in RAW_CONTRACT if t not in ("customers", "treatments")},
    }
    con = connect(warehouse)
    try:
        write_raw_tables(con, raw_tables, extra_columns={"customers": extra})
        features = ", ".join(quote_ident(f) for f in FEATURES)
        schema = quote_ident(DATASETS_SCHEMA)
        con.execute(f"create schema if not exists {schema}")
        con.register("__hillstrom_experiment", experiment)
        with transaction(con):
            con.execute(
                f"create or replace table {schema}.hillstrom as "
                "select * from __hillstrom_experiment"
            )
            con.execute(
                f"create or replace table {quote_ident(DATASETS_SCHEMA)}.hillstrom_training as "
                + _TRAINING_SQL.format(
                    experiment=f"{quote_ident(DATASETS_SCHEMA)}.hillstrom", features=features
                ),
                [list(OUTCOMES)],
            )
        training_rows = con.execute(
            f"select count(*) from {quote_ident(DATASETS_SCHEMA)}.hillstrom_training"
        ).fetchall()[0][0]
        arms = {
            arm: (int(k), int(v), int(c), float(s))
            for arm, k, v, c, s in con.execute(
                f"select arm, count(*), sum(visit), sum(conversion), round(sum(spend), 2) "
                f"from {quote_ident(DATASETS_SCHEMA)}.hillstrom group by arm order by arm"
            ).fetchall()
        }
    finally:
        con.close()
    report = HillstromReport(
        source=source,
        warehouse=warehouse,
        rows=n,
        arms=arms,
        assigned_at=assigned_at,
        training_rows=training_rows,
        cleaned={"zip_code_spelling": spelling},
    )
    logger.info("wrote %s customers and %s training examples", f"{n:,}", f"{training_rows:,}")
    return report
