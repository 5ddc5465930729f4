"""Regime shifts: from a chosen date the simulated customers behave differently
(`generate_warehouse(shift_at=..., shift=...)`, `propensity generate --shift-at DATE`).

A shift never touches what happens before it: the generator first simulates the unshifted world
with the chunk's own random numbers (exactly as without a shift), drops the events that would
happen at or after the shift, and simulates the new regime from the shift on with a second,
independent random stream. Everything dated before `shift_at` (orders with their ids, lines,
returns, email events, customers, treatments) is therefore identical to the warehouse without
a shift; the latent traits (purchase rate, churn time, engagement, affinities) are the same, and
`raw.oracle_propensity` applies the new regime to the part of each label window after the shift.

Kinds (docs/oracle.md, "Regime shift", has their true effect and measured figures):

- ``email_fatigue`` (default): the shop moves from one weekly campaign (to 35 % of the opted-in
  customers) to a campaign every 2 days to every opted-in customer who has not unsubscribed.
  Each email is opened and clicked less (open logit -1.0, click logit -0.5) and unsubscribes
  are twice as likely. Purchases move from the engaged to the disengaged opted-in customers: the
  readers tire of the flood, the frequent reminders reach those who missed the weekly email.
  From the shift on, the purchase rate of every opted-in customer is multiplied by
  f = exp(-g (z + g / 2 - a)), z the latent engagement, g = `EmailFatigue.engagement_on_rate`
  (1.0) and a = `Behaviour.engagement_on_rate` (0.35, the engagement in the purchase rate):
  f = exp(-(z + 0.15)), 0.32 one standard deviation above the mean engagement, 2.3 one below.
  The centring keeps the prior expectation of purchases unchanged (E[rate x f] = E[rate] over
  the prior of z); opted-out customers are unaffected. Engagement raised purchases before the
  shift and lowers them after: a model that learned the old relation (recent activity and
  email opens mean more purchases) ranks the opted-in customers partly backwards.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from models_py._errors import ConfigError
from models_py.ingest.synth._calendar import SECONDS_PER_DAY, Calendar
from models_py.ingest.synth._simulate import BEHAVIOUR, Customers

#: Kinds of regime shift and what they do, in a line each (the module docstring has details).
SHIFT_KINDS: dict[str, str] = {
    "email_fatigue": (
        "a campaign every 2 days to every opted-in customer (was weekly to 35 %): opens and "
        "clicks per email fall, unsubscribes double, purchases move from the engaged to the "
        "disengaged opted-in customers"
    ),
}
DEFAULT_SHIFT = "email_fatigue"
#: Order ids of the new regime are written as this plus a running number, then renumbered to
#: follow the last id of the unshifted simulation (so every order before the shift keeps its id).
PROVISIONAL_ORDER_ID = 1 << 60


@dataclass(frozen=True)
class EmailFatigue:
    """Knobs of the ``email_fatigue`` regime (documented defaults; tests pin their consequences)."""

    campaign_every_days: int = 2
    audience: float = 1.0  # share of the reachable opted-in customers in each campaign
    open_logit: float = -1.0  # added to the open logit of every email of the new regime
    click_logit: float = -0.5
    unsubscribe_scale: float = 2.0  # multiplies the unsubscribe probability of a delivered email
    engagement_on_rate: float = 1.0  # g: opted-in purchase rate x exp(-g (z + g / 2 - a))


EMAIL_FATIGUE = EmailFatigue()


@dataclass(frozen=True)
class RegimeShift:
    """A regime shift at midnight starting day `day` (days since the start of the history)."""

    kind: str
    day: int
    at: dt.date
    email: EmailFatigue = EMAIL_FATIGUE

    @property
    def sec(self) -> int:
        """The shift in seconds since the start of the history."""
        return self.day * SECONDS_PER_DAY

    def rate_factor(self, c: Customers) -> np.ndarray:
        """Multiplier of each customer's purchase rate from the shift on (1 = unchanged)."""
        g, a = self.email.engagement_on_rate, BEHAVIOUR.engagement_on_rate
        return np.where(c.email_opt_in, np.exp(-g * (c.engagement + g / 2 - a)), 1.0)

    def campaign_days(self, calendar: Calendar) -> np.ndarray:
        """Days of the campaigns of the new regime (the weekly ones stop at the shift)."""
        return np.arange(self.day, calendar.days, self.email.campaign_every_days)


def regime_shift(shift_at: object, kind: object, *, calendar: Calendar) -> RegimeShift | None:
    """Validate `shift_at` and `kind` (None: `DEFAULT_SHIFT`) against the generated history;
    None when `shift_at` is None.

    Raises
    ------
    ConfigError
        For an unknown kind, a `shift_at` that is not a date, or one outside the history
        (it must fall after its first day and before `end_date`).
    """
    kind = DEFAULT_SHIFT if kind is None else kind
    if kind not in SHIFT_KINDS:
        raise ConfigError(
            f"unknown regime shift {kind!r}: choose one of {', '.join(sorted(SHIFT_KINDS))}"
        )
    if shift_at is None:
        return None
    if not isinstance(shift_at, dt.date) or isinstance(shift_at, dt.datetime):
        raise ConfigError(f"shift_at must be a date such as 2026-06-09, got {shift_at!r}")
    if not calendar.start < shift_at < calendar.end:
        raise ConfigError(
            f"shift_at {shift_at} is outside the generated history {calendar.start} .. "
            f"{calendar.end - dt.timedelta(days=1)}: choose a date after its first day and "
            f"before end_date {calendar.end} (or change --days / --end-date)"
        )
    return RegimeShift(kind=str(kind), day=(shift_at - calendar.start).days, at=shift_at)
