"""Time in the simulation: days since the start of the history, the daily purchase intensity
(yearly seasonality with a Q4 peak, weekly pattern), its cumulative integral and inverse, the
cutoffs of the oracle, the experiment window and the email campaign schedule."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

HORIZON_DAYS = 30  # label window, as dbt's default `horizon_days`
CUTOFF_STEP_DAYS = 30  # as dbt's default `cutoff_step_days`
MAX_CUTOFFS = 13  # k = 0 (scoring cutoff) .. 12
EXPERIMENT_LEAD_DAYS = 60  # the discount experiment starts this many days before the end
CAMPAIGN_EVERY_DAYS = 7
SECONDS_PER_DAY = 86_400

#: Relative order intensity per weekday, Monday first (weekend evenings shop more).
WEEKDAY_FACTOR = np.array([0.95, 0.93, 0.95, 1.0, 1.05, 1.02, 1.10])
#: Relative order intensity per hour of day (used only to place orders within their day).
HOUR_WEIGHT = np.array(
    [
        *(0.2, 0.1, 0.08, 0.06, 0.06, 0.1, 0.3, 0.6, 0.9, 1.0, 1.1, 1.2),
        *(1.3, 1.2, 1.1, 1.0, 1.0, 1.1, 1.3, 1.5, 1.6, 1.4, 1.0, 0.5),
    ]
)


def yearly_factor(day_of_year: np.ndarray) -> np.ndarray:
    """Seasonality by day of year: Q4 ramp, Black Friday, Christmas, January and summer dips."""
    d = day_of_year.astype(float)
    return (
        1.0
        + 0.25 * np.exp(-(((d - 330.0) / 30.0) ** 2))  # Q4 ramp-up
        + 0.35 * np.exp(-(((d - 332.0) / 4.0) ** 2))  # Black Friday week
        + 0.60 * np.exp(-(((d - 348.0) / 12.0) ** 2))  # Christmas shopping
        - 0.20 * np.exp(-(((d - 15.0) / 12.0) ** 2))  # January lull
        - 0.10 * np.exp(-(((d - 215.0) / 30.0) ** 2))  # summer holidays
    )


@dataclass(frozen=True)
class Calendar:
    """The history [start, end) as day indices 0..days-1, extended by one horizon for the oracle.

    Attributes
    ----------
    intensity : np.ndarray
        Seasonal multiplier s(d) of every customer's purchase rate on day d (mean about 1 a year).
    cum : np.ndarray
        cum[d] = s(0) + ... + s(d - 1): the integral of s over [0, d). The intensity is constant
        within a day, so the integral is piecewise linear in continuous time.
    """

    start: dt.date
    end: dt.date
    days: int
    intensity: np.ndarray
    cum: np.ndarray
    experiment_day: int
    cutoff_days: tuple[int, ...]
    campaign_days: np.ndarray
    #: First day and kind of the regime shift (see `_simulate.SHIFTS`); None: no shift.
    shift_day: int | None = None
    shift_kind: str | None = None

    @property
    def experiment_end_day(self) -> int:
        return self.experiment_day + HORIZON_DAYS

    @property
    def scoring_cutoff_day(self) -> int:
        """The k = 0 cutoff: the day after the history (`end`, dbt's default scoring cutoff;
        `cutoff_days[0]` whenever the oracle has cutoffs)."""
        return self.days

    def date_of(self, day: int) -> dt.date:
        return self.start + dt.timedelta(days=int(day))

    def integral(self, x: np.ndarray | float) -> np.ndarray:
        """Integral of s over [0, x) for continuous day positions x (clipped to the grid)."""
        x = np.clip(np.asarray(x, dtype=float), 0.0, len(self.intensity))
        d = np.minimum(np.floor(x).astype(np.int64), len(self.intensity) - 1)
        return self.cum[d] + self.intensity[d] * (x - d)

    def invert(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Day and fraction of the day at which the integral reaches `u` (inverse CDF sampling)."""
        d = np.searchsorted(self.cum, u, side="right") - 1
        d = np.clip(d, 0, len(self.intensity) - 1)
        frac = np.clip((u - self.cum[d]) / self.intensity[d], 0.0, 1.0 - 1e-9)
        return d, frac


def build_calendar(
    *,
    end_date: dt.date,
    days: int,
    n_cutoffs: int = MAX_CUTOFFS,
    shift_at: dt.date | None = None,
    shift: str = "migration",
) -> Calendar:
    """Seasonal intensity over [end_date - days, end_date + horizon) and the derived schedules.

    `shift_at` (a day inside the history) becomes `shift_day`, the first day of the regime shift
    of kind `shift`.
    """
    start = end_date - dt.timedelta(days=days)
    n = days + HORIZON_DAYS
    dates = np.datetime64(start, "D") + np.arange(n)
    day_of_year = (dates - dates.astype("datetime64[Y]")).astype(np.int64) + 1
    weekday = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    yearly = yearly_factor(np.arange(1, 366))
    intensity = yearly_factor(day_of_year) / yearly.mean() * WEEKDAY_FACTOR[weekday]
    intensity /= WEEKDAY_FACTOR.mean()
    cum = np.concatenate([[0.0], np.cumsum(intensity)])
    cutoffs = tuple(
        days - CUTOFF_STEP_DAYS * k
        for k in range(n_cutoffs)
        if days - CUTOFF_STEP_DAYS * k >= HORIZON_DAYS
    )
    return Calendar(
        start=start,
        end=end_date,
        days=days,
        intensity=intensity,
        cum=cum,
        experiment_day=days - EXPERIMENT_LEAD_DAYS,
        cutoff_days=cutoffs,
        campaign_days=np.arange(3, days, CAMPAIGN_EVERY_DAYS),
        shift_day=None if shift_at is None else (shift_at - start).days,
        shift_kind=None if shift_at is None else shift,
    )


def time_of_day(rng_uniform: np.ndarray) -> np.ndarray:
    """Map uniform fractions of a day to fractions following `HOUR_WEIGHT` (quantile function)."""
    cdf = np.concatenate([[0.0], np.cumsum(HOUR_WEIGHT)]) / HOUR_WEIGHT.sum()
    return np.interp(rng_uniform, cdf, np.arange(25.0)) / 24.0
