"""`propensity run daily --engine spark`: the daily selector on Spark tables."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from models_py._errors import WarehouseError
from models_py._settings import Settings
from models_py.spark._session import get_spark

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SparkDailyReport:
    as_of: dt.date
    rows_by_group: dict[str, int]
    nodes_built: int
    tests_passed: int
    seconds: float
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        groups = ", ".join(f"{g} {n:,}" for g, n in self.rows_by_group.items()) or "none"
        return (
            f"daily run on Spark: scoring cutoff {self.as_of}; {self.nodes_built} models built, "
            f"{self.tests_passed} tests passed in {self.seconds:.0f}s; scores: {groups}"
        )


def run_daily_on_spark(settings: Settings, *, as_of: dt.date | None = None) -> SparkDailyReport:
    """Score the scoring cutoff `as_of` (default: the day after the last order) with the
    champions in Spark's registry: ``dbt build --selector daily`` on the `spark` target.

    On Spark the intermediate tables are rebuilt whole (no lookback window: the incremental
    intermediates delete rows, which Parquet tables cannot) and the features of the scoring
    cutoff replace that cutoff's partition; stored training cutoffs are kept.
    """
    from models_py._dbt import run_dbt

    started = time.perf_counter()
    spark = get_spark(settings)
    if as_of is None:
        if not spark.catalog.tableExists("raw.orders"):
            raise WarehouseError(
                "Spark has no raw.orders: load the raw tables first "
                "(`propensity generate --engine spark` or your EL tool)"
            )
        last = spark.sql("select max(cast(ordered_at as date)) from raw.orders").collect()[0][0]
        if last is None:
            raise WarehouseError("raw.orders on Spark holds no order: nothing to score")
        as_of = last + dt.timedelta(days=1)
    outcome = run_dbt(
        settings,
        ["build", "--selector", "daily"],
        dbt_vars={
            "scoring_cutoff": as_of.isoformat(),
            "feature_cutoff_roles": ["scoring"],
            "scoring_require_champion": True,
        },
    )
    rows = {
        r[0]: r[1]
        for r in spark.sql(
            "select product_group, count(*) from marts.fct_propensity_scores "
            f"where as_of_date = date'{as_of.isoformat()}' group by product_group "
            "order by product_group"
        ).collect()
    }
    return SparkDailyReport(
        as_of=as_of,
        rows_by_group=rows,
        nodes_built=outcome.count("success"),
        tests_passed=outcome.count("pass"),
        seconds=time.perf_counter() - started,
        warnings=tuple(outcome.warnings),
    )
