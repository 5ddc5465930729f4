"""`propensity experiment assign FILE.yml`: deterministic salted-hash assignment of an audience
to named arms, written to ``raw.experiment_assignments`` in one transaction.

A customer's bucket is the first 8 hex digits of md5(salt | experiment id | customer id) as an
integer, mod 10,000: the expression of dbt's ``propensity_holdout_bucket`` macro (the campaigns'
and offers' hold-out), run here as SQL in the warehouse. Arm i holds the buckets
[round(s_1 + .. + s_{i-1}) x 10,000, round(s_1 + .. + s_i) x 10,000). So:

- the same salt draws the same arm for the same customer, on any run and any machine;
- a re-run assigns only customers not yet in the experiment; those already in it keep their arm
  and their assigned_at (intent to treat: leaving the audience later changes nothing);
- changing the salt, the arms, the shares, the control or the audience of an experiment that
  has assignments is refused (`ExperimentChangedError`): use a new experiment id.

``assignment: campaign_holdout`` records a campaign's own hold-out instead
(marts.fct_campaign_audiences: eligible, not suppressed; arm ``holdout`` or ``contacted``), so
that its outcomes can be analysed once fct_campaign_audiences has moved on to newer cutoffs.
``assignment: external`` only records the settings of an experiment loaded into raw.treatments.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from models_py._errors import ConfigError, WarehouseError
from models_py._settings import Settings
from models_py._warehouse import connect, quote_ident, relation_columns, table_exists, transaction
from models_py.experiments._config import (
    BUCKETS,
    CONFIG_SCHEMA,
    CONTACTED,
    HOLDOUT,
    ArmSchema,
    ExperimentSchema,
    bucket_ranges,
    config_rows,
    read_experiments,
)
from models_py.experiments._errors import (
    EmptyAudienceError,
    ExperimentChangedError,
    OverlappingExperimentsError,
    UnknownArmError,
    UnknownExperimentError,
)

logger = logging.getLogger(__name__)

RAW = "raw"
ASSIGNMENTS = "experiment_assignments"
CONFIG = "experiment_config"
#: The columns of raw.experiment_assignments (the raw.treatments contract plus salt and bucket).
ASSIGNMENT_COLUMNS = {
    "experiment_id": "VARCHAR",
    "customer_id": "BIGINT",
    "arm": "VARCHAR",
    "assigned_at": "TIMESTAMP",
    "discount_pct": "DOUBLE",
    "salt": "VARCHAR",
    "bucket": "INTEGER",
}
#: dbt macro propensity_holdout_bucket(salt, id, customer_id) (macros/audiences/
#: contact_history.sql) with its arguments named salt, id and customer_id; a test renders the
#: macro and compares.
BUCKET_EXPRESSION = (
    "cast(cast('0x' || left(md5(salt || '|' || id || '|' || cast(customer_id as varchar)), 8) "
    "as bigint) % 10000 as integer)"
)
assert BUCKETS == 10_000  # the modulus of BUCKET_EXPRESSION


def bucket_sql(*, salt: str, id: str, customer_id: str) -> str:
    """BUCKET_EXPRESSION over the given SQL expressions."""
    return (
        BUCKET_EXPRESSION.replace("customer_id", "\0")
        .replace("salt", salt)
        .replace("|| id ||", f"|| {id} ||")
        .replace("\0", customer_id)
    )


@dataclass(frozen=True)
class Assignment:
    """What `propensity experiment assign` did for one experiment."""

    experiment_id: str
    assignment: str
    assigned_at: dt.datetime | None
    audience: str
    audience_size: int
    new_by_arm: dict[str, int] = field(default_factory=dict)
    kept: int = 0
    excluded_overlap: dict[str, int] = field(default_factory=dict)
    unknown_customers: int = 0

    def summary(self) -> str:
        if self.assignment == "external":
            return (
                f"{self.experiment_id}: settings recorded for the {self.audience_size:,} "
                "assignments in raw.treatments"
            )
        new = sum(self.new_by_arm.values())
        arms = ", ".join(f"{arm} {n:,}" for arm, n in self.new_by_arm.items())
        parts = [
            f"{self.experiment_id}: {new:,} customers assigned at {self.assigned_at} ({arms}); "
            f"{self.kept:,} already assigned kept their arm; audience {self.audience} "
            f"({self.audience_size:,} customers)"
        ]
        if self.excluded_overlap:
            left = ", ".join(f"{k} {n:,}" for k, n in self.excluded_overlap.items())
            parts.append(f"left out, in overlapping experiments: {left}")
        if self.unknown_customers:
            parts.append(f"left out, not in raw.customers: {self.unknown_customers:,}")
        return "; ".join(parts)


def assign_experiments(
    settings: Settings, path: Path | str, *, experiments: list[str] | None = None
) -> list[Assignment]:
    """Validate experiments.yml at `path` and assign (or record) every experiment in it, or only
    those named in `experiments`, in ONE transaction: all of it lands or nothing does.

    Raises
    ------
    ConfigError, SharesError, UnknownArmError, ExperimentChangedError
        The file is invalid, or changes an experiment that already has assignments.
    EmptyAudienceError, OverlappingExperimentsError, UnknownExperimentError
        The audience is empty, shares customers with an overlapping experiment, or the
        experiment (external) is not in raw.treatments.
    """
    config = read_experiments(path)
    if experiments:
        unknown = sorted(set(experiments) - set(config))
        if unknown:
            raise UnknownExperimentError(
                f"{path} has no experiment {', '.join(unknown)} (it has {', '.join(config)})"
            )
        config = {k: v for k, v in config.items() if k in experiments}
    horizon = int(settings.dbt_vars.get("horizon_days", 30))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    con = connect(settings.warehouse)
    try:
        if not table_exists(con, RAW, "customers"):
            raise WarehouseError(
                f"{settings.warehouse} has no raw.customers: load the warehouse first "
                "(`propensity generate` or `propensity load ...`)"
            )
        with transaction(con):
            _ensure_tables(con)
            done = []
            for experiment_id, e in config.items():
                result, rows = _assign_one(
                    con, experiment_id, e, horizon=horizon, configured_at=now
                )
                # Written at once: the next experiment's overlap check reads this window.
                _write_config(con, experiment_id, rows)
                done.append(result)
    finally:
        con.close()
    for a in done:
        logger.debug("%s", a.summary())
    return done


def _write_config(con, experiment_id: str, rows: list[dict]) -> None:
    con.execute(f"delete from {RAW}.{CONFIG} where experiment_id = ?", [experiment_id])
    con.register("__experiment_config", pa.Table.from_pylist(rows, schema=CONFIG_SCHEMA))
    try:
        con.execute(f"insert into {RAW}.{CONFIG} by name select * from __experiment_config")
    finally:
        con.unregister("__experiment_config")


def _ensure_tables(con) -> None:
    columns = ", ".join(f"{quote_ident(c)} {t}" for c, t in ASSIGNMENT_COLUMNS.items())
    con.execute(f"create schema if not exists {RAW}")
    con.execute(f"create table if not exists {RAW}.{ASSIGNMENTS} ({columns})")
    config_columns = ", ".join(f"{quote_ident(f.name)} {_duck_type(f.type)}" for f in CONFIG_SCHEMA)
    con.execute(f"create table if not exists {RAW}.{CONFIG} ({config_columns})")


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_string(t):
        return "VARCHAR"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    raise TypeError(t)


def _previous_config(con, experiment_id: str) -> list[dict]:
    cur = con.execute(
        f"select * from {RAW}.{CONFIG} where experiment_id = ? order by arm", [experiment_id]
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _check_unchanged(experiment_id: str, previous: list[dict], rows: list[dict]) -> None:
    """Refuse a configuration that would draw other arms for customers already assigned."""
    if not previous:
        return
    keys = ("assignment", "audience_kind", "audience", "control_arm", "salt")
    old = {k: previous[0][k] for k in keys}
    new = {k: rows[0][k] for k in keys}
    old_arms = {r["arm"]: (round(r["share"], 9), r["discount_pct"]) for r in previous}
    new_arms = {r["arm"]: (round(r["share"], 9), r["discount_pct"]) for r in rows}
    changes = [f"{k} {old[k]!r} -> {new[k]!r}" for k in keys if old[k] != new[k]]
    if old_arms != new_arms:
        changes.append(f"arms (share, discount) {old_arms} -> {new_arms}")
    if changes:
        raise ExperimentChangedError(
            f"experiment {experiment_id!r} already has assignments; this file changes "
            f"{'; '.join(changes)}, which would move customers to other arms. Keep its settings, "
            "or start a new experiment under a new id."
        )


def _treatments_count(con, experiment_id: str) -> tuple[int, list[str]]:
    if not table_exists(con, RAW, "treatments"):
        return 0, []
    n = con.execute(
        f"select count(*) from {RAW}.treatments where experiment_id = ?", [experiment_id]
    ).fetchone()[0]
    arms = [
        r[0]
        for r in con.execute(
            f"select distinct arm from {RAW}.treatments where experiment_id = ? order by arm",
            [experiment_id],
        ).fetchall()
    ]
    return n, arms


def _assign_one(
    con, experiment_id: str, e: ExperimentSchema, *, horizon: int, configured_at: dt.datetime
) -> tuple[Assignment, list[dict]]:
    in_treatments, treatment_arms = _treatments_count(con, experiment_id)
    previous = _previous_config(con, experiment_id)
    existing = con.execute(
        f"select count(*) from {RAW}.{ASSIGNMENTS} where experiment_id = ?", [experiment_id]
    ).fetchone()[0]

    if e.assignment == "external":
        if not in_treatments:
            present = (
                [
                    r[0]
                    for r in con.execute(
                        f"select distinct experiment_id from {RAW}.treatments order by 1"
                    ).fetchall()
                ]
                if table_exists(con, RAW, "treatments")
                else []
            )
            raise UnknownExperimentError(
                f"experiment {experiment_id!r} (assignment: external) has no rows in "
                f"raw.treatments (experiments there: {present or 'none'}). Load it, or give "
                "it an audience and a salt to assign it here."
            )
        undeclared = sorted(set(treatment_arms) - set(e.arms))
        if undeclared:
            raise UnknownArmError(
                f"experiment {experiment_id!r}: raw.treatments has arms {undeclared} that "
                f"experiments.yml does not declare (it declares {list(e.arms)}). Declare every "
                "arm with its share."
            )
        rows = config_rows(experiment_id, e, configured_at=configured_at)
        return (
            Assignment(
                experiment_id=experiment_id,
                assignment="external",
                assigned_at=None,
                audience="raw.treatments",
                audience_size=in_treatments,
            ),
            rows,
        )

    if in_treatments:
        raise ConfigError(
            f"experiment {experiment_id!r} is already in raw.treatments ({in_treatments:,} rows): "
            "assign a new experiment under another id, or describe this one with "
            "`assignment: external`."
        )

    kind, value = e.audience.kind_and_value()  # type: ignore[union-attr]
    con.execute("drop table if exists __audience")
    if kind == "campaign":
        assigned_at, arms, salt = _campaign_audience(con, experiment_id, e, value)
    else:
        assigned_at = e.assigned_at_time or _warehouse_today(con, experiment_id)
        arms, salt = e.arms, e.salt
        _customer_audience(con, kind, value, assigned_at)
    control = HOLDOUT if e.assignment == "campaign_holdout" else e.control
    rows = config_rows(
        experiment_id, e, arms=arms, control=control, salt=salt, configured_at=configured_at
    )
    if existing:
        _check_unchanged(experiment_id, previous, rows)

    audience_size, unknown = con.execute(
        "select count(*) filter (where is_known), count(*) filter (where not is_known) "
        "from __audience"
    ).fetchone()
    if audience_size == 0:
        raise EmptyAudienceError(
            f"experiment {experiment_id!r}: the audience {kind} {value} holds no customer"
            + (f" ({unknown:,} ids not in raw.customers)" if unknown else "")
            + _empty_hint(kind, value)
        )
    con.execute("delete from __audience where not is_known")
    con.execute(
        f"delete from __audience where customer_id in (select customer_id from {RAW}.{ASSIGNMENTS} "
        "where experiment_id = ?)",
        [experiment_id],
    )
    window = e.window_days or horizon
    overlaps = _overlaps(con, experiment_id, assigned_at, window, horizon=horizon)
    if overlaps and e.overlap == "error":
        listed = "; ".join(
            f"{other} ({n:,} customers, window {start:%Y-%m-%d} .. {end:%Y-%m-%d})"
            for other, n, start, end in overlaps
        )
        raise OverlappingExperimentsError(
            f"experiment {experiment_id!r} (window {assigned_at:%Y-%m-%d} .. "
            f"{assigned_at + dt.timedelta(days=window):%Y-%m-%d}) shares customers with "
            f"experiments whose outcome windows overlap: {listed}. Their effects would mix. "
            "Assign after those windows close, choose another audience, or set "
            "`overlap: exclude` to leave those customers out. Nothing was written."
        )
    excluded = {}
    if overlaps:
        excluded = {other: n for other, n, _, _ in overlaps}
        con.execute(
            "delete from __audience where customer_id in (select customer_id from __overlap)"
        )

    new_by_arm = _insert(con, experiment_id, arms, assigned_at, salt, e.assignment)
    assignment = Assignment(
        experiment_id=experiment_id,
        assignment=e.assignment,
        assigned_at=assigned_at,
        audience=f"{kind} {value}",
        audience_size=int(audience_size),
        new_by_arm=new_by_arm,
        kept=int(existing),
        excluded_overlap=excluded,
        unknown_customers=int(unknown),
    )
    return assignment, rows


def _empty_hint(kind: str, value: str) -> str:
    if kind == "campaign":
        return (
            ": nobody in marts.fct_campaign_audiences is eligible and unsuppressed for it. Check "
            "the campaign's selection and suppression rules, and run `propensity build` after "
            "`propensity campaigns set`."
        )
    if kind == "all_customers":
        return ": raw.customers has no customer created before the assignment time."
    return f": {value} has no customer_id that is in raw.customers."


def _warehouse_today(con, experiment_id: str) -> dt.datetime:
    """The warehouse's "now": the day after the last order (dbt's default scoring cutoff)."""
    if not table_exists(con, RAW, "orders"):
        last = None
    else:
        last = con.execute(f"select max(ordered_at) from {RAW}.orders").fetchone()[0]
    if last is None:
        raise ConfigError(
            f"experiment {experiment_id!r}: raw.orders is empty, so there is no default "
            "assignment time: give `assigned_at:`"
        )
    day = last.date() + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day)


def _customer_audience(con, kind: str, value: str, assigned_at: dt.datetime) -> None:
    if kind == "all_customers":
        con.execute(
            "create temp table __audience as select distinct customer_id, true as is_known "
            f"from {RAW}.customers where created_at < ?",
            [assigned_at],
        )
        return
    schema, table = value.split(".")
    if not table_exists(con, schema, table):
        raise WarehouseError(f"audience relation {value} does not exist in the warehouse")
    if "customer_id" not in relation_columns(con, value):
        raise ConfigError(f"audience relation {value} has no column customer_id")
    con.execute(
        "create temp table __audience as "
        "select distinct a.customer_id, c.customer_id is not null as is_known "
        f"from {quote_ident(schema)}.{quote_ident(table)} as a "
        f"left join {RAW}.customers as c on cast(a.customer_id as bigint) = c.customer_id "
        "where a.customer_id is not null"
    )


def _campaign_audience(
    con, experiment_id: str, e: ExperimentSchema, campaign: str
) -> tuple[dt.datetime, dict[str, ArmSchema], str | None]:
    """The eligible, unsuppressed customers of a campaign at its latest cutoff (temp table
    __audience; with campaign_holdout also their hold-out flag and bucket)."""
    if not table_exists(con, "marts", "fct_campaign_audiences"):
        raise WarehouseError(
            f"experiment {experiment_id!r}: marts.fct_campaign_audiences does not exist: load "
            "campaigns (`propensity campaigns set FILE.yml`) and run `propensity build`"
        )
    found = con.execute(
        "select count(*), max(as_of_date) from marts.fct_campaign_audiences where campaign_id = ?",
        [campaign],
    ).fetchone()
    if not found[0]:
        campaigns = [
            r[0]
            for r in con.execute(
                "select distinct campaign_id from marts.fct_campaign_audiences order by 1"
            ).fetchall()
        ]
        raise EmptyAudienceError(
            f"experiment {experiment_id!r}: campaign {campaign!r} has no row in "
            f"marts.fct_campaign_audiences (campaigns there: {campaigns or 'none'}). Set the "
            "campaign with `propensity campaigns set` and run `propensity build`."
        )
    as_of = found[1]
    con.execute(
        "create temp table __audience as select customer_id, true as is_known, is_holdout, "
        "holdout_bucket from marts.fct_campaign_audiences "
        "where campaign_id = ? and is_eligible and exclusion_reason is null",
        [campaign],
    )
    assigned_at = e.assigned_at_time or dt.datetime(as_of.year, as_of.month, as_of.day)
    if e.assignment != "campaign_holdout":
        return assigned_at, e.arms, e.salt
    share, salt = con.execute(
        "select holdout_share, holdout_salt from marts.dim_campaigns where campaign_id = ?",
        [campaign],
    ).fetchone() or (None, None)
    if not share:
        raise ConfigError(
            f"experiment {experiment_id!r}: campaign {campaign!r} has no hold-out "
            "(holdout_share 0), so there is nothing to compare the contacted customers with. "
            "Give the campaign a holdout_share (`propensity campaigns set`)."
        )
    held = round(share * BUCKETS) / BUCKETS
    arms = {
        CONTACTED: ArmSchema(share=1 - held),
        HOLDOUT: ArmSchema(share=held),
    }
    return assigned_at, arms, salt


def _overlaps(
    con, experiment_id: str, start: dt.datetime, window: int, *, horizon: int
) -> list[tuple[str, int, dt.datetime, dt.datetime]]:
    """Other experiments holding audience customers with an outcome window overlapping
    [start, start + window): per experiment, the customers and its window (temp table
    __overlap holds the customers)."""
    end = start + dt.timedelta(days=window)
    treatments = (
        f"select experiment_id, customer_id, assigned_at from {RAW}.treatments union all "
        if table_exists(con, RAW, "treatments")
        else ""
    )
    con.execute("drop table if exists __overlap")
    con.execute(
        f"""
        create temp table __overlap as
        with others as (
            {treatments}
            select experiment_id, customer_id, assigned_at from {RAW}.{ASSIGNMENTS}
        ),
        windows as (
            select others.*, coalesce(c.window_days, ?) as window_days
            from others
            left join (
                select experiment_id, min(window_days) as window_days
                from {RAW}.{CONFIG} group by experiment_id
            ) as c on others.experiment_id = c.experiment_id
            where others.experiment_id <> ?
        )
        select windows.experiment_id, windows.customer_id, windows.assigned_at,
            windows.assigned_at + to_days(cast(windows.window_days as integer)) as window_end
        from windows
        inner join __audience on windows.customer_id = __audience.customer_id
        where windows.assigned_at < ?
            and windows.assigned_at + to_days(cast(windows.window_days as integer)) > ?
        """,
        [horizon, experiment_id, end, start],
    )
    return [
        (r[0], int(r[1]), r[2], r[3])
        for r in con.execute(
            "select experiment_id, count(distinct customer_id), min(assigned_at), max(window_end) "
            "from __overlap group by experiment_id order by experiment_id"
        ).fetchall()
    ]


def _insert(
    con,
    experiment_id: str,
    arms: dict[str, ArmSchema],
    assigned_at: dt.datetime,
    salt: str | None,
    assignment: str,
) -> dict[str, int]:
    """Insert the audience's customers (temp table __audience) with their arm; counts per arm."""
    if assignment == "campaign_holdout":
        # The campaign's own hash decided the hold-out (fct_campaign_audiences.holdout_bucket).
        select = (
            f"select $experiment_id as experiment_id, customer_id, "
            f"case when is_holdout then {_sql_str(HOLDOUT)} else {_sql_str(CONTACTED)} end as arm, "
            "cast($assigned_at as timestamp) as assigned_at, cast(null as double) as discount_pct, "
            "$salt as salt, holdout_bucket as bucket from __audience"
        )
    else:
        # Arm names and shares were validated (names match [A-Za-z0-9_.-]); literals keep the
        # statement to named parameters only.
        ranges = " union all ".join(
            f"select {_sql_str(arm)} as arm, {lo} as lo, {hi} as hi, "
            f"cast({'null' if arms[arm].discount_pct is None else float(arms[arm].discount_pct)} "
            "as double) as discount_pct"
            for arm, (lo, hi) in bucket_ranges(arms).items()
        )
        bucket = bucket_sql(salt="$salt", id="$experiment_id", customer_id="a.customer_id")
        select = (
            "select $experiment_id as experiment_id, b.customer_id, r.arm, "
            "cast($assigned_at as timestamp) as assigned_at, r.discount_pct, $salt as salt, "
            f"b.bucket from (select a.customer_id, {bucket} as bucket from __audience as a) as b "
            f"inner join ({ranges}) as r on b.bucket >= r.lo and b.bucket < r.hi"
        )
    params = {"experiment_id": experiment_id, "assigned_at": assigned_at, "salt": salt}
    con.execute(f"insert into {RAW}.{ASSIGNMENTS} by name {select}", params)
    counts = dict(
        con.execute(
            f"select arm, count(*) from {RAW}.{ASSIGNMENTS} where experiment_id = ? "
            "and customer_id in (select customer_id from __audience) group by arm",
            [experiment_id],
        ).fetchall()
    )
    return {arm: int(counts.get(arm, 0)) for arm in arms}


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
