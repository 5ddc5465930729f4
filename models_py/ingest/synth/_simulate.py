"""Simulate one chunk of customers: latent traits, purchases, returns, email events, the discount
experiment and the exact oracle probabilities. Everything is vectorised with numpy; a chunk's
random numbers come from its own generator, so results depend only on the seed and the chunking.

The model (see the package docstring for the full description):

- a customer exists from `created_at` and is alive until a latent death time (churn);
- while alive and inside the history, purchases form a Poisson process with intensity
  ``rate * s(t) * m(t)``: `rate` is gamma-distributed (higher for VIPs and engaged customers),
  s(t) the seasonal calendar, m(t) the discount-experiment multiplier (1 outside the experiment);
- customers acquired during the history may place a "welcome" purchase at the exact second
  they are created (it is before every cutoff they are scored at, so no oracle window sees it);
- a purchase has 1 + Poisson(mu) items, each drawn from the customer's category affinities
  (Dirichlet) and then from the category's product popularity.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from models_py.ingest.synth._calendar import HORIZON_DAYS, SECONDS_PER_DAY, Calendar, time_of_day
from models_py.ingest.synth._catalog import Catalog

if TYPE_CHECKING:
    from models_py.ingest.synth._shift import RegimeShift

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


BEHAVIOUR = Behaviour()
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
    )


def window_integral(
    cal: Calendar, c: Customers, lo: np.ndarray | float, hi: np.ndarray
) -> np.ndarray:
    """Integral of s(t) * m_c(t) over [lo, hi) per customer (0 where hi <= lo)."""
    lo = np.broadcast_to(np.asarray(lo, dtype=float), hi.shape)
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
    ids_used: int  # order ids first_order_id .. first_order_id + ids_used - 1 are taken

    @classmethod
    def concat(cls, a: Orders, b: Orders) -> Orders:
        """The orders of both (ids as they are); `ids_used` is that of `a`."""
        arrays = {
            name: np.concatenate([getattr(a, name), getattr(b, name)])
            for name in (
                "order_id",
                "customer_id",
                "seconds",
                "line_order_id",
                "line_product",
                "line_quantity",
                "line_price",
            )
        }
        return cls(
            **arrays,
            n_purchases=a.n_purchases + b.n_purchases,
            n_returns=a.n_returns + b.n_returns,
            ids_used=a.ids_used,
        )


def simulate_orders(
    rng: np.random.Generator,
    c: Customers,
    *,
    calendar: Calendar,
    catalog: Catalog,
    first_order_id: int,
    shift: RegimeShift | None = None,
    shift_rng: np.random.Generator | None = None,
    shift_first_order_id: int = 0,
) -> Orders:
    """Purchases (Poisson process while alive, welcome purchases) and their returns.

    With a `shift`, the unshifted process is simulated first with `rng` (the same random numbers
    as without a shift), its Poisson purchases at or after the shift are dropped with their
    returns, and the purchases of the new regime from the shift on are drawn with `shift_rng`
    (ids from `shift_first_order_id`). Welcome purchases are kept: the shift does not change
    them. `ids_used` counts the ids of the unshifted simulation, dropped ones included, so the
    next chunk's ids do not depend on the shift.
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
    orders = _purchases(
        rng,
        c,
        lo=lo,
        hi=hi,
        mult=mult,
        welcome=True,
        calendar=cal,
        catalog=catalog,
        first_order_id=first_order_id,
        drop_from_sec=None if shift is None else shift.sec,
    )
    if shift is None:
        return orders
    if shift_rng is None:
        raise ValueError("simulate_orders: a shift needs its own random generator (shift_rng)")
    start = float(shift.day)
    lo = np.maximum(lo, start)
    hi = np.maximum(hi, lo)
    new = _purchases(
        shift_rng,
        c,
        lo=lo,
        hi=hi,
        mult=mult * shift.rate_factor(c)[:, None],
        welcome=False,
        calendar=cal,
        catalog=catalog,
        first_order_id=shift_first_order_id,
        drop_from_sec=None,
    )
    return Orders.concat(orders, new)


def _purchases(
    rng: np.random.Generator,
    c: Customers,
    *,
    lo: np.ndarray,
    hi: np.ndarray,
    mult: np.ndarray,
    welcome: bool,
    calendar: Calendar,
    catalog: Catalog,
    first_order_id: int,
    drop_from_sec: int | None,
) -> Orders:
    """Poisson purchases with intensity rate * mult * s(t) on the 3 segments [lo, hi) per
    customer (segment 1 is the experiment window: its lines carry the arm's discount), plus the
    welcome purchases when `welcome`, their items and returns. Ids by customer, then time.
    `drop_from_sec` drops the Poisson purchases from that second on (with their returns) after
    the ids are assigned."""
    cal = calendar
    n = len(c.rate)
    a_exp, e_exp = float(cal.experiment_day), float(cal.experiment_end_day)
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
    n_poisson = len(cust)
    if welcome:
        # Welcome purchases at the exact second of sign-up.
        w = np.flatnonzero(c.welcome)
        cust = np.concatenate([cust, w])
        sec = np.concatenate([sec, c.created_sec[w]])
        in_exp_window = (c.created_sec[w] >= a_exp * SECONDS_PER_DAY) & (
            c.created_sec[w] < e_exp * SECONDS_PER_DAY
        )
        discount = np.concatenate([discount, np.where(in_exp_window & (c.arm[w] > 0), c.arm[w], 0)])
    m = len(cust)
    discount_pct = np.array([0.0, 20.0, 25.0])[discount]

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
    quantity = 1 + rng.poisson(np.where(c.is_vip[item_cust], 0.6, 0.25))
    # One line per (order, product): duplicates within an order are merged.
    key, inverse = np.unique(item_order * catalog.n_products + product, return_inverse=True)
    line_qty = np.bincount(inverse, weights=quantity).astype(np.int64)
    line_order = key // catalog.n_products
    line_product = key % catalog.n_products
    line_price = np.round(catalog.price[line_product] * (1.0 - discount_pct[line_order] / 100), 2)

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
    line_product = np.concatenate([line_product, line_product[r_lines]])
    line_qty = np.concatenate([line_qty, r_qty])
    line_price = np.concatenate([line_price, line_price[r_lines]])
    ids_used = len(order)
    if drop_from_sec is not None:
        dropped = (np.arange(m) < n_poisson) & (sec >= drop_from_sec)
        kept_order = ~np.concatenate([dropped, dropped[ret_orders]])
        order = order[kept_order[order]]
        kept_line = ~np.concatenate([dropped[line_order], dropped[line_order[r_lines]]])
        line_ids, line_product = line_ids[kept_line], line_product[kept_line]
        line_qty, line_price = line_qty[kept_line], line_price[kept_line]
        m -= int(dropped.sum())
        ret_orders = ret_orders[~dropped[ret_orders]]
    lsort = np.argsort(line_ids, kind="stable")
    return Orders(
        order_id=ids[order],
        customer_id=c.customer_id[all_cust[order]],
        seconds=all_sec[order],
        line_order_id=line_ids[lsort],
        line_product=line_product[lsort],
        line_quantity=line_qty[lsort],
        line_price=line_price[lsort],
        n_purchases=m,
        n_returns=len(ret_orders),
        ids_used=ids_used,
    )


# -------------------------------------------------------------------------------------- email


def simulate_emails(
    rng: np.random.Generator,
    c: Customers,
    *,
    calendar: Calendar,
    b: Behaviour = BEHAVIOUR,
    shift: RegimeShift | None = None,
    shift_rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Campaign sends to opted-in customers and the funnel they trigger.

    Returns customer index, campaign index, event type index (into EVENT_TYPES) and seconds.
    Campaign indices point into ``calendar.campaign_days`` followed by
    ``shift.campaign_days(calendar)``. With a `shift`, the weekly campaigns from the shift day on
    are dropped (the events of earlier campaigns are kept, even an open after the shift) and the
    campaigns of the new regime are drawn with `shift_rng`, to the customers who have not
    unsubscribed before.
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
    cust, camp, etype, sec = _email_funnel(rng, c, ci, cj, send, bad=bad, calendar=cal, b=b)
    if shift is None:
        return cust, camp, etype, sec
    if shift_rng is None:
        raise ValueError("simulate_emails: a shift needs its own random generator (shift_rng)")
    kept = cal.campaign_days[camp] < shift.day
    cust, camp, etype, sec = cust[kept], camp[kept], etype[kept], sec[kept]
    unsubscribed = np.zeros(n, dtype=bool)
    unsubscribed[cust[etype == EVENT_TYPES.index("unsubscribe")]] = True
    regime = shift.email
    days = shift.campaign_days(cal)
    base_sec = days * SECONDS_PER_DAY + 9 * 3600
    eligible = (
        (c.email_opt_in & ~unsubscribed)[:, None]
        & (c.created_sec[:, None] < base_sec[None, :])
        & (shift_rng.random((n, len(base_sec)), dtype=np.float32) < regime.audience)
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
        calendar=cal,
        b=b,
        open_logit=regime.open_logit,
        click_logit=regime.click_logit,
        unsubscribe_scale=regime.unsubscribe_scale,
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
    calendar: Calendar,
    b: Behaviour,
    open_logit: float = 0.0,
    click_logit: float = 0.0,
    unsubscribe_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Events of the sends (customer ci, campaign cj at second `send`, sorted by customer then
    campaign): bounce, open, click, unsubscribe; sends stop after a customer's first
    unsubscribe. The logit offsets and the unsubscribe scale are those of a regime shift."""
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
    parts = [
        (keep, send, 0),
        (keep & opened, open_sec, 1),
        (keep & clicked, click_sec, 2),
        (keep & unsub, unsub_sec, 3),
        (keep & bounce, bounce_sec, 4),
    ]
    cust = np.concatenate([ci[m] for m, _, _ in parts])
    camp = np.concatenate([cj[m] for m, _, _ in parts])
    etype = np.concatenate([np.full(int(m.sum()), t, dtype=np.int8) for m, _, t in parts])
    sec = np.concatenate([t[m] for m, t, _ in parts])
    inside = sec < calendar.days * SECONDS_PER_DAY
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
    c: Customers,
    *,
    calendar: Calendar,
    q: np.ndarray,
    cutoff_day: int,
    shift: RegimeShift | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """P(at least one purchase with a group-G item in [T, T + horizon)) given the latent state.

    Purchases in the window are Poisson with mean rate * integral of s * m over
    [T, min(T + horizon, death)); thinning by q (see `group_hit_probability`) gives
    P = 1 - exp(-q * rate * integral). With a `shift`, the part of the window from the shift on
    counts f times, f = ``shift.rate_factor``. Returns (mask of customers created before T,
    (n, groups)).
    """
    exists = c.created_day < cutoff_day
    hi = np.minimum(float(cutoff_day + HORIZON_DAYS), c.death)
    integral = window_integral(calendar, c, float(cutoff_day), hi)
    if shift is not None:
        after = window_integral(calendar, c, float(max(cutoff_day, shift.day)), hi)
        integral = integral + (shift.rate_factor(c) - 1.0) * after
    prob = -np.expm1(-q * (c.rate * integral)[:, None])
    return exists, prob


def treatment_effects(
    c: Customers,
    *,
    calendar: Calendar,
    b: Behaviour = BEHAVIOUR,
    shift: RegimeShift | None = None,
) -> dict:
    """True P(any purchase in the experiment window) under arm 0 and each treated arm (with a
    `shift`, the purchase rate from the shift on is that of the new regime)."""
    idx = np.flatnonzero(c.in_experiment)
    a = float(calendar.experiment_day)
    hi = np.minimum(float(calendar.experiment_end_day), c.death[idx])
    base_integral = np.where(hi > a, calendar.integral(hi) - calendar.integral(a), 0.0)
    if shift is not None:
        lo = max(a, float(shift.day))
        after = np.where(hi > lo, calendar.integral(hi) - calendar.integral(lo), 0.0)
        base_integral = base_integral + (shift.rate_factor(c)[idx] - 1.0) * after
    base_mean = c.rate[idx] * base_integral
    baseline = -np.expm1(-base_mean)
    out: dict[str, list[np.ndarray]] = {
        "customer": [],
        "arm": [],
        "baseline": [],
        "treated": [],
    }
    for arm_index in range(1, len(ARMS)):
        factor = 1.0 + c.price_sensitivity[idx] * b.arm_uplift[arm_index]
        treated = -np.expm1(-base_mean * factor)
        out["customer"].append(idx)
        out["arm"].append(np.full(len(idx), arm_index))
        out["baseline"].append(baseline)
        out["treated"].append(treated)
    return {key: np.concatenate(v) for key, v in out.items()}


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
