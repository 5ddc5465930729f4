"""`propensity run daily`: score the new scoring cutoff with the champions (dbt selector `daily`).

The run's "now" is its scoring cutoff (``--as-of``, default the day after the last order):
features use only events before it. Checks that take milliseconds run first and refuse a cutoff
that would give wrong numbers; then one ``dbt build --selector daily`` with the scoring cutoff,
``feature_cutoff_roles: [scoring]`` (stored training cutoffs are neither recomputed nor moved) and
incremental intermediate tables. Every table is replaced in its own transaction, so an
interrupted run leaves the scores and the registry as they were. docs/operations.md, "Daily run".
Once dbt is done, the run publishes the serving snapshot `propensity serve` reads
(docs/serving.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field

from models_py._errors import PropensityError, WarehouseError
from models_py._settings import Settings
from models_py._warehouse import connect, relation_columns, relation_exists
from models_py.serving import SnapshotReport, publish_snapshot

logger = logging.getLogger(__name__)

#: Days before the newest stored order date whose orders a daily run recomputes in the
#: intermediate tables (late and corrected orders of those days are picked up).
DEFAULT_LOOKBACK_DAYS = 7
SCORES = "marts.fct_propensity_scores"
TRAINING_EXAMPLES = "marts.fct_training_examples"
INTERMEDIATE_ORDERS = "intermediate.int_orders_summarised"
#: The newest column of INTERMEDIATE_ORDERS (a warehouse built before it is rebuilt once).
FIRST_PURCHASE_OF_DAY = "is_first_purchase_of_day"


class NoChampionError(PropensityError):
    """The daily run has no champion model to score with."""


class ScoringCutoffError(PropensityError):
    """The asked scoring cutoff would give wrong or misleading scores; nothing was run."""


@dataclass(frozen=True)
class DailyPlan:
    """What a daily run will do, decided from the warehouse before dbt starts.

    Attributes
    ----------
    as_of : date
        The scoring cutoff ("now"): features use events strictly before it.
    last_order_date : date
        The newest order date with lines in the warehouse.
    previous_cutoff : date or None
        The newest cutoff already in the score history, if any.
    champions : dict
        Product group -> champion model id (the models this run scores with).
    notes : tuple of str
        What the user should know (no new data, a gap, a backfill, groups left unscored).
    """

    as_of: dt.date
    last_order_date: dt.date
    previous_cutoff: dt.date | None
    champions: Mapping[str, str]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DailyReport:
    """What a daily run did."""

    plan: DailyPlan
    rows_by_group: Mapping[str, int]
    nodes_built: int
    tests_passed: int
    tests_warned: int
    warnings: tuple[str, ...]
    lookback_days: int | None
    seconds: float
    notes: tuple[str, ...] = field(default=())
    snapshot: SnapshotReport | None = None
    tests_since: str | None = None

    @property
    def rows(self) -> int:
        return sum(self.rows_by_group.values())

    def summary(self) -> str:
        plan = self.plan
        previous = (
            f"previous scored cutoff {plan.previous_cutoff}"
            if plan.previous_cutoff
            else "first scored cutoff"
        )
        groups = ", ".join(f"{g} {n:,}" for g, n in sorted(self.rows_by_group.items()))
        intermediates = (
            "rebuilt from all history"
            if self.lookback_days is None
            else f"orders of the last {self.lookback_days} stored days recomputed"
        )
        lines = [
            f"daily run: scoring cutoff {plan.as_of} (orders up to {plan.last_order_date}; "
            f"{previous})",
            f"  scored {self.rows:,} rows in {len(self.rows_by_group)} groups: {groups or 'none'}",
            f"  dbt build --selector daily: {self.nodes_built} built, {self.tests_passed} tests "
            f"passed, {self.tests_warned} warned"
            + (f" (rows from {self.tests_since})" if self.tests_since else " (every row)")
            + f"; intermediate tables: {intermediates}",
        ]
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  note: {n}" for n in (*plan.notes, *self.notes)]
        if self.snapshot is not None:
            lines.append(f"  {self.snapshot.summary()}")
        lines.append(f"  done in {self.seconds:.1f} s")
        return "\n".join(lines)


def _scalar(con, sql: str, params: list | None = None):
    row = con.execute(sql, params or []).fetchone()
    return row[0] if row else None


def last_order_date(con) -> dt.date | None:
    """The newest order date that dim_cutoffs sees (an order with a customer and a line), read
    through the staging views; none when there is no such order."""
    if not relation_exists(con, "staging.stg_raw__orders"):
        raise WarehouseError(
            "the warehouse has not been built (no staging.stg_raw__orders): run `propensity "
            "build`, then `propensity train`, before the first daily run"
        )
    # The last days first: the newest order date with a line is almost always among them. The
    # lines are joined to those orders (not the orders checked against every line): DuckDB then
    # hashes the few recent orders and skips the lines outside their ids, 1.3 s instead of
    # 12-14 s at 10M customers (265M lines). A line per order is not needed for a max.
    for recent_days in (31, None):
        window = (
            "and ordered_at >= (select max(ordered_at) from staging.stg_raw__orders) "
            f"- to_days({recent_days})"
            if recent_days
            else ""
        )
        day = _scalar(
            con,
            "with recent as (select order_id, ordered_at from staging.stg_raw__orders "
            f"where customer_id is not null {window}) "
            "select max(cast(recent.ordered_at as date)) from staging.stg_raw__order_lines "
            "as lines inner join recent on lines.order_id = recent.order_id",
        )
        if day is not None:
            return day
    return None


def scoring_champions(con, training_relation: str) -> dict[str, str]:
    """Product group -> champion model id, for the champions dbt scores (trained on
    `training_relation`)."""
    from models_py.registry import list_models, model_row
    from models_py.registry._evaluation import has_registry

    if not has_registry(con):
        return {}
    out = {}
    for row in list_models(con):
        is_champion = "champion" in row["aliases"].split(",")
        if (
            is_champion
            and model_row(con, row["model_id"])["training_relation"] == training_relation
        ):
            out[row["product_group"]] = row["model_id"]
    return out


def plan_daily(
    con,
    *,
    as_of: dt.date | None = None,
    backfill: bool = False,
    training_relation: str = TRAINING_EXAMPLES,
) -> DailyPlan:
    """Decide the scoring cutoff of a daily run and check it against the data and the history.

    Raises
    ------
    NoChampionError
        No champion model trained on `training_relation`.
    ScoringCutoffError
        `as_of` is after the data ends (features would see no orders for the days between), or
        earlier than the newest scored cutoff without `backfill`.
    """
    champions = scoring_champions(con, training_relation)
    if not champions:
        raise NoChampionError(
            "no champion model to score with: the daily run scores every product group with "
            f"its champion (ml.model_aliases, trained on {training_relation}) and there is "
            "none. Train them first: `propensity train` (after `propensity build`)."
        )
    last = last_order_date(con)
    if last is None:
        raise ScoringCutoffError(
            "the warehouse holds no order with a customer and a line: there is nothing to score "
            "from. Load raw.orders and raw.order_lines first."
        )
    data_cutoff = last + dt.timedelta(days=1)
    as_of = as_of or data_cutoff
    if as_of > data_cutoff:
        missing = (as_of - data_cutoff).days
        raise ScoringCutoffError(
            f"--as-of {as_of} is after the data ends: the last order is on {last}, so features "
            f"at {as_of} would see no orders for the {missing} day(s) from {data_cutoff} to "
            f"{as_of - dt.timedelta(days=1)} (recency and window features would be wrong). "
            f"Load those days' orders first, or run without --as-of (cutoff {data_cutoff})."
        )
    previous = (
        _scalar(con, f"select max(as_of_date) from {SCORES}")
        if relation_exists(con, SCORES)
        else None
    )
    notes: list[str] = []
    if previous is not None:
        if as_of < previous and not backfill:
            raise ScoringCutoffError(
                f"--as-of {as_of} is earlier than the newest scored cutoff {previous} in "
                f"{SCORES}: a daily run moves forward. To (re)score an earlier cutoff "
                "deliberately, add --backfill: that cutoff's scores are computed with today's "
                "champions from the data now in the warehouse (orders before it only) and "
                "replace its stored scores, if any; later cutoffs are kept."
            )
        if as_of < previous:
            notes.append(
                f"backfill: cutoff {as_of} is before the newest scored cutoff {previous}; "
                "its scores use today's champions and replace any stored for it"
            )
        elif as_of == previous:
            if as_of == data_cutoff:
                notes.append(
                    f"no new data: the last order is still on {last}, as when cutoff {previous} "
                    "was scored; its scores were recomputed and replace the stored ones"
                )
            else:
                notes.append(f"cutoff {previous} was scored before: its scores were replaced")
        elif (as_of - previous).days > 1:
            gap = (as_of - previous).days - 1
            notes.append(
                f"gap: {gap} day(s) without scores since the last scored cutoff {previous} "
                f"({previous + dt.timedelta(days=1)} .. {as_of - dt.timedelta(days=1)}); this "
                f"run scores {as_of} only. Score a missing day with `propensity run daily "
                "--as-of DATE --backfill`."
            )
    elif backfill:
        notes.append("--backfill has no effect: the score history is empty")
    if relation_exists(con, "marts.dim_product_groups"):
        active = [
            r[0]
            for r in con.execute(
                "select product_group from marts.dim_product_groups where is_active order by 1"
            ).fetchall()
        ]
        unscored = [g for g in active if g not in champions]
        if unscored:
            notes.append(
                f"not scored (no champion): {', '.join(unscored)}; train them with "
                "`propensity train --group GROUP`"
            )
    return DailyPlan(
        as_of=as_of,
        last_order_date=last,
        previous_cutoff=previous,
        champions=dict(sorted(champions.items())),
        notes=tuple(notes),
    )


def _training_notes(con, plan: DailyPlan) -> tuple[str, ...]:
    """Champions whose training cutoffs are not the stored training examples' (a retrain moved
    the examples but that group's champion was kept)."""
    from models_py.registry import model_row

    if not relation_exists(con, TRAINING_EXAMPLES):
        return ()
    stored = {
        str(r[0])
        for r in con.execute(f"select distinct as_of_date from {TRAINING_EXAMPLES}").fetchall()
    }
    stale = []
    for group, model_id in plan.champions.items():
        row = model_row(con, model_id)
        used = {
            str(c)
            for key in ("train_cutoffs", "validation_cutoffs", "test_cutoffs")
            for c in row[key] or []
        }
        if used and not used <= stored:
            stale.append(group)
    if not stale:
        return ()
    return (
        f"champions trained on cutoffs no longer in {TRAINING_EXAMPLES}: {', '.join(stale)} "
        "(the examples were rebuilt since; `propensity train` refreshes them)",
    )


def _complete_registry(settings: Settings) -> None:
    """Create the registry tables a newer version added to a registry that has champions (dbt's
    ``ensure_ml_tables``, which the build's on-run-start would run anyway): the checks before
    the build read the registry through `models_py.registry`, which needs every table."""
    from models_py._dbt import run_dbt
    from models_py.registry import ML_TABLES
    from models_py.registry._tables import present_tables

    with closing(connect(settings.warehouse, read_only=True)) as con:
        present = present_tables(con)
    if "model_aliases" in present and len(present) < len(ML_TABLES):
        run_dbt(settings, ["run-operation", "ensure_ml_tables"])


def data_tests_since(con, plan: DailyPlan, lookback_days: int | None) -> dt.date | None:
    """The first day whose rows the daily run rewrites (dbt var ``data_tests_since``): the data
    tests given a ``since_column`` check those rows only (dbt_project/macros/tests). None, every
    row tested, when the intermediate tables are rebuilt from all history (no lookback) or not
    built yet.

    The intermediate tables recompute the orders from ``lookback_days`` before their newest
    stored order date (as their models do); the scores and features of the run are those of
    ``plan.as_of``, which a backfill makes the earlier of the two.
    """
    if lookback_days is None or not relation_exists(con, INTERMEDIATE_ORDERS):
        return None
    newest = _scalar(con, f"select max(order_date) from {INTERMEDIATE_ORDERS}")
    if newest is None:
        return None
    return min(newest - dt.timedelta(days=lookback_days), plan.as_of)


def _intermediates_outdated(con) -> bool:
    """The stored orders table lacks a column this version writes: an incremental run would fail
    on the schema change (dbt's on_schema_change: fail), a whole rebuild adds it."""
    if not relation_exists(con, INTERMEDIATE_ORDERS):
        return False
    return FIRST_PURCHASE_OF_DAY not in relation_columns(con, INTERMEDIATE_ORDERS)


def run_daily(
    settings: Settings,
    *,
    as_of: dt.date | None = None,
    backfill: bool = False,
    lookback_days: int | None = DEFAULT_LOOKBACK_DAYS,
) -> DailyReport:
    """Score the scoring cutoff `as_of` (default: the day after the last order) with the champions.

    Runs ``dbt build --selector daily`` with vars ``scoring_cutoff``, ``feature_cutoff_roles:
    [scoring]``, ``scoring_require_champion: true``, ``intermediate_lookback_days`` and
    ``data_tests_since`` (from `data_tests_since`, unless ``--vars`` set it).

    Parameters
    ----------
    settings : Settings
        The warehouse and dbt settings.
    as_of : date, optional
        The scoring cutoff; features use events strictly before it.
    backfill : bool
        Allow a cutoff earlier than the newest one in the score history.
    lookback_days : int or None
        The intermediate tables recompute the orders from this many days before their newest
        stored order date; None rebuilds them from all history (after corrections of older
        orders).

    Raises
    ------
    NoChampionError, ScoringCutoffError
        Before anything runs (see `plan_daily`).
    DbtRunError
        A model or a data test failed; each table keeps its previous contents or its new
        ones, never a part (the scores of the cutoff are not written when a model before them
        fails).
    """
    from models_py._dbt import run_dbt

    started = time.perf_counter()
    if lookback_days is not None and lookback_days < 0:
        raise ValueError(f"lookback_days must be >= 0 or None, got {lookback_days}")
    training_relation = str(settings.dbt_vars.get("scoring_training_relation", TRAINING_EXAMPLES))
    _complete_registry(settings)
    layout_notes: tuple[str, ...] = ()
    with closing(connect(settings.warehouse, read_only=True)) as con:
        plan = plan_daily(con, as_of=as_of, backfill=backfill, training_relation=training_relation)
        if lookback_days is not None and _intermediates_outdated(con):
            lookback_days = None
            layout_notes = (
                f"{INTERMEDIATE_ORDERS} was built by an earlier version (no column "
                f"{FIRST_PURCHASE_OF_DAY}): the intermediate tables were rebuilt from all history "
                "this once",
            )
        # A date the user passed (--vars) wins, e.g. 1900-01-01 to test every row.
        tests_since = settings.dbt_vars.get("data_tests_since") or data_tests_since(
            con, plan, lookback_days
        )
    logger.info("daily run: scoring cutoff %s", plan.as_of)
    outcome = run_dbt(
        settings,
        ["build", "--selector", "daily"],
        dbt_vars={
            "scoring_cutoff": plan.as_of.isoformat(),
            "feature_cutoff_roles": ["scoring"],
            "scoring_require_champion": True,
            "intermediate_lookback_days": lookback_days,
            "data_tests_since": str(tests_since) if tests_since else None,
        },
    )
    with closing(connect(settings.warehouse, read_only=True)) as con:
        rows = dict(
            con.execute(
                f"select product_group, count(*) from {SCORES} where as_of_date = ? "
                "group by product_group order by product_group",
                [plan.as_of],
            ).fetchall()
        )
        notes = layout_notes + _training_notes(con, plan)
    # The service reads this copy, never the warehouse dbt writes (docs/serving.md). A failure
    # here is raised: the scores are written, but a service would keep yesterday's.
    snapshot = publish_snapshot(settings)
    return DailyReport(
        plan=plan,
        rows_by_group=rows,
        nodes_built=outcome.count("success"),
        tests_passed=outcome.count("pass"),
        tests_warned=outcome.count("warn"),
        warnings=tuple(outcome.warnings),
        lookback_days=lookback_days,
        seconds=time.perf_counter() - started,
        notes=notes,
        snapshot=snapshot,
        tests_since=str(tests_since) if tests_since else None,
    )
