"""`generate_warehouse`: simulate customers chunk by chunk and stream every raw table, plus the
ground truth, into the warehouse; the new tables replace the old ones in one transaction."""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from models_py._errors import ConfigError
from models_py._warehouse import connect, qualified, quote_ident, transaction
from models_py.ingest._groups import rules_to_arrow
from models_py.ingest._raw import RAW_CONTRACT, RAW_SCHEMA
from models_py.ingest.synth._calendar import (
    CUTOFF_STEP_DAYS,
    HORIZON_DAYS,
    MAX_CUTOFFS,
    SECONDS_PER_DAY,
    Calendar,
    build_calendar,
)
from models_py.ingest.synth._catalog import Catalog, build_catalog
from models_py.ingest.synth._simulate import (
    ARMS,
    EVENT_TYPES,
    EXPERIMENT_ID,
    SHIFT_KINDS,
    SHIFT_STREAM_KEY,
    SHIFTS,
    Customers,
    customers_table,
    date32,
    draw_customers,
    group_hit_probability,
    observable_follows,
    offer_effects,
    oracle_probabilities,
    simulate_emails,
    simulate_orders,
    treatment_effects,
)

logger = logging.getLogger(__name__)

MIN_DAYS = 120
#: Above this many customers the oracle covers cutoffs k = 0..LARGE_ORACLE_CUTOFFS - 1 only.
FULL_ORACLE_MAX_CUSTOMERS = 200_000
LARGE_ORACLE_CUTOFFS = 7

GROUND_TRUTH_DDL: dict[str, dict[str, str]] = {
    "oracle_propensity": {
        "customer_id": "BIGINT",
        "product_group": "VARCHAR",
        "as_of_date": "DATE",
        "probability": "DOUBLE",
        # The observable oracle (ingest.synth._posterior): NULL unless computed for the cutoff.
        "observable_probability": "DOUBLE",
    },
    "oracle_treatment_effect": {
        "customer_id": "BIGINT",
        "experiment_id": "VARCHAR",
        "arm": "VARCHAR",
        "baseline_probability": "DOUBLE",
        "treated_probability": "DOUBLE",
        "effect": "DOUBLE",
        # Expected amount paid (returns ignored) and margin of the purchases in the window
        # without (arm '0') and with the arm's discount (docs/oracle.md, "Offer effects").
        "baseline_revenue": "DOUBLE",
        "treated_revenue": "DOUBLE",
        "revenue_effect": "DOUBLE",
        "baseline_margin": "DOUBLE",
        "treated_margin": "DOUBLE",
        "margin_effect": "DOUBLE",
    },
    # Every customer created before the scoring cutoff x arm: a new offer at the cutoff.
    "oracle_offer_effects": {
        "customer_id": "BIGINT",
        "as_of_date": "DATE",
        "arm": "VARCHAR",
        "discount_pct": "DOUBLE",
        "p_purchase": "DOUBLE",
        "expected_orders": "DOUBLE",
        "expected_revenue": "DOUBLE",
        "expected_margin": "DOUBLE",
        "p_purchase_effect": "DOUBLE",
        "revenue_effect": "DOUBLE",
        "margin_effect": "DOUBLE",
    },
    "oracle_customer_state": {
        "customer_id": "BIGINT",
        "purchase_rate": "DOUBLE",
        "churned_at": "TIMESTAMP",
        "engagement": "DOUBLE",
        "items_mu": "DOUBLE",
        "price_sensitivity": "DOUBLE",
    },
}
#: Written only with a regime shift (and dropped by a generation without one).
SHIFT_DDL: dict[str, dict[str, str]] = {
    "oracle_regime_shift": {
        "customer_id": "BIGINT",
        "shift": "VARCHAR",
        "shift_at": "DATE",
        # Multiplier of the customer's purchase rate from shift_at on.
        "purchase_rate_factor": "DOUBLE",
    },
}
DEFAULT_SHIFT = "migration"
#: Orders of a shift's added purchase process are written with ids from here on, then
#: renumbered to follow the last id of every chunk's own process (so no order id moves).
PROVISIONAL_ORDER_ID = 1 << 60
STAGING_PREFIX = "__synth_"
DUCKDB_MEMORY_LIMIT = "512MB"


@dataclass(frozen=True)
class GenerationReport:
    """What `generate_warehouse` wrote.

    Attributes
    ----------
    path : Path
        The warehouse file.
    rows : Mapping[str, int]
        Rows written per table of schema `raw`.
    start_date, end_date : date
        The history is [start_date, end_date); dbt's default scoring cutoff is `end_date`.
    oracle_cutoffs : tuple[date, ...]
        The as-of dates of `raw.oracle_propensity`, newest first.
    seconds : float
        Wall time of the generation.
    shift_at, shift : date or None, str or None
        The regime shift's first day and kind (None: no shift).
    """

    path: Path
    customers: int
    seed: int
    start_date: dt.date
    end_date: dt.date
    oracle_cutoffs: tuple[dt.date, ...]
    rows: Mapping[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    shift_at: dt.date | None = None
    shift: str | None = None

    def summary(self) -> str:
        """A few lines for people: where, which period, rows per table, time."""
        lines = [
            f"synthetic warehouse {self.path} (seed {self.seed})",
            f"  history {self.start_date} .. {self.end_date - dt.timedelta(days=1)} "
            f"({(self.end_date - self.start_date).days} days); scoring cutoff {self.end_date}",
        ]
        width = max(len(name) for name in self.rows) if self.rows else 0
        for name, n in self.rows.items():
            lines.append(f"  raw.{name:<{width}} {n:>13,} rows")
        if self.oracle_cutoffs:
            lines.append(
                f"  oracle cutoffs: {len(self.oracle_cutoffs)} "
                f"({self.oracle_cutoffs[-1]} .. {self.oracle_cutoffs[0]}, every "
                f"{CUTOFF_STEP_DAYS} days, horizon {HORIZON_DAYS} days)"
            )
        if self.shift_at is not None:
            lines.append(f"  regime shift '{self.shift}' from {self.shift_at}")
        lines.append(f"  done in {self.seconds:.1f} s")
        return "\n".join(lines)


class _Writer:
    """Writes every table into a staging copy, then swaps all of them in at once.

    Chunks are appended to ``raw.__synth_<table>`` outside a transaction (one long DuckDB
    transaction holds all its uncommitted rows in memory: 5 GB at 1M customers). `publish`
    replaces the real tables by renaming the staging ones in a single transaction, so readers
    see either the previous warehouse or the new one; `discard` drops the staging tables after a
    failure and leaves the previous tables untouched.
    """

    def __init__(self, con, *, shifted: bool = False) -> None:
        self.con = con
        self.columns = {**RAW_CONTRACT, **GROUND_TRUTH_DDL, **(SHIFT_DDL if shifted else {})}
        # The optional raw column discount_pct: the experiment arms' discount (stg_raw__treatments).
        self.columns["treatments"] = {**RAW_CONTRACT["treatments"], "discount_pct": "DOUBLE"}
        self.rows: dict[str, int] = dict.fromkeys(self.columns, 0)

    @staticmethod
    def staging(name: str) -> str:
        return STAGING_PREFIX + name

    def create_all(self) -> None:
        self.discard()  # leftovers of an interrupted run
        for name, columns in self.columns.items():
            cols = ", ".join(f"{quote_ident(c)} {t}" for c, t in columns.items())
            target = qualified(RAW_SCHEMA, self.staging(name))
            self.con.execute(f"create or replace table {target} ({cols})")

    def append(self, name: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        view = "__propensity_synth_batch"
        self.con.register(view, table)
        try:
            self.con.execute(
                f"insert into {qualified(RAW_SCHEMA, self.staging(name))} by name "
                f"select * from {view}"
            )
        finally:
            self.con.unregister(view)
        self.rows[name] += table.num_rows

    def renumber_orders(self, *, provisional: int, first: int) -> None:
        """Give the orders with ids from `provisional` on the ids from `first` on."""
        for name in ("orders", "order_lines"):
            self.con.execute(
                f"update {qualified(RAW_SCHEMA, self.staging(name))} "
                "set order_id = order_id - $provisional + $first where order_id >= $provisional",
                {"provisional": provisional, "first": first},
            )

    def publish(self) -> None:
        with transaction(self.con):
            for name in SHIFT_DDL.keys() - self.columns.keys():  # a shift of an earlier run
                self.con.execute(f"drop table if exists {qualified(RAW_SCHEMA, name)}")
            for name in self.columns:
                self.con.execute(f"drop table if exists {qualified(RAW_SCHEMA, name)}")
                self.con.execute(
                    f"alter table {qualified(RAW_SCHEMA, self.staging(name))} "
                    f"rename to {quote_ident(name)}"
                )

    def discard(self) -> None:
        leftovers = self.con.execute(
            "select table_name from information_schema.tables "
            "where table_schema = ? and starts_with(table_name, ?)",
            [RAW_SCHEMA, STAGING_PREFIX],
        ).fetchall()
        for (name,) in leftovers:
            self.con.execute(f"drop table if exists {qualified(RAW_SCHEMA, name)}")


def _validate(customers: object, days: object, seed: object, chunk_size: object) -> None:
    if not isinstance(customers, int) or isinstance(customers, bool) or customers <= 0:
        raise ConfigError(
            f"customers must be a positive integer, got {customers!r} "
            "(try --customers 50000 for the demo size)"
        )
    if not isinstance(days, int) or isinstance(days, bool) or days < MIN_DAYS:
        raise ConfigError(
            f"days must be an integer >= {MIN_DAYS} (at least 90 days of history before the "
            f"first cutoff plus a {HORIZON_DAYS}-day label window), got {days!r}"
        )
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")


def _validate_shift(shift_at: object, shift: object, *, days: int, end_date: dt.date) -> None:
    if not isinstance(end_date, dt.date) or isinstance(end_date, dt.datetime):
        raise ConfigError(f"end_date must be a date such as 2026-10-01, got {end_date!r}")
    if shift not in SHIFT_KINDS:
        raise ConfigError(f"unknown shift kind {shift!r}; known: {', '.join(SHIFT_KINDS)}")
    if shift_at is None:
        return
    if not isinstance(shift_at, dt.date) or isinstance(shift_at, dt.datetime):
        raise ConfigError(f"shift_at must be a date, got {shift_at!r}")
    start = end_date - dt.timedelta(days=days)
    if not start < shift_at < end_date:
        raise ConfigError(
            f"shift_at {shift_at} is outside the history: it must be after {start} (the first "
            f"day) and before {end_date} (the day after the last)"
        )


def generate_warehouse(
    path: Path | str,
    *,
    customers: int,
    seed: int = 0,
    days: int = 730,
    end_date: dt.date = dt.date(2026, 10, 1),
    chunk_size: int = 100_000,
    oracle_cutoffs: int | None = None,
    observable_cutoffs: int = 0,
    shift_at: dt.date | None = None,
    shift: str | None = DEFAULT_SHIFT,
) -> GenerationReport:
    """Write a synthetic warehouse with known ground truth into schema `raw` of a DuckDB file.

    Every raw table of the input contract is (re)created, plus `raw.oracle_propensity` (the true
    probability of a purchase in each product group in the 30 days after each cutoff),
    `raw.oracle_treatment_effect` (the true effect of each discount arm on purchase probability,
    revenue and margin in the experiment window), `raw.oracle_offer_effects` (the same for an
    offer to every customer at the scoring cutoff `end_date`; docs/oracle.md, "Offer effects")
    and `raw.oracle_customer_state` (latent traits). The new tables replace the old ones in one
    transaction at the end: a failure or an interrupt leaves the previous contents in place.

    Parameters
    ----------
    path : Path or str
        DuckDB file; created if missing. Other schemas in it are left alone.
    customers : int
        Number of customers (about 25 order lines and 20 email events each).
    seed : int
        Same seed, customers, days, end date and chunk size: identical warehouse.
    days : int
        Length of the history [end_date - days, end_date); at least 120.
    end_date : date
        First day after the history; dbt's default scoring cutoff.
    chunk_size : int
        Customers simulated at once (bounds memory; part of what the seed reproduces).
    oracle_cutoffs : int, optional
        Number of cutoffs end_date - 30 k (k = 0, 1, ...) in the oracle; default all 13 up to
        200,000 customers, 7 above (keeps the table near 80M rows at 1M customers).
    observable_cutoffs : int
        Number of cutoffs end_date - 30 k, k = 1, 2, ... (the newest ones with a full label
        window: the test cutoff first) for which `raw.oracle_propensity.observable_probability`
        is computed: the best probability any model can reach from the observable history
        (docs/oracle.md). About 2 ms of one core per customer and cutoff; 0 (default) leaves the
        column NULL. It is written after the raw tables are published, in its own transaction.
    shift_at : date, optional
        First day of a regime shift (strictly inside the history). Everything dated before it
        (orders with their ids, lines, email events) is identical to the warehouse without a
        shift; the oracle is exact before, across and after it, and `raw.oracle_regime_shift`
        holds each customer's purchase-rate factor (docs/oracle.md, "Regime shift"). With
        `observable_cutoffs`, the observable oracle follows the shift for `email_fatigue`; for
        the other kinds only cutoffs whose label window ends by `shift_at` are allowed.
    shift : str
        Kind of shift (`_simulate.SHIFTS`, docs/oracle.md; None: the default): 'migration'
        (default: prices x 1.4, the price-sensitive half buys at 0.2 times its rate, every
        delivered email is recorded as opened), 'price_rise' (x 1.4, that half at 0.6),
        'price_cut' (x 0.7, that half at 4), 'email_tracking' (only the recorded opens) or
        'email_fatigue' (a campaign every 2 days to every opted-in customer, fewer opens and
        clicks per email, purchases moved from the engaged to the disengaged opted-in customers).

    Returns
    -------
    GenerationReport

    Raises
    ------
    ConfigError
        For invalid arguments.
    WarehouseError
        When the warehouse file cannot be opened (e.g. locked by another process).
    """
    _validate(customers, days, seed, chunk_size)
    shift = DEFAULT_SHIFT if shift is None else shift
    _validate_shift(shift_at, shift, days=days, end_date=end_date)
    if oracle_cutoffs is None:
        oracle_cutoffs = (
            MAX_CUTOFFS if customers <= FULL_ORACLE_MAX_CUSTOMERS else LARGE_ORACLE_CUTOFFS
        )
    if not isinstance(oracle_cutoffs, int) or not 0 <= oracle_cutoffs <= MAX_CUTOFFS:
        raise ConfigError(f"oracle_cutoffs must be between 0 and {MAX_CUTOFFS}")
    if (
        not isinstance(observable_cutoffs, int)
        or isinstance(observable_cutoffs, bool)
        or not 0 <= observable_cutoffs <= max(oracle_cutoffs - 1, 0)
    ):
        raise ConfigError(
            f"observable_cutoffs must be between 0 and {max(oracle_cutoffs - 1, 0)} (the oracle's "
            f"cutoffs with a full label window), got {observable_cutoffs!r}"
        )
    started = time.perf_counter()
    path = Path(path)
    calendar = build_calendar(
        end_date=end_date, days=days, n_cutoffs=oracle_cutoffs, shift_at=shift_at, shift=shift
    )
    observable = [calendar.date_of(d) for d in calendar.cutoff_days[1 : 1 + observable_cutoffs]]
    if (
        shift_at is not None
        and not observable_follows(SHIFTS[shift])
        and observable
        and observable[-1] + dt.timedelta(days=HORIZON_DAYS) > shift_at
    ):
        raise ConfigError(
            f"observable_cutoffs={observable_cutoffs} is not supported with a regime shift of "
            f"kind {shift!r} from {shift_at}: the observable oracle follows only 'email_fatigue' "
            f"and the oldest cutoff asked ({observable[-1]}) has a label window reaching past "
            "the shift; ask for fewer cutoffs, a later shift_at or that kind"
        )
    n_chunks = math.ceil(customers / chunk_size)
    catalog_seq, *chunk_seqs = np.random.SeedSequence(seed).spawn(1 + n_chunks)
    catalog = build_catalog(np.random.default_rng(catalog_seq))
    out = _Output.build(calendar, catalog)
    logger.info(
        "generating %d customers in %d chunks into %s (seed %d)", customers, n_chunks, path, seed
    )
    con = connect(path)
    try:
        # Written blocks stay cached up to DuckDB's memory limit (80% of RAM by default); the
        # generator never reads them back, so a small cache keeps memory flat as customers grow.
        con.execute(f"set memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
        con.execute(f"create schema if not exists {quote_ident(RAW_SCHEMA)}")
        writer = _Writer(con, shifted=shift_at is not None)
        writer.create_all()
        try:
            writer.append("products", catalog.products_table())
            writer.append("product_group_rules", rules_to_arrow(list(catalog.rules)))
            next_order_id, next_extra_id = 1, PROVISIONAL_ORDER_ID
            for i, seq in enumerate(chunk_seqs):
                n = min(chunk_size, customers - i * chunk_size)
                rng = np.random.default_rng(seq)
                c = draw_customers(
                    rng,
                    first_id=i * chunk_size + 1,
                    n=n,
                    calendar=calendar,
                    catalog=catalog,
                    last_customer_on_last_day=(i == n_chunks - 1),
                )
                shift_rng = None
                if shift_at is not None:
                    shift_seq = np.random.SeedSequence(seed, spawn_key=(SHIFT_STREAM_KEY, i))
                    shift_rng = np.random.default_rng(shift_seq)
                next_order_id, next_extra_id = _write_chunk(
                    writer,
                    rng,
                    c,
                    out,
                    first_order_id=next_order_id,
                    shift_rng=shift_rng,
                    extra_first_order_id=next_extra_id,
                )
                logger.info("chunk %d/%d: %d customers written", i + 1, n_chunks, n)
            if next_extra_id > PROVISIONAL_ORDER_ID:
                writer.renumber_orders(provisional=PROVISIONAL_ORDER_ID, first=next_order_id)
            writer.publish()
        except BaseException:
            writer.discard()
            raise
    finally:
        con.close()
    if observable:
        _write_observable_oracle(
            path,
            cutoffs=observable,
            seed=seed,
            end_date=end_date,
            days=days,
            shift_at=shift_at,
            shift=shift,
        )
    report = GenerationReport(
        path=path,
        customers=customers,
        seed=seed,
        start_date=calendar.start,
        end_date=calendar.end,
        oracle_cutoffs=tuple(calendar.date_of(d) for d in calendar.cutoff_days),
        rows=dict(writer.rows),
        seconds=time.perf_counter() - started,
        shift_at=shift_at,
        shift=None if shift_at is None else shift,
    )
    logger.info(
        "generated %d customers, %d order lines in %.1f s",
        customers,
        report.rows["order_lines"],
        report.seconds,
    )
    return report


def _write_observable_oracle(
    path: Path,
    *,
    cutoffs: list[dt.date],
    seed: int,
    end_date: dt.date,
    days: int,
    shift_at: dt.date | None,
    shift: str,
) -> None:
    """Fill raw.oracle_propensity.observable_probability for `cutoffs` (one transaction)."""
    from models_py.ingest.synth._posterior import observable_oracle  # scipy: imported when needed

    # Computed from a read-only connection first: DuckDB refuses a read-only and a read-write
    # connection to one file in the same process.
    tables = [
        observable_oracle(
            path,
            cutoff=cutoff,
            seed=seed,
            end_date=end_date,
            days=days,
            shift_at=shift_at,
            shift=shift,
        )
        for cutoff in cutoffs
    ]
    con = connect(path)
    try:
        with transaction(con):
            for table in tables:
                con.register("__observable_oracle", table)
                con.execute(
                    "update raw.oracle_propensity as o "
                    "set observable_probability = p.probability "
                    "from __observable_oracle as p "
                    "where o.customer_id = p.customer_id and o.product_group = p.product_group "
                    "and o.as_of_date = p.as_of_date"
                )
                con.unregister("__observable_oracle")
    finally:
        con.close()


@dataclass(frozen=True)
class _Output:
    """What every chunk needs to turn simulated indices into Arrow columns."""

    calendar: Calendar
    catalog: Catalog
    epoch_us: int
    product_ids: pa.Array
    groups: pa.Array
    campaign_ids: pa.Array
    event_types: pa.Array
    arms: pa.Array

    @classmethod
    def build(cls, calendar: Calendar, catalog: Catalog) -> _Output:
        days = list(calendar.campaign_days)
        if calendar.shift_kind is not None:  # indices as simulate_emails gives them
            days += list(SHIFTS[calendar.shift_kind].campaign_days(calendar))
        campaigns = [f"cmp_{calendar.date_of(d):%Y%m%d}" for d in days]
        return cls(
            calendar=calendar,
            catalog=catalog,
            epoch_us=date32(calendar.start) * SECONDS_PER_DAY * 1_000_000,
            product_ids=pa.array(catalog.product_id.tolist(), pa.string()),
            groups=pa.array(list(catalog.groups), pa.string()),
            campaign_ids=pa.array(campaigns, pa.string()),
            event_types=pa.array(list(EVENT_TYPES), pa.string()),
            arms=pa.array(list(ARMS), pa.string()),
        )

    def ts(self, seconds: np.ndarray) -> pa.Array:
        return _ts(self.epoch_us, seconds)


def _write_chunk(
    writer: _Writer,
    rng: np.random.Generator,
    c: Customers,
    out: _Output,
    *,
    first_order_id: int,
    shift_rng: np.random.Generator | None = None,
    extra_first_order_id: int = PROVISIONAL_ORDER_ID,
) -> tuple[int, int]:
    """Simulate and append one chunk of customers; returns the next free order id of the
    chunks' own processes and the next provisional id of a shift's added process."""
    cal, catalog = out.calendar, out.catalog
    writer.append("customers", customers_table(c, out.epoch_us))
    writer.append("oracle_customer_state", _state_table(c, out.epoch_us))
    if cal.shift_kind is not None:
        n = len(c.customer_id)
        writer.append(
            "oracle_regime_shift",
            pa.table(
                {
                    "customer_id": pa.array(c.customer_id, pa.int64()),
                    "shift": pa.array([cal.shift_kind] * n, pa.string()),
                    "shift_at": pa.array([cal.date_of(cal.shift_day)] * n, pa.date32()),
                    "purchase_rate_factor": pa.array(c.shift_factor, pa.float64()),
                }
            ),
        )

    o = simulate_orders(
        rng,
        c,
        calendar=cal,
        catalog=catalog,
        first_order_id=first_order_id,
        shift_rng=shift_rng,
        extra_first_order_id=extra_first_order_id if cal.shift_kind is not None else None,
    )
    writer.append(
        "orders",
        pa.table(
            {
                "order_id": pa.array(o.order_id, pa.int64()),
                "customer_id": pa.array(o.customer_id, pa.int64()),
                "ordered_at": out.ts(o.seconds),
            }
        ),
    )
    writer.append(
        "order_lines",
        pa.table(
            {
                "order_id": pa.array(o.line_order_id, pa.int64()),
                "product_id": out.product_ids.take(pa.array(o.line_product)),
                "quantity": pa.array(o.line_quantity.astype(np.int32), pa.int32()),
                "unit_price": pa.array(o.line_price, pa.float64()),
            }
        ),
    )
    next_order_id = first_order_id + o.n_ids
    # The added process's orders carry provisional ids (renumbered after every chunk).
    next_extra_id = extra_first_order_id + int((o.order_id >= extra_first_order_id).sum())
    del o

    cust, camp, etype, sec = simulate_emails(rng, c, calendar=cal, shift_rng=shift_rng)
    writer.append(
        "email_events",
        pa.table(
            {
                "customer_id": pa.array(c.customer_id[cust], pa.int64()),
                "campaign_id": out.campaign_ids.take(pa.array(camp)),
                "event_type": out.event_types.take(pa.array(etype)),
                "occurred_at": out.ts(sec),
            }
        ),
    )
    del cust, camp, etype, sec

    exp = np.flatnonzero(c.in_experiment)
    writer.append(
        "treatments",
        pa.table(
            {
                "customer_id": pa.array(c.customer_id[exp], pa.int64()),
                "experiment_id": pa.array([EXPERIMENT_ID] * len(exp), pa.string()),
                "arm": out.arms.take(pa.array(c.arm[exp])),
                "assigned_at": out.ts(np.full(len(exp), cal.experiment_day * SECONDS_PER_DAY)),
                "discount_pct": pa.array(np.array([float(a) for a in ARMS])[c.arm[exp]]),
            }
        ),
    )
    eff = treatment_effects(c, calendar=cal, catalog=catalog)
    writer.append(
        "oracle_treatment_effect",
        pa.table(
            {
                "customer_id": pa.array(c.customer_id[eff["customer"]], pa.int64()),
                "experiment_id": pa.array([EXPERIMENT_ID] * len(eff["customer"]), pa.string()),
                "arm": out.arms.take(pa.array(eff["arm"])),
                "baseline_probability": pa.array(eff["baseline"], pa.float64()),
                "treated_probability": pa.array(eff["treated"], pa.float64()),
                "effect": pa.array(eff["treated"] - eff["baseline"], pa.float64()),
                "baseline_revenue": pa.array(eff["baseline_revenue"], pa.float64()),
                "treated_revenue": pa.array(eff["treated_revenue"], pa.float64()),
                "revenue_effect": pa.array(
                    eff["treated_revenue"] - eff["baseline_revenue"], pa.float64()
                ),
                "baseline_margin": pa.array(eff["baseline_margin"], pa.float64()),
                "treated_margin": pa.array(eff["treated_margin"], pa.float64()),
                "margin_effect": pa.array(
                    eff["treated_margin"] - eff["baseline_margin"], pa.float64()
                ),
            }
        ),
    )
    offer = offer_effects(c, calendar=cal, catalog=catalog)
    as_of = date32(cal.date_of(cal.scoring_cutoff_day))
    writer.append(
        "oracle_offer_effects",
        pa.table(
            {
                "customer_id": pa.array(c.customer_id[offer["customer"]], pa.int64()),
                "as_of_date": pa.array(
                    np.full(len(offer["customer"]), as_of, dtype=np.int32), pa.date32()
                ),
                "arm": out.arms.take(pa.array(offer["arm"])),
                **{
                    name: pa.array(offer[name], pa.float64())
                    for name in GROUND_TRUTH_DDL["oracle_offer_effects"]
                    if name not in ("customer_id", "as_of_date", "arm")
                },
            }
        ),
    )

    q = group_hit_probability(c, catalog=catalog)
    g = len(catalog.groups)
    for cutoff in cal.cutoff_days:
        exists, prob = oracle_probabilities(c, calendar=cal, q=q, cutoff_day=cutoff)
        idx = np.flatnonzero(exists)
        as_of = np.full(len(idx) * g, date32(cal.date_of(cutoff)), dtype=np.int32)
        writer.append(
            "oracle_propensity",
            pa.table(
                {
                    "customer_id": pa.array(np.repeat(c.customer_id[idx], g), pa.int64()),
                    "product_group": out.groups.take(pa.array(np.tile(np.arange(g), len(idx)))),
                    "as_of_date": pa.array(as_of, pa.date32()),
                    "probability": pa.array(prob[idx].ravel(), pa.float64()),
                }
            ),
        )
    return next_order_id, next_extra_id


def _ts(epoch_us: int, seconds: np.ndarray) -> pa.Array:
    return pa.array(epoch_us + seconds.astype(np.int64) * 1_000_000, pa.timestamp("us"))


def _state_table(c: Customers, epoch_us: int) -> pa.Table:
    death_sec = np.floor(np.minimum(c.death, 1e6) * SECONDS_PER_DAY).astype(np.int64)
    return pa.table(
        {
            "customer_id": pa.array(c.customer_id, pa.int64()),
            "purchase_rate": pa.array(c.rate, pa.float64()),
            "churned_at": _ts(epoch_us, death_sec),
            "engagement": pa.array(c.engagement, pa.float64()),
            "items_mu": pa.array(c.items_mu, pa.float64()),
            "price_sensitivity": pa.array(c.price_sensitivity, pa.float64()),
        }
    )
