"""Simulate one chunk of customers: latent traits, purchases, returns, email events, the discount
experiment, the exact oracle probabilities and the true effects of a discount offer. Everything
is vectorised with numpy; a chunk's random numbers come from its own generator, so results
depend only on the seed and the chunking.

The model (see the package docstring for the full description):

- a customer exists from `created_at` and is alive until a latent death time (churn);
- while alive and inside the history, purchases form a Poisson process with intensity
  ``rate * s(t) * m(t)``: `rate` is gamma-distributed (higher for VIPs and engaged customers),
  s(t) the seasonal calendar, m(t) the discount-experiment multiplier (1 outside the experiment);
- customers acquired during the history may place a "welcome" purchase at the exact second
  they are created (it is before every cutoff they are scored at, so no oracle window sees it);
- a purchase has 1 + Poisson(mu) items, each drawn from the customer's category affinities
  (Dirichlet) and then from the category's product popularity;
- an optional regime shift from a chosen day (`Shift`, `SHIFTS`) changes prices, purchase
  rates and the email programme. It draws its random numbers from its own generator, so
  everything before the shift day is identical with and without it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from models_py.ingest.synth._calendar import HORIZON_DAYS, SECONDS_PER_DAY, Calendar, time_of_day
from models_py.ingest.synth._catalog import Catalog

EXPERIMENT_ID = "discount_2026q3"
ARMS = ("0", "20", "25")
EVENT_TYPES = ("sent", "open", "click", "unsubscribe", "bounce")


@dataclass(frozen=True)
class Behaviour:
    """The simulation's knobs (documented defaults; the tests pin their consequences)."""

    mean_rate: float = 0.04  # purchases per day for an average customer while alive
    rate_shape: float = 0.55  # gamma shape of purchase rates: < 1 means very heterogeneous
    engagement_on_rate: float = 0.35  # log-rate per standard deviation of engagement
    vip_share: float = 0.015
    vip_rate: float = 3.0
    items_mu: float = 1.5  # items per purchase = 1 + Poisson(mu)
    vip_items_mu: float = 2.4
    affinity_concentration: float = 4.0  # Dirichlet concentration over category popularity
    created_before_share: float = 0.3  # customers created before the history window
    created_before_span_days: float = 1095.0
    acquisition_growth: float = 0.6  # acquisition density rises linearly by this much
    welcome_share: float = 0.45  # share of new customers who buy when they sign up
    short_life_share: float = 0.25  # one-and-done customers
    short_life_days: float = 45.0
    long_life_days: float = 1100.0
    opt_in_logit: float = 0.9
    return_alpha: float = 2.0  # per-customer return probability ~ Beta(alpha, beta)
    return_beta: float = 24.0
    experiment_share: float = 0.3
    arm_uplift: tuple[float, float, float] = (0.0, 1.0, 1.5)  # factor = 1 + sensitivity * uplift
    campaign_audience: float = 0.35  # share of opted-in customers targeted by a campaign
    bad_email_share: float = 0.015
    #: Gross margin as a share of the list price (the price in effect before any discount): a
    #: line sold at discount d earns list value x (margin_rate - d). Only the oracle of offer
    #: effects uses it (raw.oracle_offer_effects, the money columns of
    #: raw.oracle_treatment_effect); it changes no simulated row.
    margin_rate: float = 0.40


BEHAVIOUR = Behaviour()
#: Quantity of an item = 1 + Poisson(mean): VIPs buy more of each product.
QUANTITY_MU = 0.25
VIP_QUANTITY_MU = 0.6


@dataclass(frozen=True)
class Shift:
    """A regime shift, effective from midnight of the shift day (`SHIFTS` holds the kinds).

    Every purchase line at or after the shift costs `price_factor` times its no-shift price (the
    experiment's discount applies on top; returns refund the price paid; the catalogue in
    raw.products keeps the old list prices). Customers with latent price_sensitivity >=
    `sensitivity_threshold` (about half of them; see raw.oracle_customer_state) purchase at
    `rate_factor` times their rate from then on, the others as before. A factor below 1 thins
    their Poisson purchases after the shift (each kept with probability `rate_factor`); a factor
    above 1 adds an independent Poisson process of rate (rate_factor - 1) x rate from the shift
    day: either way the purchases stay Poisson with the new rate. Items per purchase and
    category affinities do not change.

    A share `auto_open_share` of the customers (drawn from the shift's own random stream, the
    same share among every kind of customer) reads mail through a privacy proxy from the shift
    on: every delivered email to them is recorded as opened (at the time a human open would
    have been; clicks and unsubscribes stay the human ones). Purchases do not change.

    With `campaign_every_days`, the weekly campaigns stop at the shift and a campaign goes out
    every that many days from the shift day on, to a share `campaign_audience` of the opted-in
    customers who have not unsubscribed; `open_logit` and `click_logit` are added to the logits
    of the funnel of those emails and `unsubscribe_scale` multiplies their unsubscribe
    probability. `engagement_on_rate` (g > 0) multiplies the purchase rate of every opted-in
    customer by exp(-g (z + g / 2 - a)) from the shift on, z the latent engagement and
    a = `Behaviour.engagement_on_rate` (on top of the price-sensitive half's `rate_factor`).
    """

    price_factor: float = 1.0
    rate_factor: float = 1.0
    sensitivity_threshold: float = 0.5
    auto_open_share: float = 0.0
    engagement_on_rate: float = 0.0
    campaign_every_days: int | None = None
    campaign_audience: float = 1.0
    open_logit: float = 0.0
    click_logit: float = 0.0
    unsubscribe_scale: float = 1.0

    def rate_factors(
        self,
        *,
        sensitivity: np.ndarray,
        engagement: np.ndarray,
        opt_in: np.ndarray,
        b: Behaviour = BEHAVIOUR,
    ) -> np.ndarray:
        """Each customer's purchase-rate multiplier from the shift day on."""
        factor = np.where(sensitivity >= self.sensitivity_threshold, self.rate_factor, 1.0)
        if self.engagement_on_rate:
            g, a = self.engagement_on_rate, b.engagement_on_rate
            factor = factor * np.where(opt_in, np.exp(-g * (engagement + g / 2 - a)), 1.0)
        return factor

    def campaign_days(self, calendar: Calendar) -> np.ndarray:
        """The campaign days of the new email programme (none without one)."""
        if self.campaign_every_days is None or calendar.shift_day is None:
            return np.zeros(0, dtype=np.int64)
        return np.arange(calendar.shift_day, calendar.days, self.campaign_every_days)


SHIFTS = {
    # Opens tracked by a privacy proxy for every customer: email features move, purchases not.
    "email_tracking": Shift(auto_open_share=1.0),
    # A platform migration: prices up 40 %, the price-sensitive half buys 80 % less, and the new
    # email platform records every delivered email as opened.
    "migration": Shift(price_factor=1.4, rate_factor=0.2, auto_open_share=1.0),
    # Prices up 40 %: the price-sensitive half buys 40 % less.
    "price_rise": Shift(price_factor=1.4, rate_factor=0.6),
    # A permanent 30 % price cut: the price-sensitive half buys four times as often.
    "price_cut": Shift(price_factor=0.7, rate_factor=4.0),
    # A campaign every 2 days to every opted-in customer: each email opened and clicked less,
    # twice the unsubscribes; purchases move from the engaged to the disengaged opted-in ones.
    "email_fatigue": Shift(
        engagement_on_rate=1.0,
        campaign_every_days=2,
        open_logit=-1.0,
        click_logit=-0.5,
        unsubscribe_scale=2.0,
    ),
}
SHIFT_KINDS = tuple(SHIFTS)


def observable_follows(shift: Shift) -> bool:
    """Whether the observable oracle (`_posterior`) models this kind after the shift: rate
    factors of the engagement and a new email programme yes; the price-sensitive half's rate
    factor (the sensitivity is only integrated for treated customers) and recorded opens no."""
    return shift.rate_factor == 1.0 and shift.auto_open_share == 0.0


#: Spawn key prefix of the shift's own random streams (one per chunk); the chunks' own streams
#: are children (i,) of the seed, so two-element keys never collide with them.
SHIFT_STREAM_KEY = 5817
COUNTRIES = np.array(["GB", "DE", "FR", "NL", "IE", "ES", "IT", "SE"], dtype=object)
COUNTRY_P = np.array([0.42, 0.16, 0.13, 0.08, 0.06, 0.06, 0.05, 0.04])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _timestamps(epoch_us: int, seconds: np.ndarray) -> pa.Array:
    return pa.array(epoch_us + seconds.astype(np.int64) * 1_000_000, pa.timestamp("us"))


def _seconds(day: np.ndarray, frac: np.ndarray) -> np.ndarray:
    return day.astype(np.int64) * SECONDS_PER_DAY + np.floor(frac * SECONDS_PER_DAY).astype(
        np.int64
    )


@dataclass
class Customers:
    """Latent and observed traits of one chunk of customers (arrays of length n)."""

    customer_id: np.ndarray
    created_sec: np.ndarray  # seconds since the history start (negative: before the history)
    death: np.ndarray  # latent death time in days since the history start
    rate: np.ndarray
    engagement: np.ndarray
    is_vip: np.ndarray
    items_mu: np.ndarray
    affinity: np.ndarray  # (n, n_categories), rows sum to 1
    email_opt_in: np.ndarray
    return_p: np.ndarray
    price_sensitivity: np.ndarray
    country: np.ndarray
    welcome: np.ndarray
    in_experiment: np.ndarray
    arm: np.ndarray  # index into ARMS; -1 when not in the experiment
    factor: np.ndarray  # purchase-rate multiplier during the experiment window (1 if none)
    #: purchase-rate multiplier from the shift day on (all 1 when the calendar has no shift)
    shift_factor: np.ndarray | None = None

    @property
    def created_day(self) -> np.ndarray:
        return np.floor_divide(self.created_sec, SECONDS_PER_DAY)

    @property
    def created(self) -> np.ndarray:
        return self.created_sec / SECONDS_PER_DAY


def draw_customers(
    rng: np.random.Generator,
    *,
    first_id: int,
    n: int,
    calendar: Calendar,
    catalog: Catalog,
    last_customer_on_last_day: bool,
    b: Behaviour = BEHAVIOUR,
) -> Customers:
    days = calendar.days
    z = rng.standard_normal(n)
    # Acquisition: some before the history, the rest with a linearly rising density inside it.
    u = rng.random(n)
    g = b.acquisition_growth
    inside = days * (np.sqrt(1.0 + 2.0 * g * u * (1.0 + g / 2.0)) - 1.0) / g
    before = -b.created_before_span_days * u
    created = np.where(rng.random(n) < b.created_before_share, before, inside)
    welcome = (rng.random(n) < b.welcome_share) & (created >= 0)
    if last_customer_on_last_day:
        # Guarantees an order on the last day, so dbt's default scoring cutoff ("day after the
        # last order") is `end_date`. Its welcome purchase precedes every cutoff it is scored at.
        created[-1] = days - 1 + 0.4
        welcome[-1] = True
    created_sec = np.floor(created * SECONDS_PER_DAY).astype(np.int64)
    is_vip = rng.random(n) < b.vip_share
    rate = (
        rng.gamma(b.rate_shape, b.mean_rate / b.rate_shape, n)
        * np.exp(b.engagement_on_rate * z - b.engagement_on_rate**2 / 2)
        * np.where(is_vip, b.vip_rate, 1.0)
    )
    short = rng.random(n) < b.short_life_share
    life = np.where(
        short,
        rng.exponential(b.short_life_days, n),
        rng.exponential(b.long_life_days, n) * np.exp(0.3 * z),
    )
    death = created_sec / SECONDS_PER_DAY + life
    alpha = b.affinity_concentration * catalog.category_popularity
    affinity = rng.gamma(alpha[None, :], 1.0, (n, len(alpha))) + 1e-12
    affinity /= affinity.sum(axis=1, keepdims=True)
    opt_in = rng.random(n) < _sigmoid(b.opt_in_logit + 0.6 * z)
    return_p = rng.beta(b.return_alpha, b.return_beta, n)
    sensitivity = np.clip(0.55 + 0.45 * rng.standard_normal(n) - 0.4 * is_vip - 0.15 * z, 0.0, None)
    country = COUNTRIES[rng.choice(len(COUNTRIES), size=n, p=COUNTRY_P)]
    in_exp = (created_sec < calendar.experiment_day * SECONDS_PER_DAY) & (
        rng.random(n) < b.experiment_share
    )
    arm = np.where(in_exp, rng.integers(0, len(ARMS), n), -1)
    uplift = np.asarray(b.arm_uplift)[np.maximum(arm, 0)]
    factor = np.where(in_exp, 1.0 + sensitivity * uplift, 1.0)
    shift_factor = None
    if calendar.shift_kind is not None:
        shift_factor = SHIFTS[calendar.shift_kind].rate_factors(
            sensitivity=sensitivity, engagement=z, opt_in=opt_in, b=b
        )
    return Customers(
        customer_id=np.arange(first_id, first_id + n, dtype=np.int64),
        created_sec=created_sec,
        death=death,
        rate=rate,
        engagement=z,
        is_vip=is_vip,
        items_mu=np.where(is_vip, b.vip_items_mu, b.items_mu),
        affinity=affinity,
        email_opt_in=opt_in,
        return_p=return_p,
        price_sensitivity=sensitivity,
        country=country,
        welcome=welcome,
        in_experiment=in_exp,
        arm=arm,
        factor=factor,
        shift_factor=shift_factor,
    )


def shifted_integral(
    cal: Calendar, shift_factor: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float
) -> np.ndarray:
    """Integral of s(t) * r(t) over [lo, hi) (0 where hi <= lo), r the shift's rate factor
    (`shift_factor` from the shift day on, 1 before it; 1 throughout without a shift)."""
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    base = cal.integral(hi) - cal.integral(lo)
    if cal.shift_day is not None:
        after = cal.integral(hi) - cal.integral(np.maximum(lo, float(cal.shift_day)))
        base = base + (shift_factor - 1.0) * np.maximum(after, 0.0)
    return np.where(hi > lo, base, 0.0)


def window_integral(
    cal: Calendar, c: Customers, lo: np.ndarray | float, hi: np.ndarray
) -> np.ndarray:
    """Integral of s(t) * m_c(t) over [lo, hi) per customer (0 where hi <= lo).

    m_c is the experiment multiplier times the shift's rate factor; both are piecewise constant,
    so the integral is the shift-weighted one plus (factor - 1) times the shift-weighted integral
    over the experiment window's overlap.
    """
    lo = np.broadcast_to(np.asarray(lo, dtype=float), hi.shape)
    if cal.shift_day is not None:
        a, e = float(cal.experiment_day), float(cal.experiment_end_day)
        overlap = shifted_integral(cal, c.shift_factor, np.maximum(lo, a), np.minimum(hi, e))
        total = shifted_integral(cal, c.shift_factor, lo, hi) + (c.factor - 1.0) * overlap
        return np.where(hi > lo, np.maximum(total, 0.0), 0.0)
    base = cal.integral(hi) - cal.integral(lo)
    a, e = float(cal.experiment_day), float(cal.experiment_end_day)
    overlap = cal.integral(np.minimum(hi, e)) - cal.integral(np.maximum(lo, a))
    total = base + (c.factor - 1.0) * np.maximum(overlap, 0.0)
    return np.where(hi > lo, np.maximum(total, 0.0), 0.0)


# ------------------------------------------------------------------------------------- orders


@dataclass
class Orders:
    order_id: np.ndarray
    customer_id: np.ndarray
    seconds: np.ndarray
    line_order_id: np.ndarray
    line_product: np.ndarray
    line_quantity: np.ndarray
    line_price: np.ndarray
    n_purchases: int
    n_returns: int
    n_ids: int  # order ids used: first_order_id + n_ids is the next free one


def _keep_after_shift(
    shift_rng: np.random.Generator | None,
    c: Customers,
    *,
    calendar: Calendar,
    cust: np.ndarray,
    sec: np.ndarray,
) -> np.ndarray:
    """Which Poisson purchases survive the shift's thinning (all without a shift)."""
    if calendar.shift_day is None:
        return np.ones(len(cust), dtype=bool)
    if shift_rng is None:
        raise ValueError("a calendar with a shift needs the shift's own random generator")
    u = shift_rng.random(len(cust))
    return (sec < calendar.shift_day * SECONDS_PER_DAY) | (
        u < np.minimum(c.shift_factor[cust], 1.0)
    )


def simulate_orders(
    rng: np.random.Generator,
    c: Customers,
    *,
    calendar: Calendar,
    catalog: Catalog,
    first_order_id: int,
    shift_rng: np.random.Generator | None = None,
    price_factor: float = 1.0,
    extra_first_order_id: int | None = None,
) -> Orders:
    """Purchases, lines and returns of one chunk.

    With a shift (calendar.shift_day), every draw from `rng` is the same as without it: the
    purchases are simulated as without the shift, then those at or after the shift day are
    thinned with `shift_rng` and their prices raised (see `PriceRise`). Dropped purchases take
    their lines and returns with them, and their order ids stay unused, so every order before
    the shift keeps its id. Extra purchases (rate factors above 1) are simulated with
    `shift_rng` as a second process from the shift day, with ids from `extra_first_order_id`
    (default: right after the chunk's own, counted in `n_ids`; the generator gives them
    provisional ids instead and renumbers them after every chunk's, so that no order id of a
    later chunk moves either: `n_ids` then counts the chunk's own process only).
    `price_factor` multiplies every list price (the extra process's price after the shift).
    """
    cal = calendar
    n = len(c.rate)
    days = float(cal.days)
    a_exp, e_exp = float(cal.experiment_day), float(cal.experiment_end_day)
    alive_lo = np.maximum(c.created, 0.0)
    alive_hi = np.minimum(c.death, days)
    # Three segments per customer: before, during and after the experiment window.
    lo = np.stack([alive_lo, np.maximum(alive_lo, a_exp), np.maximum(alive_lo, e_exp)], axis=1)
    hi = np.stack([np.minimum(alive_hi, a_exp), np.minimum(alive_hi, e_exp), alive_hi], axis=1)
    hi = np.maximum(hi, lo)
    mult = np.stack([np.ones(n), c.factor, np.ones(n)], axis=1)
    l_lo, l_hi = cal.integral(lo), cal.integral(hi)
    counts = rng.poisson(c.rate[:, None] * mult * (l_hi - l_lo)).ravel()
    seg = np.repeat(np.arange(3 * n), counts)
    cust = seg // 3
    u = np.repeat(l_lo.ravel(), counts) + rng.random(len(seg)) * np.repeat(
        (l_hi - l_lo).ravel(), counts
    )
    day, frac = cal.invert(u)
    # Place orders within their day by the hourly profile, unless that leaves the segment.
    frac2 = time_of_day(frac)
    t2 = day + frac2
    ok = (t2 >= np.repeat(lo.ravel(), counts)) & (t2 < np.repeat(hi.ravel(), counts))
    frac = np.where(ok, frac2, frac)
    sec = np.maximum(_seconds(day, frac), c.created_sec[cust])
    discount = np.where((seg % 3 == 1) & (c.arm[cust] > 0), c.arm[cust], 0)
    keep = _keep_after_shift(shift_rng, c, calendar=cal, cust=cust, sec=sec)
    # Welcome purchases at the exact second of sign-up.
    w = np.flatnonzero(c.welcome)
    cust = np.concatenate([cust, w])
    sec = np.concatenate([sec, c.created_sec[w]])
    in_exp_window = (c.created_sec[w] >= a_exp * SECONDS_PER_DAY) & (
        c.created_sec[w] < e_exp * SECONDS_PER_DAY
    )
    discount = np.concatenate([discount, np.where(in_exp_window & (c.arm[w] > 0), c.arm[w], 0)])
    keep = np.concatenate([keep, np.ones(len(w), dtype=bool)])
    m = len(cust)
    discount_pct = np.array([0.0, 20.0, 25.0])[discount]
    line_factor = None
    if cal.shift_day is not None:
        after = sec >= cal.shift_day * SECONDS_PER_DAY
        line_factor = np.where(after, SHIFTS[cal.shift_kind].price_factor, 1.0)
    elif price_factor != 1.0:
        line_factor = np.full(m, price_factor)

    # Items: 1 + Poisson(mu) per purchase; category by affinity, product by popularity.
    n_items = 1 + rng.poisson(c.items_mu[cust])
    item_order = np.repeat(np.arange(m), n_items)
    item_cust = cust[item_order]
    k = c.affinity.shape[1]
    aff_cum = np.cumsum(c.affinity, axis=1)
    aff_cum[:, -1] = 1.0
    flat = (np.arange(n)[:, None] + aff_cum).ravel()
    pos = np.searchsorted(flat, item_cust + rng.random(len(item_order)), side="right")
    category = np.clip(pos - item_cust * k, 0, k - 1)
    product = np.searchsorted(
        catalog.category_cum, category + rng.random(len(item_order)), side="right"
    )
    product = np.minimum(product, catalog.n_products - 1)
    quantity = 1 + rng.poisson(np.where(c.is_vip[item_cust], VIP_QUANTITY_MU, QUANTITY_MU))
    # One line per (order, product): duplicates within an order are merged.
    key, inverse = np.unique(item_order * catalog.n_products + product, return_inverse=True)
    line_qty = np.bincount(inverse, weights=quantity).astype(np.int64)
    line_order = key // catalog.n_products
    line_product = key % catalog.n_products
    list_price = catalog.price[line_product]
    if line_factor is not None:
        list_price = list_price * line_factor[line_order]  # x 1.0 is exact before the shift
    line_price = np.round(list_price * (1.0 - discount_pct[line_order] / 100), 2)

    # Returns: a separate order some days later, returning part of the purchase.
    returned = rng.random(m) < c.return_p[cust]
    ret_sec = sec + np.floor((2.0 + rng.exponential(9.0, m)) * SECONDS_PER_DAY).astype(np.int64)
    returned &= ret_sec < cal.days * SECONDS_PER_DAY
    ret_orders = np.flatnonzero(returned)
    ret_index = np.full(m, -1)
    ret_index[ret_orders] = np.arange(len(ret_orders))
    pick = returned[line_order] & (rng.random(len(line_order)) < 0.7)
    first = np.r_[True, line_order[1:] != line_order[:-1]]
    has_pick = np.bincount(line_order[pick], minlength=m) > 0
    pick |= first & returned[line_order] & ~has_pick[line_order]
    r_lines = np.flatnonzero(pick)
    r_qty = -(1 + np.floor(rng.random(len(r_lines)) * line_qty[r_lines]).astype(np.int64))

    # Order ids: sorted by customer, then time (returns sort after their purchase).
    all_cust = np.concatenate([cust, cust[ret_orders]])
    all_sec = np.concatenate([sec, ret_sec[ret_orders]])
    order = np.lexsort((all_sec, all_cust))
    ids = np.empty(len(order), dtype=np.int64)
    ids[order] = first_order_id + np.arange(len(order))
    line_ids = np.concatenate([ids[line_order], ids[m + ret_index[line_order[r_lines]]]])
    lsort = np.argsort(line_ids, kind="stable")
    n_ids = len(order)
    if not keep.all():
        # Only with a shift: drop thinned purchases with their lines and returns.
        order = order[np.concatenate([keep, keep[ret_orders]])[order]]
        line_keep = np.concatenate([keep[line_order], keep[line_order[r_lines]]])
        lsort = lsort[line_keep[lsort]]
    orders = Orders(
        order_id=ids[order],
        customer_id=c.customer_id[all_cust[order]],
        seconds=all_sec[order],
        line_order_id=line_ids[lsort],
        line_product=np.concatenate([line_product, line_product[r_lines]])[lsort],
        line_quantity=np.concatenate([line_qty, r_qty])[lsort],
        line_price=np.concatenate([line_price, line_price[r_lines]])[lsort],
        n_purchases=int(keep.sum()),
        n_returns=int(keep[ret_orders].sum()),
        n_ids=n_ids,
    )
    if cal.shift_day is not None and (c.shift_factor > 1.0).any():
        if extra_first_order_id is None:  # the ids after the chunk's own
            extra = _extra_orders(shift_rng, c, cal, catalog, first_order_id + n_ids)
            return _concat_orders(orders, extra)
        extra = _extra_orders(shift_rng, c, cal, catalog, extra_first_order_id)
        return replace(_concat_orders(orders, extra), n_ids=n_ids)
    return orders


def _extra_orders(
    shift_rng: np.random.Generator,
    c: Customers,
    cal: Calendar,
    catalog: Catalog,
    first_order_id: int,
) -> Orders:
    """The added process of a shift with rate factors above 1: rate (factor - 1) x rate from
    the shift day, no welcome purchases, the shift's prices."""
    shift_sec = cal.shift_day * SECONDS_PER_DAY
    extra = replace(
        c,
        rate=c.rate * np.maximum(c.shift_factor - 1.0, 0.0),
        created_sec=np.maximum(c.created_sec, shift_sec),
        welcome=np.zeros(len(c.rate), dtype=bool),
    )
    return simulate_orders(
        shift_rng,
        extra,
        calendar=replace(cal, shift_day=None, shift_kind=None),
        catalog=catalog,
        first_order_id=first_order_id,
        price_factor=SHIFTS[cal.shift_kind].price_factor,
    )


def _concat_orders(a: Orders, b: Orders) -> Orders:
    """Orders of two processes whose ids do not overlap (all of b's after a's)."""
    cat = np.concatenate
    return Orders(
        order_id=cat([a.order_id, b.order_id]),
        customer_id=cat([a.customer_id, b.customer_id]),
        seconds=cat([a.seconds, b.seconds]),
        line_order_id=cat([a.line_order_id, b.line_order_id]),
        line_product=cat([a.line_product, b.line_product]),
        line_quantity=cat([a.line_quantity, b.line_quantity]),
        line_price=cat([a.line_price, b.line_price]),
        n_purchases=a.n_purchases + b.n_purchases,
        n_returns=a.n_returns + b.n_returns,
        n_ids=a.n_ids + b.n_ids,
    )


# -------------------------------------------------------------------------------------- email


def simulate_emails(
    rng: np.random.Generator,
    c: Customers,
    *,
    calendar: Calendar,
    b: Behaviour = BEHAVIOUR,
    shift_rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Campaign sends to opted-in customers and the funnel they trigger.

    A shift with `auto_open_share` adds recorded opens after the shift day (drawn from
    `shift_rng`); every draw from `rng` is the same as without it. A shift with a new email
    programme (`campaign_every_days`) drops the weekly campaigns from the shift day on (the
    events of earlier campaigns stay, even an open after the shift) and draws the campaigns of
    the new programme with `shift_rng`, to the customers who have not unsubscribed before.

    Returns customer index, campaign index, event type index (into EVENT_TYPES) and seconds.
    Campaign indices point into ``calendar.campaign_days`` followed by the shift's
    ``campaign_days(calendar)``.
    """
    cal = calendar
    n = len(c.rate)
    base_sec = cal.campaign_days * SECONDS_PER_DAY + 9 * 3600
    eligible = (
        c.email_opt_in[:, None]
        & (c.created_sec[:, None] < base_sec[None, :])
        & (rng.random((n, len(base_sec)), dtype=np.float32) < b.campaign_audience)
    )
    ci, cj = np.nonzero(eligible)
    del eligible
    send = base_sec[cj] + rng.integers(0, 3 * 3600, len(ci))
    bad = rng.random(n) < b.bad_email_share
    shift = None if cal.shift_kind is None else SHIFTS[cal.shift_kind]
    proxy = None
    if shift is not None and shift.auto_open_share > 0:
        if shift_rng is None:
            raise ValueError("a calendar with a shift needs the shift's own random generator")
        proxy = shift_rng.random(n) < shift.auto_open_share
    events = _email_funnel(rng, c, ci, cj, send, bad=bad, proxy=proxy, calendar=cal, b=b)
    if shift is None or shift.campaign_every_days is None:
        return events
    if shift_rng is None:
        raise ValueError("a calendar with a shift needs the shift's own random generator")
    cust, camp, etype, sec = events
    kept = cal.campaign_days[camp] < cal.shift_day
    cust, camp, etype, sec = cust[kept], camp[kept], etype[kept], sec[kept]
    unsubscribed = np.zeros(n, dtype=bool)
    unsubscribed[cust[etype == EVENT_TYPES.index("unsubscribe")]] = True
    base_sec = shift.campaign_days(cal) * SECONDS_PER_DAY + 9 * 3600
    eligible = (
        (c.email_opt_in & ~unsubscribed)[:, None]
        & (c.created_sec[:, None] < base_sec[None, :])
        & (shift_rng.random((n, len(base_sec)), dtype=np.float32) < shift.campaign_audience)
    )
    ci, cj = np.nonzero(eligible)
    del eligible
    send = base_sec[cj] + shift_rng.integers(0, 3 * 3600, len(ci))
    new = _email_funnel(
        shift_rng,
        c,
        ci,
        cj + len(cal.campaign_days),
        send,
        bad=bad,
        proxy=proxy,
        calendar=cal,
        b=b,
        open_logit=shift.open_logit,
        click_logit=shift.click_logit,
        unsubscribe_scale=shift.unsubscribe_scale,
    )
    cust, camp, etype, sec = (
        np.concatenate(pair) for pair in zip((cust, camp, etype, sec), new, strict=True)
    )
    order = np.lexsort((etype, sec, cust))
    return cust[order], camp[order], etype[order], sec[order]


def _email_funnel(
    rng: np.random.Generator,
    c: Customers,
    ci: np.ndarray,
    cj: np.ndarray,
    send: np.ndarray,
    *,
    bad: np.ndarray,
    proxy: np.ndarray | None,
    calendar: Calendar,
    b: Behaviour,
    open_logit: float = 0.0,
    click_logit: float = 0.0,
    unsubscribe_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Events of the sends (customer ci, campaign cj at second `send`, sorted by customer then
    campaign): bounce, open, click, unsubscribe; sends stop after a customer's first
    unsubscribe. `proxy` (per customer): every delivered email from the shift day on is recorded
    as opened. The logit offsets and the unsubscribe scale are those of a new email programme."""
    cal = calendar
    s = len(ci)
    alive = c.death[ci] * SECONDS_PER_DAY > send
    activity = np.clip(np.log(c.rate[ci] / b.mean_rate), -3.0, 3.0)
    z = c.engagement[ci]
    bounce = rng.random(s) < np.where(bad[ci], 0.5, 0.002)
    opened = ~bounce & (
        rng.random(s) < _sigmoid(-2.0 + open_logit + 0.7 * z + 0.3 * activity + 1.3 * alive)
    )
    clicked = opened & (
        rng.random(s) < _sigmoid(-2.4 + click_logit + 0.5 * z + 0.3 * activity + 0.6 * alive)
    )
    unsub = ~bounce & (
        rng.random(s)
        < np.where(opened & ~clicked, 0.008, 0.002) * unsubscribe_scale + 0.003 * ~alive
    )
    # Sends stop after a customer's first unsubscribe.
    row_first = np.r_[True, ci[1:] != ci[:-1]] if s else np.zeros(0, dtype=bool)
    before = np.cumsum(unsub) - unsub
    row_id = np.cumsum(row_first) - 1
    keep = (before - before[np.flatnonzero(row_first)][row_id]) == 0
    open_sec = send + np.floor(rng.exponential(6 * 3600, s)).astype(np.int64) + 30
    click_sec = open_sec + np.floor(rng.exponential(15 * 60, s)).astype(np.int64) + 5
    unsub_sec = (
        np.where(opened, open_sec, send)
        + np.floor(rng.exponential(4 * 3600, s)).astype(np.int64)
        + 10
    )
    bounce_sec = send + rng.integers(1, 120, s)
    recorded_open = opened
    if proxy is not None:
        after = send >= cal.shift_day * SECONDS_PER_DAY
        recorded_open = opened | (proxy[ci] & after & ~bounce)
    parts = [
        (keep, send, 0),
        (keep & recorded_open, open_sec, 1),
        (keep & clicked, click_sec, 2),
        (keep & unsub, unsub_sec, 3),
        (keep & bounce, bounce_sec, 4),
    ]
    cust = np.concatenate([ci[m] for m, _, _ in parts])
    camp = np.concatenate([cj[m] for m, _, _ in parts])
    etype = np.concatenate([np.full(int(m.sum()), t, dtype=np.int8) for m, _, t in parts])
    sec = np.concatenate([t[m] for m, t, _ in parts])
    inside = sec < cal.days * SECONDS_PER_DAY
    cust, camp, etype, sec = cust[inside], camp[inside], etype[inside], sec[inside]
    order = np.lexsort((etype, sec, cust))
    return cust[order], camp[order], etype[order], sec[order]


# ------------------------------------------------------------------------------------- oracle


def group_hit_probability(c: Customers, *, catalog: Catalog) -> np.ndarray:
    """q[c, g]: probability that one purchase of customer c contains a product of group g.

    With pi the chance that one item falls in g and 1 + Poisson(mu) items,
    q = 1 - (1 - pi) * exp(-mu * pi); for `any`, pi = 1 and q = 1.
    """
    pi = np.clip(c.affinity @ catalog.category_group_share, 0.0, 1.0)
    return 1.0 - (1.0 - pi) * np.exp(-c.items_mu[:, None] * pi)


def oracle_probabilities(
    c: Customers, *, calendar: Calendar, q: np.ndarray, cutoff_day: int
) -> tuple[np.ndarray, np.ndarray]:
    """P(at least one purchase with a group-G item in [T, T + horizon)) given the latent state.

    Purchases in the window are Poisson with mean rate * integral of s * m over
    [T, min(T + horizon, death)); thinning by q (see `group_hit_probability`) gives
    P = 1 - exp(-q * rate * integral). Returns (mask of customers created before T, (n, groups)).
    """
    exists = c.created_day < cutoff_day
    hi = np.minimum(float(cutoff_day + HORIZON_DAYS), c.death)
    integral = window_integral(calendar, c, float(cutoff_day), hi)
    prob = -np.expm1(-q * (c.rate * integral)[:, None])
    return exists, prob


def purchase_value(
    c: Customers, *, catalog: Catalog, price_factor: float = 1.0, discount_pct: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Expected list value and expected amount paid of one purchase, per customer of `c`.

    A purchase has 1 + Poisson(items_mu) items; each item's category is drawn from the
    customer's affinities, its product from the category's popularity
    (`Catalog.product_probability`), its quantity is 1 + Poisson(`QUANTITY_MU`, or
    `VIP_QUANTITY_MU` for VIPs), independently of the product (duplicate products of a purchase
    are merged into one line, which keeps the total). Hence, exactly,

        E[value] = (1 + items_mu) x (1 + quantity mu) x sum_k affinity_k x E[price | category k]

    with price = list price x `price_factor` for the list value, and that times
    (1 - discount_pct / 100) rounded to the cent (as `simulate_orders` rounds each line's unit
    price) for the amount paid.
    """
    per_purchase = (1.0 + c.items_mu) * (1.0 + np.where(c.is_vip, VIP_QUANTITY_MU, QUANTITY_MU))
    list_price = catalog.price * price_factor
    paid_price = np.round(list_price * (1.0 - discount_pct / 100), 2)
    list_value = per_purchase * (c.affinity @ catalog.category_mean_price(list_price))
    paid_value = per_purchase * (c.affinity @ catalog.category_mean_price(paid_price))
    return list_value, paid_value


def _price_parts(
    cal: Calendar, c: Customers, idx: np.ndarray, lo: float, hi: np.ndarray
) -> list[tuple[np.ndarray, float]]:
    """Poisson means of the purchases of customers `idx` over [lo, hi) without any arm
    multiplier, split at the shift day, each with the price factor of its lines."""
    if cal.shift_day is None:
        return [(c.rate[idx] * shifted_integral(cal, np.ones(len(idx)), lo, hi), 1.0)]
    day = float(cal.shift_day)
    sf = c.shift_factor[idx]
    return [
        (c.rate[idx] * shifted_integral(cal, sf, lo, np.minimum(hi, day)), 1.0),
        (
            c.rate[idx] * shifted_integral(cal, sf, np.maximum(lo, day), hi),
            SHIFTS[cal.shift_kind].price_factor,
        ),
    ]


def _money(
    c: Customers,
    idx: np.ndarray,
    parts: list[tuple[np.ndarray, float]],
    *,
    catalog: Catalog,
    discount_pct: float,
    b: Behaviour,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected revenue (amount paid) and margin of the purchases of the Poisson means `parts`
    at discount `discount_pct` (before any arm multiplier of the rate): margin = amount paid -
    (1 - margin_rate) x list value, i.e. list value x (margin_rate - d) up to cent rounding."""
    revenue = np.zeros(len(idx))
    list_value = np.zeros(len(idx))
    for mean, price_factor in parts:
        lv, paid = purchase_value(
            c, catalog=catalog, price_factor=price_factor, discount_pct=discount_pct
        )
        revenue += mean * paid[idx]
        list_value += mean * lv[idx]
    return revenue, revenue - (1.0 - b.margin_rate) * list_value


def treatment_effects(
    c: Customers, *, calendar: Calendar, catalog: Catalog, b: Behaviour = BEHAVIOUR
) -> dict:
    """True P(any purchase in the experiment window), and the expected revenue (amount paid)
    and margin of the purchases in it, under arm 0 and each treated arm."""
    idx = np.flatnonzero(c.in_experiment)
    a = float(calendar.experiment_day)
    hi = np.minimum(float(calendar.experiment_end_day), c.death[idx])
    base_integral = np.where(hi > a, calendar.integral(hi) - calendar.integral(a), 0.0)
    if calendar.shift_day is not None:
        # The arm's multiplier is constant over the window: treated mean = factor x base mean.
        base_integral = shifted_integral(calendar, c.shift_factor[idx], a, hi)
    base_mean = c.rate[idx] * base_integral
    baseline = -np.expm1(-base_mean)
    parts = _price_parts(calendar, c, idx, a, hi)
    base_revenue, base_margin = _money(c, idx, parts, catalog=catalog, discount_pct=0.0, b=b)
    out: dict[str, list[np.ndarray]] = {
        "customer": [],
        "arm": [],
        "baseline": [],
        "treated": [],
        "baseline_revenue": [],
        "treated_revenue": [],
        "baseline_margin": [],
        "treated_margin": [],
    }
    for arm_index in range(1, len(ARMS)):
        factor = 1.0 + c.price_sensitivity[idx] * b.arm_uplift[arm_index]
        treated = -np.expm1(-base_mean * factor)
        revenue, margin = _money(
            c, idx, parts, catalog=catalog, discount_pct=float(ARMS[arm_index]), b=b
        )
        out["customer"].append(idx)
        out["arm"].append(np.full(len(idx), arm_index))
        out["baseline"].append(baseline)
        out["treated"].append(treated)
        out["baseline_revenue"].append(base_revenue)
        out["treated_revenue"].append(factor * revenue)
        out["baseline_margin"].append(base_margin)
        out["treated_margin"].append(factor * margin)
    return {key: np.concatenate(v) for key, v in out.items()}


def offer_effects(
    c: Customers, *, calendar: Calendar, catalog: Catalog, b: Behaviour = BEHAVIOUR
) -> dict[str, np.ndarray]:
    """True effects of a discount offer with the experiment's arms, made at the scoring cutoff
    T (`Calendar.scoring_cutoff_day`) for `HORIZON_DAYS` days, for every customer created
    before T.

    Arm a multiplies the purchase rate over [T, T + horizon) by 1 + price_sensitivity x
    `arm_uplift[a]` and prices every line at list x (1 - discount), as the experiment did.
    Purchases in the window are Poisson with mean rate x factor x the integral of s(t) (times
    the shift's rate factor from the shift day on) over [T, min(T + horizon, death)), as
    `oracle_probabilities` integrates it (the experiment window ended before T), so under arm 0
    `p_purchase` is the oracle probability of group `any` at T. Money per purchase:
    `purchase_value` (the shift's price factor after a shift day); returns are ignored.

    Returns arrays of equal length, customer-major (each customer's arms '0', '20', '25' in a
    row): customer (index into `c`), arm (index into ARMS), discount_pct, p_purchase,
    expected_orders, expected_revenue, expected_margin and the effects p_purchase_effect,
    revenue_effect, margin_effect against arm '0' (exactly 0 for arm '0').
    """
    cal = calendar
    t = cal.scoring_cutoff_day
    idx = np.flatnonzero(c.created_day < t)
    hi = np.minimum(float(t + HORIZON_DAYS), c.death)
    base_mean = (c.rate * window_integral(cal, c, float(t), hi))[idx]
    parts = _price_parts(cal, c, idx, float(t), hi[idx])
    n_arms = len(ARMS)
    shape = (len(idx), n_arms)
    orders, revenue, margin = np.empty(shape), np.empty(shape), np.empty(shape)
    for arm_index, arm in enumerate(ARMS):
        factor = 1.0 + c.price_sensitivity[idx] * b.arm_uplift[arm_index]
        rev, mar = _money(c, idx, parts, catalog=catalog, discount_pct=float(arm), b=b)
        orders[:, arm_index] = factor * base_mean
        revenue[:, arm_index] = factor * rev
        margin[:, arm_index] = factor * mar
    p = -np.expm1(-orders)
    return {
        "customer": np.repeat(idx, n_arms),
        "arm": np.tile(np.arange(n_arms), len(idx)),
        "discount_pct": np.tile(np.array([float(a) for a in ARMS]), len(idx)),
        "p_purchase": p.ravel(),
        "expected_orders": orders.ravel(),
        "expected_revenue": revenue.ravel(),
        "expected_margin": margin.ravel(),
        "p_purchase_effect": (p - p[:, :1]).ravel(),
        "revenue_effect": (revenue - revenue[:, :1]).ravel(),
        "margin_effect": (margin - margin[:, :1]).ravel(),
    }


# ------------------------------------------------------------------------------- arrow output


def customers_table(c: Customers, epoch_us: int) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(c.customer_id, pa.int64()),
            "created_at": _timestamps(epoch_us, c.created_sec),
            "country": pa.array(c.country.tolist(), pa.string()),
            "email_opt_in": pa.array(c.email_opt_in),
            "is_vip": pa.array(c.is_vip),
        }
    )


def date32(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days
