"""Operating over time: the scheduled workflows (docs/operations.md).

`run_daily` scores the new scoring cutoff with the champions (`propensity run daily`).
"""

from __future__ import annotations

from models_py.operations._daily import (
    DEFAULT_LOOKBACK_DAYS,
    DailyPlan,
    DailyReport,
    NoChampionError,
    ScoringCutoffError,
    plan_daily,
    run_daily,
)

__all__ = [
    "DEFAULT_LOOKBACK_DAYS",
    "DailyPlan",
    "DailyReport",
    "NoChampionError",
    "ScoringCutoffError",
    "plan_daily",
    "run_daily",
]
