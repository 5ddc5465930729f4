"""Uplift metrics for one treated arm against the control: Qini and uplift curves, their
normalised areas, uplift at the top k and a per-bin table with confidence intervals.

Written with numpy only; the definitions follow scikit-uplift 0.5 (``sklift.metrics``) so that
figures can be compared with published ones, and the tests check agreement to 1e-9.

Arguments follow sklift's order ``(y_true, uplift, treatment)``: ``y_true`` is the outcome
(binary 0/1, or continuous such as spend), ``uplift`` the score that ranks customers (higher =
treat first), ``treatment`` 1 for the treated arm and 0 for the control.

Ties. Rows are ranked by descending score; among equal scores the row that comes LATER in the
input ranks first. This is the order of sklift (a stable ascending sort, reversed), so both agree
even on tied scores. The curves do not depend on it: they have one point per distinct score
(a tie group enters the curve all at once, as in sklift), so `qini_auc_score` and
`uplift_auc_score` are the same whatever the order within a tie. `uplift_at_k` and
`uplift_by_percentile` cut at row counts, so a tie group may be split by the cut; the order
above decides which of its rows fall inside.
"""

from __future__ import annotations

from itertools import pairwise
from numbers import Integral, Real
from statistics import NormalDist

import numpy as np
import pandas as pd

from models_py.uplift._errors import LengthMismatchError, MissingValuesError, UpliftInputError

STRATEGIES = ("overall", "by_group")


# --------------------------------------------------------------------------------- validation


def _as_vector(name: str, values) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise UpliftInputError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise UpliftInputError(f"{name} must be numeric, got dtype {array.dtype}")
    array = array.astype(np.float64)
    missing = int(np.isnan(array).sum())
    if missing:
        raise MissingValuesError(f"{name} holds {missing:,} NaN value(s) of {array.size:,}")
    return array


def _inputs(y_true, uplift, treatment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float vectors of equal length; treatment 0/1 with both groups present."""
    y = _as_vector("y_true", y_true)
    score = _as_vector("uplift", uplift)
    t = _as_vector("treatment", treatment)
    if not y.size == score.size == t.size:
        raise LengthMismatchError(
            f"y_true, uplift and treatment have {y.size:,}, {score.size:,} and {t.size:,} rows; "
            "pass one value per customer in each"
        )
    if not np.isin(t, (0.0, 1.0)).all():
        raise UpliftInputError("treatment must hold only 0 (control) and 1 (treated)")
    if t.min() == t.max():
        group = "treated" if t[0] == 1 else "control"
        raise UpliftInputError(
            f"treatment holds only {group} rows ({t.size:,}); the metrics compare both groups"
        )
    return y, score, t


def _is_binary(y: np.ndarray) -> bool:
    return bool(np.isin(y, (0.0, 1.0)).all())


def _ranked(y: np.ndarray, score: np.ndarray, t: np.ndarray):
    """Rows by descending score; ties: the later row first (see the module docstring)."""
    order = np.argsort(score, kind="mergesort")[::-1]
    return y[order], score[order], t[order]


# --------------------------------------------------------------------------------- curves


def _cumulative(y_true, uplift, treatment):
    """Per distinct score (descending): rows so far, treated so far, their outcome sums."""
    y, score, t = _ranked(*_inputs(y_true, uplift, treatment))
    last = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]  # last row of each tie group
    n_all = last + 1
    n_t = np.cumsum(t)[last]
    y_t = np.cumsum(y * t)[last]
    y_c = np.cumsum(y * (1.0 - t))[last]
    return n_all, n_t, n_all - n_t, y_t, y_c


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (an empty group contributes nothing, as in sklift)."""
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den != 0)


def qini_curve(y_true, uplift, treatment) -> tuple[np.ndarray, np.ndarray]:
    """Qini curve: for the top n customers, treated outcome sum minus the control outcome sum
    scaled to the treated count, ``Y_t(n) - Y_c(n) * N_t(n) / N_c(n)``.

    Returns
    -------
    (x, y) : tuple of ndarray
        Customers targeted (starting at 0) and the curve value; one point per distinct score.
    """
    n_all, n_t, n_c, y_t, y_c = _cumulative(y_true, uplift, treatment)
    values = y_t - y_c * _ratio(n_t, n_c)
    return np.r_[0, n_all], np.r_[0.0, values]


def uplift_curve(y_true, uplift, treatment) -> tuple[np.ndarray, np.ndarray]:
    """Uplift curve: for the top n customers, ``(Y_t/N_t - Y_c/N_c) * n`` (a group with no row
    yet contributes a mean of 0, as in sklift).

    Returns
    -------
    (x, y) : tuple of ndarray
        Customers targeted (starting at 0) and the curve value; one point per distinct score.
    """
    n_all, n_t, n_c, y_t, y_c = _cumulative(y_true, uplift, treatment)
    values = (_ratio(y_t, n_t) - _ratio(y_c, n_c)) * n_all
    return np.r_[0, n_all], np.r_[0.0, values]


def _normalised_area(actual, perfect) -> float:
    """(area of actual - random) / (area of perfect - random); random is the straight line to
    the perfect curve's end. NaN when the perfect curve is no better than random."""
    x_perfect, y_perfect = perfect
    random_area = 0.5 * float(x_perfect[-1]) * float(y_perfect[-1])
    best = float(np.trapezoid(y_perfect, x_perfect)) - random_area
    if best == 0:
        return float("nan")
    return (float(np.trapezoid(actual[1], actual[0])) - random_area) / best


def perfect_qini_curve(y_true, treatment, *, negative_effect: bool = True):
    """The best Qini curve the data allow (as ``sklift.metrics.perfect_qini_curve``).

    With `negative_effect`, customers are ranked by ``y`` if treated and ``-y`` if control:
    treated responders first, control responders (who respond without the treatment) last.
    Without it, the curve rises straight to the total uplift and stays there.
    """
    y, t = _as_vector("y_true", y_true), _as_vector("treatment", treatment)
    if negative_effect:
        return qini_curve(y, y * t - y * (1 - t), t)
    _, _, t = _inputs(y, np.zeros_like(y), t)
    total = y[t == 1].sum() - (t == 1).sum() * y[t == 0].sum() / (t == 0).sum()
    return np.array([0.0, total, y.size]), np.array([0.0, total, total])


def perfect_uplift_curve(y_true, treatment):
    """The best uplift curve for a binary outcome (as ``sklift.metrics.perfect_uplift_curve``):
    treated responders and control non-responders first, then control responders or treated
    non-responders, whichever group is smaller first."""
    y, _, t = _inputs(y_true, np.zeros(np.size(y_true)), treatment)
    if not _is_binary(y):
        raise UpliftInputError(
            "the perfect uplift curve (and so uplift_auc_score) is defined for a binary 0/1 "
            "outcome; for a continuous outcome use qini_auc_score or uplift_curve"
        )
    control_responders = np.sum((y == 1) & (t == 0))
    treated_non_responders = np.sum((y == 0) & (t == 1))
    summand = y if control_responders > treated_non_responders else t
    return uplift_curve(y, 2.0 * (y == t) + summand, t)


def qini_auc_score(y_true, uplift, treatment, *, negative_effect: bool = True) -> float:
    """Qini coefficient: area between the Qini curve and the random line, over the same area of
    the perfect Qini curve (as ``sklift.metrics.qini_auc_score``). 1 is a perfect ranking, about
    0 a random one, negative a ranking worse than random. NaN when no ranking can beat random
    (for example, no customer responded).

    Works for binary and continuous outcomes (the perfect ranking puts treated customers by
    descending outcome first and control customers by descending outcome last).
    """
    if not isinstance(negative_effect, bool):
        raise UpliftInputError(f"negative_effect must be True or False, got {negative_effect!r}")
    actual = qini_curve(y_true, uplift, treatment)
    return _normalised_area(
        actual, perfect_qini_curve(y_true, treatment, negative_effect=negative_effect)
    )


def uplift_auc_score(y_true, uplift, treatment) -> float:
    """Normalised area under the uplift curve, AUUC (as ``sklift.metrics.uplift_auc_score``):
    (area - random) / (perfect area - random). Binary outcomes only (see `perfect_uplift_curve`).
    """
    actual = uplift_curve(y_true, uplift, treatment)
    return _normalised_area(actual, perfect_uplift_curve(y_true, treatment))


# --------------------------------------------------------------------------------- top k, bins


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def _rows_for(k, n: int) -> int:
    """Rows in the top `k`: a float share in (0, 1) (rounded down) or a count in (0, n)."""
    if isinstance(k, bool) or not isinstance(k, Real):
        raise UpliftInputError(f"k must be a share in (0, 1) or a row count, got {k!r}")
    if isinstance(k, Integral):
        if not 0 < k < n:
            raise UpliftInputError(f"k={k} rows must be between 1 and {n - 1:,}")
        return int(k)
    if not 0 < k < 1:
        raise UpliftInputError(f"k={k} must be a share strictly between 0 and 1")
    return int(n * k)


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise UpliftInputError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")


def uplift_at_k(y_true, uplift, treatment, *, k: float | int = 0.3, strategy: str = "overall"):
    """Mean outcome of treated minus control customers among the top `k` by score (as
    ``sklift.metrics.uplift_at_k``).

    Parameters
    ----------
    k : float or int
        Share of customers in (0, 1), rounded down to whole rows, or a number of rows.
    strategy : {"overall", "by_group"}
        ``overall``: the top k of all customers, then compare the groups within it.
        ``by_group``: the top k share (or count) of the treated and of the control separately.

    Returns
    -------
    float
        The difference of means; NaN when one group has no row in the top k.
    """
    _check_strategy(strategy)
    y, _, t = _ranked(*_inputs(y_true, uplift, treatment))
    if strategy == "overall":
        top = _rows_for(k, y.size)
        y, t = y[:top], t[:top]
        return _mean(y[t == 1]) - _mean(y[t == 0])
    treated, control = y[t == 1], y[t == 0]
    _rows_for(k, y.size)  # validates k
    if isinstance(k, Integral):
        if k > min(treated.size, control.size):
            raise UpliftInputError(
                f"k={k} rows per group, but the groups have {treated.size:,} treated and "
                f"{control.size:,} control rows"
            )
        n_t = n_c = int(k)
    else:
        n_t, n_c = int(treated.size * k), int(control.size * k)
    return _mean(treated[:n_t]) - _mean(control[:n_c])


def _bin_stats(y_bins: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: rows, mean, variance of the mean (plug-in variance / rows)."""
    n = np.array([b.size for b in y_bins])
    mean = np.array([_mean(b) for b in y_bins])
    var = np.array([float(b.var()) / b.size if b.size else float("nan") for b in y_bins])
    return n, mean, var


def uplift_by_percentile(
    y_true,
    uplift,
    treatment,
    *,
    bins: int = 10,
    strategy: str = "overall",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per score bin (top bin first): rows and mean outcome per group, uplift and a confidence
    interval (as ``sklift.metrics.uplift_by_percentile`` with ``std=True``, plus the interval).

    Bins are ``numpy.array_split`` of the ranked rows (the first bins get one more row when the
    count does not divide). The uplift's variance is that of a difference of two independent
    means, ``v_t / n_t + v_c / n_c`` with the plug-in (ddof=0) variances, which is sklift's
    ``p (1 - p) / n`` for a binary outcome; the interval is the normal approximation
    ``uplift +- z * sqrt(variance)``.

    Returns
    -------
    pandas.DataFrame
        Columns ``percentile`` ("0-10", ...), ``n_treatment``, ``n_control``,
        ``response_treatment``, ``response_control`` (rates for a binary outcome, means
        otherwise), ``uplift``, ``std_treatment``, ``std_control``, ``std_uplift``, ``ci_low``,
        ``ci_high``. A bin without rows of a group has NaN means.
    """
    _check_strategy(strategy)
    y, _, t = _ranked(*_inputs(y_true, uplift, treatment))
    if isinstance(bins, bool) or not isinstance(bins, Integral) or not 0 < bins < y.size:
        raise UpliftInputError(f"bins must be an integer between 1 and {y.size - 1:,}, got {bins}")
    if not 0 < confidence < 1:
        raise UpliftInputError(f"confidence must be in (0, 1), got {confidence}")
    if strategy == "overall":
        rows = np.array_split(np.arange(y.size), bins)
        treated = [y[r][t[r] == 1] for r in rows]
        control = [y[r][t[r] == 0] for r in rows]
    else:
        treated = np.array_split(y[t == 1], bins)
        control = np.array_split(y[t == 0], bins)
    n_t, mean_t, var_t = _bin_stats(treated)
    n_c, mean_c, var_c = _bin_stats(control)
    edges = [round(p * 100 / bins) for p in range(bins + 1)]
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    uplift_values = mean_t - mean_c
    std_uplift = np.sqrt(var_t + var_c)
    return pd.DataFrame(
        {
            "percentile": [f"{a}-{b}" for a, b in pairwise(edges)],
            "n_treatment": n_t,
            "n_control": n_c,
            "response_treatment": mean_t,
            "response_control": mean_c,
            "uplift": uplift_values,
            "std_treatment": np.sqrt(var_t),
            "std_control": np.sqrt(var_c),
            "std_uplift": std_uplift,
            "ci_low": uplift_values - z * std_uplift,
            "ci_high": uplift_values + z * std_uplift,
        }
    )
