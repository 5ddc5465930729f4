"""The observable oracle: the Bayes-optimal purchase probability given what a model can see.

`raw.oracle_propensity` is P(purchase of group G in [T, T + 30 days) | latent state). No model can
reach it: the latent purchase rate, churn time, affinities and price sensitivity are only seen
through a customer's history. This module computes the posterior predictive probability

    P(purchase of G in [T, T + 30 days) | observable history before T, the generator's prior)

from the raw tables alone (customers, orders, order lines, email events, treatments, products) and
the generator's known mechanics (`Behaviour`, `Calendar`, `Catalog`), never from `raw.oracle_*`.
It is the best any model can do on generated data (up to the approximations listed in
docs/oracle.md), so a model's AUC should be compared with this one.

Latent variables and how they are integrated out, per customer:

- engagement z ~ N(0, 1): Gauss-Hermite nodes (it moves the rate prior, the life length, the
  opt-in, the email funnel and the price sensitivity);
- price sensitivity (treated experiment arms, and the prior mixture over arms when the
  assignment is not observable yet): Gauss-Hermite nodes on its normal draw;
- churn time d: the exact prior mass of the short/long-life mixture on a grid of intervals
  between the last purchase and T (quadratically finer near the last purchase), a few intervals
  in the label window and one beyond it; each carries the purchase exposure up to min(d, T) and
  the alive/dead status at every email send;
- purchase rate r: gamma prior x Poisson likelihood is conjugate; the posterior is integrated with
  generalised Gauss-Laguerre nodes so that the email funnel's dependence on the rate (activity)
  enters exactly at the nodes;
- category affinities: Dirichlet posterior from the categories of the items bought (welcome
  purchases included), sampled with control variates; q (group hit probability per purchase)
  is nonlinear in them.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
from scipy import special

from models_py._errors import InputDataError
from models_py._warehouse import connect
from models_py.ingest.synth._calendar import HORIZON_DAYS, SECONDS_PER_DAY, Calendar, build_calendar
from models_py.ingest.synth._catalog import Catalog, build_catalog
from models_py.ingest.synth._simulate import (
    ARMS,
    BEHAVIOUR,
    EXPERIMENT_ID,
    SHIFTS,
    Behaviour,
    Shift,
    observable_follows,
)

logger = logging.getLogger(__name__)

#: Email sends this close to T are ignored: their opens/clicks may happen at or after T.
EMAIL_GUARD_DAYS = 3.0
#: Above this posterior shape the gamma posterior is integrated with a normal approximation.
LAGUERRE_MAX_SHAPE = 150.0
#: Grid of q at which E[1 - exp(-q * rate * window exposure)] is computed, then interpolated.
Q_GRID = np.logspace(-4.0, 0.0, 17)
US_PER_DAY = SECONDS_PER_DAY * 1_000_000


@dataclass(frozen=True)
class Quadrature:
    """Numbers of nodes and samples (defaults: accuracy well below sampling noise of an AUC)."""

    z_nodes: int = 12
    sensitivity_nodes: int = 7
    rate_nodes: int = 8
    history_intervals: int = 32
    window_intervals: int = 6
    affinity_samples: int = 64
    affinity_tolerance: float = 0.001  # standard error above which a customer gets more samples
    affinity_refine: int = 16
    chunk_cells: int = 2_000_000  # customers x scenarios x death points x rate nodes per chunk


@dataclass(frozen=True)
class _Regime:
    """The calendar's regime shift: kind, first day (index and date) and knobs."""

    kind: str
    day: int
    at: dt.date
    params: Shift


def _regime(calendar: Calendar) -> _Regime | None:
    if calendar.shift_kind is None or calendar.shift_day is None:
        return None
    return _Regime(
        kind=calendar.shift_kind,
        day=calendar.shift_day,
        at=calendar.date_of(calendar.shift_day),
        params=SHIFTS[calendar.shift_kind],
    )


@dataclass
class Observed:
    """Everything observable before the cutoff T, per customer created before T.

    Times are in days since the start of the history (float).
    """

    customer_id: np.ndarray
    created: np.ndarray
    is_vip: np.ndarray
    opt_in: np.ndarray
    n_purchases: np.ndarray  # Poisson-process purchases (welcome purchases excluded)
    n_experiment: np.ndarray  # of which in the experiment window
    n_shifted: np.ndarray  # of which at or after a regime shift (0 without one)
    last_purchase: np.ndarray  # NaN when none
    category_counts: np.ndarray  # (n, categories) items bought, welcome purchases included
    arm: np.ndarray  # index into ARMS; -1 when not in the experiment or not yet assigned
    arm_known: np.ndarray  # False when the assignment is at or after T
    send_customer: np.ndarray  # index into customer_id, sorted by (customer, send time)
    send_time: np.ndarray
    send_counts: np.ndarray  # (sends, 6): 1, opened, clicked, opened & not clicked, unsub flags
    # With a regime shift, (sends, 12): the 6 columns of sends before it, then of those after.


# ------------------------------------------------------------------------------- observations

_CUSTOMERS_SQL = """
select customer_id, epoch_us(created_at) as created_us, is_vip, email_opt_in
from raw.customers
where created_at < $cutoff
order by customer_id
"""

_PURCHASES_SQL = """
with purchases as (
    select o.order_id, o.customer_id, o.ordered_at
    from raw.orders as o
    where o.ordered_at < $cutoff
        and exists (
            select 1 from raw.order_lines as l where l.order_id = o.order_id and l.quantity > 0
        )
),

final as (
    select
        p.customer_id,
        epoch_us(p.ordered_at) as ordered_us,
        p.ordered_at = c.created_at as is_welcome
    from purchases as p
    inner join raw.customers as c on p.customer_id = c.customer_id
)

select * from final
"""

_LINES_SQL = """
with final as (
    select o.customer_id, p.category, count(*) as items
    from raw.orders as o
    inner join raw.order_lines as l on o.order_id = l.order_id
    inner join raw.products as p on l.product_id = p.product_id
    where o.ordered_at < $cutoff and l.quantity > 0
    group by all
)

select * from final
"""

_EMAILS_SQL = """
with events as (
    select * from raw.email_events where occurred_at < $cutoff
),

sends as (
    select
        customer_id,
        campaign_id,
        min(occurred_at) filter (where event_type = 'sent') as sent_at,
        bool_or(event_type = 'open') as opened,
        bool_or(event_type = 'click') as clicked,
        bool_or(event_type = 'unsubscribe') as unsubscribed,
        bool_or(event_type = 'bounce') as bounced
    from events
    group by customer_id, campaign_id
),

final as (
    select customer_id, epoch_us(sent_at) as sent_us, opened, clicked, unsubscribed
    from sends
    where sent_at is not null and not bounced and sent_at < $guard
)

select * from final
"""

_TREATMENTS_SQL = """
select customer_id, arm
from raw.treatments
where experiment_id = $experiment and assigned_at < $cutoff
"""


def _to_days(us: np.ndarray, start_us: int) -> np.ndarray:
    return (np.asarray(us, dtype=np.int64) - start_us) / US_PER_DAY


def load_observed(con, *, cutoff: dt.date, calendar: Calendar, catalog: Catalog) -> Observed:
    """Read everything observable strictly before `cutoff` from the raw tables.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Connection to a warehouse with the raw tables of a generated warehouse.
    cutoff : date
        T: only events with a timestamp before T 00:00 are read.
    calendar, catalog
        The generator's calendar and catalogue of this warehouse; with a regime shift in the
        calendar, purchases and email sends from it on are counted apart.
    """
    shift = _regime(calendar)
    ts = dt.datetime.combine(cutoff, dt.time())
    start_us = int((calendar.start - dt.date(1970, 1, 1)).days) * US_PER_DAY
    cust = con.execute(_CUSTOMERS_SQL, {"cutoff": ts}).fetchnumpy()
    ids = np.asarray(cust["customer_id"], dtype=np.int64)
    n = len(ids)

    def index_of(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row of each customer id, and which ids are customers created before T."""
        pos = np.minimum(np.searchsorted(ids, values), max(n - 1, 0))
        return pos, (ids[pos] == values) if n else np.zeros(len(values), dtype=bool)

    created = _to_days(cust["created_us"], start_us)
    a_exp, e_exp = float(calendar.experiment_day), float(calendar.experiment_end_day)

    pur = con.execute(_PURCHASES_SQL, {"cutoff": ts}).fetchnumpy()
    p_idx, valid = index_of(np.asarray(pur["customer_id"], dtype=np.int64))
    p_time = _to_days(pur["ordered_us"], start_us)
    poisson = valid & (~np.asarray(pur["is_welcome"], dtype=bool) | (created[p_idx] < 0))
    n_purchases = np.bincount(p_idx[poisson], minlength=n)
    in_exp = poisson & (p_time >= a_exp) & (p_time < e_exp)
    n_experiment = np.bincount(p_idx[in_exp], minlength=n)
    shifted = poisson & (p_time >= shift.day) if shift is not None else np.zeros(len(p_idx), bool)
    n_shifted = np.bincount(p_idx[shifted], minlength=n)
    last = np.full(n, -np.inf)
    np.maximum.at(last, p_idx[poisson], p_time[poisson])
    last = np.where(np.isfinite(last), last, np.nan)

    lines = con.execute(_LINES_SQL, {"cutoff": ts}).fetchnumpy()
    cat_of = {name: i for i, name in enumerate(catalog.categories)}
    unknown = set(np.asarray(lines["category"], dtype=object).tolist()) - set(cat_of)
    if unknown:
        raise InputDataError(
            f"categories {sorted(unknown)[:5]} are not in the generator's catalogue: the "
            "observable oracle only works on warehouses written by `propensity generate`"
        )
    counts = np.zeros((n, len(catalog.categories)))
    l_cat = np.array([cat_of[c] for c in lines["category"]], dtype=np.int64)
    l_idx, valid = index_of(np.asarray(lines["customer_id"], dtype=np.int64))
    np.add.at(counts, (l_idx[valid], l_cat[valid]), np.asarray(lines["items"], dtype=float)[valid])

    guard = ts - dt.timedelta(days=EMAIL_GUARD_DAYS)
    em = con.execute(_EMAILS_SQL, {"cutoff": ts, "guard": guard}).fetchnumpy()
    e_idx, valid = index_of(np.asarray(em["customer_id"], dtype=np.int64))
    e_time = _to_days(em["sent_us"], start_us)
    order = np.lexsort((e_time, e_idx))
    order = order[valid[order]]
    e_idx, e_time = e_idx[order], e_time[order]
    opened = np.asarray(em["opened"], dtype=bool)[order]
    clicked = np.asarray(em["clicked"], dtype=bool)[order] & opened
    unsub = np.asarray(em["unsubscribed"], dtype=bool)[order]
    t1 = opened & ~clicked
    send_counts = np.column_stack(
        [np.ones(len(e_idx)), opened, clicked, t1, unsub & t1, unsub & ~t1]
    ).astype(float)
    if shift is not None:
        after = (e_time >= shift.day)[:, None]
        send_counts = np.hstack([send_counts * ~after, send_counts * after])

    tr = con.execute(_TREATMENTS_SQL, {"cutoff": ts, "experiment": EXPERIMENT_ID}).fetchnumpy()
    t_idx, valid = index_of(np.asarray(tr["customer_id"], dtype=np.int64))
    arm_index = np.array([ARMS.index(a) for a in tr["arm"]], dtype=np.int64)
    arm = np.full(n, -1, dtype=np.int64)
    arm[t_idx[valid]] = arm_index[valid]
    # Assignment (at the experiment start, midnight) at or after T is not observable: the arm of
    # every customer created before the experiment start is then unknown.
    if calendar.experiment_day >= (cutoff - calendar.start).days:
        arm_known = created >= calendar.experiment_day
    else:
        arm_known = np.ones(n, dtype=bool)
    return Observed(
        customer_id=ids,
        created=created,
        is_vip=np.asarray(cust["is_vip"], dtype=bool),
        opt_in=np.asarray(cust["email_opt_in"], dtype=bool),
        n_purchases=n_purchases,
        n_experiment=n_experiment,
        n_shifted=n_shifted,
        last_purchase=last,
        category_counts=counts,
        arm=arm,
        arm_known=arm_known,
        send_customer=e_idx,
        send_time=e_time,
        send_counts=send_counts,
    )


# ---------------------------------------------------------------------------------- numerics


@lru_cache(maxsize=4096)
def _laguerre(n_purchases: int, shape: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes x and normalised weights w with E[f(X)] = sum w f(x) for X ~ Gamma(shape + n, 1)."""
    alpha = shape + n_purchases
    if alpha <= LAGUERRE_MAX_SHAPE:
        x, w = special.roots_genlaguerre(k, alpha - 1.0)
    else:  # nearly normal: Gauss-Hermite on N(alpha, alpha)
        xi, w = np.polynomial.hermite_e.hermegauss(k)
        x = alpha + np.sqrt(alpha) * xi
    return np.asarray(x, float), np.asarray(w / w.sum(), float)


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def _survival(life: np.ndarray, long_scale: np.ndarray, b: Behaviour) -> np.ndarray:
    """P(L >= life) under the short/long-life mixture (life may be +inf)."""
    life = np.maximum(life, 0.0)
    return b.short_life_share * np.exp(-life / b.short_life_days) + (
        1.0 - b.short_life_share
    ) * np.exp(-life / long_scale)


def _exposure(cal: Calendar, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integral of s over [lo, hi) and of s over its overlap with the experiment window."""
    hi = np.maximum(hi, lo)
    base = cal.integral(hi) - cal.integral(lo)
    a, e = float(cal.experiment_day), float(cal.experiment_end_day)
    olo, ohi = np.maximum(lo, a), np.minimum(hi, e)
    overlap = np.where(ohi > olo, cal.integral(ohi) - cal.integral(olo), 0.0)
    return base, overlap


def _death_grid(obs: Observed, idx: np.ndarray, t: float, q: Quadrature):
    """Interval edges of the churn time d per customer: history part, window part, beyond."""
    kb, kc = q.history_intervals, q.window_intervals
    created = obs.created[idx]
    last = obs.last_purchase[idx]
    lo = np.where(np.isnan(last), created, np.maximum(created, last))
    frac = (np.arange(kb + 1) / kb) ** 2
    hist = lo[:, None] + (t - lo)[:, None] * frac[None, :]
    window = t + HORIZON_DAYS * np.arange(kc + 1) / kc
    edges = np.concatenate(
        [hist[:, :-1], np.broadcast_to(window, (len(idx), kc + 1)), np.full((len(idx), 1), np.inf)],
        axis=1,
    )  # (n, kb + kc + 2): kb + kc + 1 intervals
    mid = 0.5 * (edges[:, :-1] + edges[:, 1:])
    mid[:, -1] = np.inf
    return edges, mid


def _alive_counts(obs: Observed, idx: np.ndarray, mid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Email outcome counts (n, points, k) of sends before (alive) and after (dead) each d
    (k = the columns of `Observed.send_counts`)."""
    n, m = mid.shape
    pos_lo = np.searchsorted(obs.send_customer, idx, side="left")
    pos_hi = np.searchsorted(obs.send_customer, idx, side="right")
    k = obs.send_counts.shape[1]
    cum = np.vstack([np.zeros((1, k)), np.cumsum(obs.send_counts, axis=0)])
    total = cum[pos_hi] - cum[pos_lo]  # (n, k)
    # Position of d among the customer's sends: offset the times by a per-customer stride.
    stride = 1e4
    key = obs.send_customer * stride + obs.send_time
    query = idx[:, None] * stride + np.clip(mid, -5e3, 5e3)
    pos = np.searchsorted(key, query.ravel(), side="left").reshape(n, m)
    pos = np.clip(pos, pos_lo[:, None], pos_hi[:, None])
    alive = cum[pos] - cum[pos_lo][:, None, :]
    return alive, total[:, None, :] - alive


def _email_loglik(
    alive_counts: np.ndarray,
    dead_counts: np.ndarray,
    z: np.ndarray,
    act: np.ndarray,
    shift: _Regime | None = None,
) -> np.ndarray:
    """Log-likelihood of the email funnel, shape of `act` (n, s, d, i); with a `shift`, the
    counts hold the sends before it (columns 0-5) and after it (6-11, the new regime's funnel)."""
    out = np.zeros(act.shape)
    zz = z[:, :, None, None]
    regimes = [(0, 0.0, 0.0, 1.0)]
    if shift is not None:
        e = shift.params
        regimes.append((6, e.open_logit, e.click_logit, e.unsubscribe_scale))
    for first, open_logit, click_logit, unsub_scale in regimes:
        for alive, counts in ((1.0, alive_counts), (0.0, dead_counts)):
            c = counts[:, None, :, None, first : first + 6]  # (n, 1, d, 1, 6)
            sends, opened, clicked, t1, u1, u0 = (c[..., j] for j in range(6))
            lo = -2.0 + open_logit + 0.7 * zz + 0.3 * act + 1.3 * alive
            lc = -2.4 + click_logit + 0.5 * zz + 0.3 * act + 0.6 * alive
            ls_o, ls_c = _log_sigmoid(lo), _log_sigmoid(lc)
            out += opened * ls_o + (sends - opened) * (ls_o - lo)
            out += clicked * ls_c + t1 * (ls_c - lc)
            p1 = 0.008 * unsub_scale + 0.003 * (1.0 - alive)
            p0 = 0.002 * unsub_scale + 0.003 * (1.0 - alive)
            out += u1 * np.log(p1) + (t1 - u1) * np.log1p(-p1)
            out += u0 * np.log(p0) + (sends - t1 - u0) * np.log1p(-p0)
    return out


def _rate_mixture(
    obs: Observed,
    idx: np.ndarray,
    *,
    cal: Calendar,
    t: float,
    uplift: np.ndarray,
    q: Quadrature,
    b: Behaviour,
    arm_mixture: Sequence[tuple[float, float]] | None = None,
    shift: _Regime | None = None,
) -> np.ndarray:
    """h[n, j] = E[1 - exp(-Q_GRID[j] * rate * window exposure) | observations], one chunk.

    `arm_mixture` ((uplift, probability), ...) is for customers whose arm is not observable yet
    (`uplift` 0): the arm and the sensitivity then only act in the label window, and the
    prediction is their prior mixture. With a `shift`, the purchase intensity from it on is
    multiplied by its rate factor (a function of z and the opt-in) and the emails sent from it
    on follow its funnel.
    """
    n = len(idx)
    zn, zw = np.polynomial.hermite_e.hermegauss(q.z_nodes)
    zw = zw / zw.sum()
    treated = uplift > 0
    if treated.any():
        en, ew = np.polynomial.hermite_e.hermegauss(q.sensitivity_nodes)
        ew = ew / ew.sum()
    else:
        en, ew = np.zeros(1), np.ones(1)
    z = np.repeat(zn, len(en))[None, :].repeat(n, 0)  # (n, s)
    eps = np.tile(en, len(zn))[None, :]
    log_ps = np.log(np.repeat(zw, len(en)) * np.tile(ew, len(zn)))[None, :]
    vip = obs.is_vip[idx][:, None]
    sens = np.clip(0.55 + 0.45 * eps - 0.4 * vip - 0.15 * z, 0.0, None)
    factor = 1.0 + sens * uplift[:, None]  # (n, s)
    if not treated.any():
        factor = np.ones_like(z)

    scale = (
        b.mean_rate
        / b.rate_shape
        * np.exp(b.engagement_on_rate * z - b.engagement_on_rate**2 / 2)
        * np.where(vip, b.vip_rate, 1.0)
    )
    long_scale = b.long_life_days * np.exp(0.3 * z)
    opt = obs.opt_in[idx][:, None]
    p_opt = 1.0 / (1.0 + np.exp(-(b.opt_in_logit + 0.6 * z)))
    log_opt = np.log(np.where(opt, p_opt, 1.0 - p_opt))

    if shift is not None:  # the new regime's rate factor at each z node (1 for opted-out)
        shift_factor = shift.params.rate_factors(
            sensitivity=np.zeros_like(z), engagement=z, opt_in=opt, b=b
        )  # (n, s); observable_follows: no factor of the price-sensitive half

    edges, mid = _death_grid(obs, idx, t, q)
    created = obs.created[idx][:, None]
    life_lo = edges[:, :-1] - created
    life_hi = edges[:, 1:] - created
    mass = _survival(life_lo[:, None, :], long_scale[:, :, None], b) - _survival(
        life_hi[:, None, :], long_scale[:, :, None], b
    )  # (n, s, d)
    start = np.maximum(created, 0.0)
    base, ovl = _exposure(cal, np.broadcast_to(start, mid.shape), np.minimum(mid, t))
    exposure = base[:, None, :] + (factor - 1.0)[:, :, None] * ovl[:, None, :]
    w_base, w_ovl = _exposure(
        cal, np.full(mid.shape, t), np.minimum(mid, t + HORIZON_DAYS)
    )  # label-window exposure of each death point
    window = w_base[:, None, :] + (factor - 1.0)[:, :, None] * w_ovl[:, None, :]
    if shift is not None:  # the parts from the shift on count shift_factor times
        s_day = float(shift.day)
        p_base, p_ovl = _exposure(
            cal, np.broadcast_to(np.maximum(start, s_day), mid.shape), np.minimum(mid, t)
        )
        exposure = exposure + (shift_factor - 1.0)[:, :, None] * (
            p_base[:, None, :] + (factor - 1.0)[:, :, None] * p_ovl[:, None, :]
        )
        wp_base, wp_ovl = _exposure(
            cal, np.full(mid.shape, max(t, s_day)), np.minimum(mid, t + HORIZON_DAYS)
        )
        window = window + (shift_factor - 1.0)[:, :, None] * (
            wp_base[:, None, :] + (factor - 1.0)[:, :, None] * wp_ovl[:, None, :]
        )

    n_p = obs.n_purchases[idx]
    alpha = b.rate_shape + n_p
    beta = 1.0 / scale[:, :, None] + exposure  # (n, s, d)
    with np.errstate(divide="ignore"):
        log_w = (
            log_ps[:, :, None]
            + np.log(mass)
            + log_opt[:, :, None]
            - b.rate_shape * np.log(scale)[:, :, None]
            - alpha[:, None, None] * np.log(beta)
            + (obs.n_experiment[idx][:, None] * np.log(factor))[:, :, None]
        )
        if shift is not None:
            log_w = log_w + (obs.n_shifted[idx][:, None] * np.log(shift_factor))[:, :, None]
    nodes = np.empty((n, q.rate_nodes))
    weights = np.empty((n, q.rate_nodes))
    for j, k in enumerate(n_p):
        nodes[j], weights[j] = _laguerre(int(k), b.rate_shape, q.rate_nodes)
    rate = nodes[:, None, None, :] / beta[..., None]  # (n, s, d, i)
    log_w = log_w[..., None] + np.log(weights)[:, None, None, :]
    if len(obs.send_time):
        alive, dead = _alive_counts(obs, idx, mid)
        if alive[..., 0].any() or dead[..., 0].any():
            act = np.clip(np.log(rate / b.mean_rate), -3.0, 3.0)
            log_w = log_w + _email_loglik(alive, dead, z, act, shift)
    log_w -= log_w.max(axis=(1, 2, 3), keepdims=True)
    w = np.exp(log_w)
    w /= w.sum(axis=(1, 2, 3), keepdims=True)
    kb = q.history_intervals
    rate_w, wk = rate[:, :, kb:, :], w[:, :, kb:, :].reshape(n, -1)

    def h_of(win: np.ndarray) -> np.ndarray:
        lam = (rate_w * win[..., None]).reshape(n, -1)
        return np.stack([(wk * -np.expm1(-x * lam)).sum(axis=1) for x in Q_GRID], axis=1)

    if arm_mixture is None:
        return h_of(window[:, :, kb:])

    def arm_window(arm_factor: np.ndarray) -> np.ndarray:
        """Label-window exposure with the experiment factor of an arm (n, s) at each d."""
        win = w_base[:, None, kb:] + (arm_factor - 1.0)[:, :, None] * w_ovl[:, None, kb:]
        if shift is not None:
            win = win + (shift_factor - 1.0)[:, :, None] * (
                wp_base[:, None, kb:] + (arm_factor - 1.0)[:, :, None] * wp_ovl[:, None, kb:]
            )
        return np.broadcast_to(win, rate_w.shape[:3])

    en, ew = np.polynomial.hermite_e.hermegauss(q.sensitivity_nodes)
    ew = ew / ew.sum()
    h = np.zeros((n, len(Q_GRID)))
    for u, p in arm_mixture:
        if u == 0:
            if shift is None:
                h += p * h_of(np.broadcast_to(w_base[:, None, kb:], rate_w.shape[:3]))
            else:
                h += p * h_of(arm_window(np.ones_like(z)))
            continue
        for e_k, p_k in zip(en, ew, strict=True):
            sens_k = np.clip(0.55 + 0.45 * e_k - 0.4 * vip - 0.15 * z, 0.0, None)
            if shift is None:
                win = w_base[:, None, kb:] + (sens_k * u)[:, :, None] * w_ovl[:, None, kb:]
            else:
                win = arm_window(1.0 + sens_k * u)
            h += p * p_k * h_of(win)
    return h


def _interpolate(h: np.ndarray, qv: np.ndarray) -> np.ndarray:
    """h (n, len(Q_GRID)) at q values qv (n, ...): linear in log q of log h."""
    lg = np.log(Q_GRID)
    step = lg[1] - lg[0]
    lq = np.log(np.clip(qv, 1e-300, 1.0))
    pos = (lq - lg[0]) / step
    below = pos < 0
    j = np.clip(np.floor(pos).astype(np.int64), 0, len(lg) - 2)
    frac = np.clip(pos - j, 0.0, 1.0)
    lh = np.log(np.maximum(h, 1e-300))
    rows = np.arange(h.shape[0]).reshape((-1,) + (1,) * (qv.ndim - 1))
    val = np.exp(lh[rows, j] + frac * (lh[rows, j + 1] - lh[rows, j]))
    return np.where(below, h[:, :1].reshape(rows.shape) * qv / Q_GRID[0], val)


def _group_probabilities(
    obs: Observed,
    idx: np.ndarray,
    h: np.ndarray,
    *,
    catalog: Catalog,
    rng: np.random.Generator,
    q: Quadrature,
    b: Behaviour,
    samples: int | None = None,
) -> np.ndarray:
    """(n, groups): E[h(q(pi))] over the Dirichlet posterior of the affinities.

    Monte Carlo over posterior samples with pi and pi^2 as control variates (their posterior
    means are known exactly): removes most of the sampling noise, as h(q(pi)) is close to a
    quadratic in pi. Customers whose estimate still has a standard error above
    `Quadrature.affinity_tolerance` are redone with `affinity_refine` times the samples.
    """
    samples = q.affinity_samples if samples is None else samples
    alpha = b.affinity_concentration * catalog.category_popularity
    post = alpha[None, :] + obs.category_counts[idx]
    share = catalog.category_group_share
    aff = rng.gamma(post[:, None, :], 1.0, (len(idx), samples, len(alpha)))
    aff /= aff.sum(axis=2, keepdims=True)
    pi = np.clip(aff @ share, 0.0, 1.0)  # (n, S, G)
    mu = np.where(obs.is_vip[idx], b.vip_items_mu, b.items_mu)[:, None, None]
    qv = 1.0 - (1.0 - pi) * np.exp(-mu * pi)
    y = _interpolate(h, qv)
    # Exact posterior moments of pi = affinity . share (a linear functional of a Dirichlet).
    total = post.sum(axis=1, keepdims=True)
    mean_aff = post / total
    m1 = mean_aff @ share  # (n, G)
    var = (mean_aff @ share**2 - m1**2) / (total + 1.0)
    m2 = var + m1**2
    x1, x2 = pi - m1[:, None, :], pi**2 - m2[:, None, :]
    c1, c2 = x1 - x1.mean(axis=1, keepdims=True), x2 - x2.mean(axis=1, keepdims=True)
    cy = y - y.mean(axis=1, keepdims=True)
    s11, s12, s22 = (c1 * c1).sum(1), (c1 * c2).sum(1), (c2 * c2).sum(1)
    s1y, s2y = (c1 * cy).sum(1), (c2 * cy).sum(1)
    det = s11 * s22 - s12**2
    ok = det > 1e-12 * np.maximum(s11 * s22, 1e-300)
    safe = np.where(ok, det, 1.0)
    b1 = np.where(ok, (s22 * s1y - s12 * s2y) / safe, 0.0)
    b2 = np.where(ok, (s11 * s2y - s12 * s1y) / safe, 0.0)
    est = y.mean(axis=1) - b1 * x1.mean(axis=1) - b2 * x2.mean(axis=1)
    resid = cy - b1[:, None, :] * c1 - b2[:, None, :] * c2
    se = np.sqrt((resid**2).sum(axis=1) / max(samples - 3, 1) / samples)
    redo = np.flatnonzero(se.max(axis=1) > q.affinity_tolerance)
    if len(redo) and samples == q.affinity_samples and q.affinity_refine > 1:
        est[redo] = _group_probabilities(
            obs,
            idx[redo],
            h[redo],
            catalog=catalog,
            rng=rng,
            q=q,
            b=b,
            samples=samples * q.affinity_refine,
        )
    return np.clip(est, 0.0, 1.0)


def posterior_probabilities(
    obs: Observed,
    *,
    cutoff: dt.date,
    calendar: Calendar,
    catalog: Catalog,
    quadrature: Quadrature = Quadrature(),
    behaviour: Behaviour = BEHAVIOUR,
    seed: int = 0,
) -> np.ndarray:
    """Posterior predictive P(purchase of each group in [T, T + 30 days)) per observed customer.

    Parameters
    ----------
    obs : Observed
        From `load_observed` at the same cutoff.
    cutoff : date
        T.
    calendar, catalog
        The generator's calendar and catalogue (`generator_parts`), with its regime shift if
        any (a kind `observable_follows`).
    quadrature : Quadrature
        Integration accuracy.
    behaviour : Behaviour
        The generator's knobs (its defaults unless the warehouse was generated otherwise).
    seed : int
        Seeds the affinity samples (results are reproducible for a given seed).

    Returns
    -------
    np.ndarray
        (customers, groups) in the order of `obs.customer_id` and `catalog.groups`.
    """
    t = float((cutoff - calendar.start).days)
    shift = _regime(calendar)
    n = len(obs.customer_id)
    out = np.empty((n, len(catalog.groups)))
    rng = np.random.default_rng(seed)
    a, e = float(calendar.experiment_day), float(calendar.experiment_end_day)
    window_in_experiment = t < e and t + HORIZON_DAYS > a
    uplift = np.where(obs.arm >= 0, np.asarray(behaviour.arm_uplift)[obs.arm], 0.0)
    # Scenarios: (uplift, probability) per customer; an unobservable arm is a prior mixture.
    eligible = obs.created < a
    p_exp = behaviour.experiment_share / len(ARMS)
    unknown_mix = [(0.0, 1.0 - behaviour.experiment_share + p_exp)] + [
        (u, p_exp) for u in behaviour.arm_uplift[1:]
    ]
    for treated_group in (False, True):
        sel = np.flatnonzero((uplift > 0) == treated_group)
        if not len(sel):
            continue
        scenarios = quadrature.z_nodes * (quadrature.sensitivity_nodes if treated_group else 1)
        cells = scenarios * (quadrature.history_intervals + quadrature.window_intervals + 1)
        step = max(1, quadrature.chunk_cells // (cells * quadrature.rate_nodes))
        for lo in range(0, len(sel), step):
            idx = sel[lo : lo + step]
            h = np.empty((len(idx), len(Q_GRID)))
            mix = ~obs.arm_known[idx] & eligible[idx] & window_in_experiment
            for part, arms in ((~mix, None), (mix, unknown_mix)):
                if part.any():
                    h[part] = _rate_mixture(
                        obs,
                        idx[part],
                        cal=calendar,
                        t=t,
                        uplift=uplift[idx[part]],
                        q=quadrature,
                        b=behaviour,
                        arm_mixture=arms,
                        shift=shift,
                    )
            out[idx] = _group_probabilities(
                obs, idx, h, catalog=catalog, rng=rng, q=quadrature, b=behaviour
            )
    return np.clip(out, 0.0, 1.0)


def generator_parts(
    *,
    seed: int,
    end_date: dt.date,
    days: int,
    shift_at: dt.date | None = None,
    shift: str | None = None,
) -> tuple[Calendar, Catalog]:
    """The calendar and catalogue `generate_warehouse(seed=..., end_date=..., days=...,
    shift_at=..., shift=...)` used."""
    from models_py.ingest.synth._generate import DEFAULT_SHIFT, _validate_shift

    shift = DEFAULT_SHIFT if shift is None else shift
    _validate_shift(shift_at, shift, days=days, end_date=end_date)
    calendar = build_calendar(end_date=end_date, days=days, shift_at=shift_at, shift=shift)
    catalog = build_catalog(np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0]))
    return calendar, catalog


def observable_oracle(
    path: Path | str,
    *,
    cutoff: dt.date,
    seed: int,
    end_date: dt.date = dt.date(2026, 10, 1),
    days: int = 730,
    quadrature: Quadrature = Quadrature(),
    shift_at: dt.date | None = None,
    shift: str | None = None,
) -> pa.Table:
    """The observable oracle of a generated warehouse at one cutoff, as a long table.

    Parameters
    ----------
    path : Path or str
        A warehouse written by `generate_warehouse` (read only).
    cutoff : date
        T: the probability is for a purchase in [T, T + 30 days), from events before T.
    seed, end_date, days
        The arguments the warehouse was generated with (they fix the catalogue and calendar).
    quadrature : Quadrature
        Integration accuracy.
    shift_at, shift
        The regime shift the warehouse was generated with (None: none; `shift` None: the
        default kind). Checked against ``raw.oracle_regime_shift``. After the shift only the
        kinds `observable_follows` (``email_fatigue``) are modelled.

    Returns
    -------
    pyarrow.Table
        customer_id, product_group, as_of_date, probability: one row per customer created
        before T and product group (as `raw.oracle_propensity`).

    Raises
    ------
    InputDataError
        When the products do not match the generator's catalogue for `seed`, the regime shift
        does not match the one the warehouse was generated with, or the label window reaches
        past a shift of a kind the observable oracle does not model.
    ConfigError
        For an unknown kind of shift or a `shift_at` outside the history.
    """
    started = time.perf_counter()
    calendar, catalog = generator_parts(
        seed=seed, end_date=end_date, days=days, shift_at=shift_at, shift=shift
    )
    regime = _regime(calendar)
    if (
        regime is not None
        and not observable_follows(regime.params)
        and cutoff + dt.timedelta(days=HORIZON_DAYS) > regime.at
    ):
        raise InputDataError(
            f"the observable oracle does not model a regime shift of kind {regime.kind!r} (only "
            f"'email_fatigue'): cutoff {cutoff} has a label window reaching past its first day "
            f"{regime.at}; use a cutoff on or before {regime.at - dt.timedelta(days=HORIZON_DAYS)}"
        )
    con = connect(path, read_only=True)
    try:
        _check_catalog(con, catalog, seed)
        _check_regime(con, regime)
        obs = load_observed(con, cutoff=cutoff, calendar=calendar, catalog=catalog)
    finally:
        con.close()
    prob = posterior_probabilities(
        obs,
        cutoff=cutoff,
        calendar=calendar,
        catalog=catalog,
        quadrature=quadrature,
        seed=seed,
    )
    g = len(catalog.groups)
    n = len(obs.customer_id)
    logger.info(
        "observable oracle at %s: %d customers x %d groups in %.1f s",
        cutoff,
        n,
        g,
        time.perf_counter() - started,
    )
    return pa.table(
        {
            "customer_id": pa.array(np.repeat(obs.customer_id, g), pa.int64()),
            "product_group": pa.array(list(catalog.groups) * n, pa.string()),
            "as_of_date": pa.array([cutoff] * (n * g), pa.date32()),
            "probability": pa.array(prob.ravel(), pa.float64()),
        }
    )


def _check_catalog(con, catalog: Catalog, seed: int) -> None:
    rows = con.execute(
        "select product_id, product_name, category from raw.products order by product_id"
    ).fetchall()
    expected = sorted(
        zip(
            catalog.product_id.tolist(),
            catalog.product_name.tolist(),
            catalog.category.tolist(),
            strict=True,
        )
    )
    if rows != expected:
        raise InputDataError(
            f"raw.products does not match the generator's catalogue for seed {seed}: pass the "
            "seed the warehouse was generated with (`propensity generate --seed`)"
        )


def _check_regime(con, regime: _Regime | None) -> None:
    """The regime shift asked for must be the warehouse's (``raw.oracle_regime_shift``)."""
    exists = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = 'raw' and table_name = 'oracle_regime_shift'"
    ).fetchone()[0]
    stored = (
        con.execute("select min(shift), min(shift_at) from raw.oracle_regime_shift").fetchone()
        if exists
        else (None, None)
    )
    asked = (None, None) if regime is None else (regime.kind, regime.at)
    if tuple(stored) != asked:
        have = (
            "no regime shift"
            if stored[1] is None
            else f"regime shift {stored[0]!r} from {stored[1]}"
        )
        hint = (
            "leave shift_at unset"
            if stored[1] is None
            else f"pass shift_at={stored[1]}, shift={stored[0]!r} (propensity generate --shift-at)"
        )
        raise InputDataError(
            f"the warehouse was generated with {have}, not as asked ({asked[0]!r} from "
            f"{asked[1]}): the observable oracle needs the generator's regime; {hint}"
        )
