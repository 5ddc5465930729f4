"""Reference distributions: how each feature and the calibrated score were distributed on a
model's training rows, stored with the model so the drift marts (marts.fct_feature_drift,
marts.fct_score_drift) can compare every scoring cutoff with them.

Values are binned as the model sees them: as float32 (the training matrix and the scoring UDF's
input are float32; the score is rounded to float32 too), so SQL comparing ``cast(x as float)``
with the stored edges puts every value in the same bin as numpy does here.

Numeric bins (``numeric`` features and the ``score``) are half-open ``[bin_lower, bin_upper)``:

- a ``below`` bin (no lower edge) for values under the smallest training value, and an
  ``above`` bin (no upper edge) for values over the largest one: both hold no training rows, so
  a new range of values shows up as mass in a bin the reference does not have;
- between them, bins closed by the training quantiles 1/n, ..., (n-1)/n (inverted CDF: each a
  training value; equal quantiles collapse into one bin), or one bin per distinct value when a
  feature has at most n of them. An interior edge lies halfway between the value closing a bin
  and the next training value; the first bin starts at the smallest training value, the last
  ends just above the largest (its float32 successor).

Categorical features get one bin per training value (the `MAX_CATEGORIES` most frequent; the
others go to the ``other`` bin) and an ``other`` bin (no category) for values not seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Quantile bins per numeric feature and for the score.
N_BINS = 10
#: Categories kept per categorical feature (by training share); the rest fall in ``other``.
MAX_CATEGORIES = 50
#: The `feature_name` of the score's rows (`feature_kind` ``score``).
SCORE_NAME = "score"


def _weights(n: int, weights: np.ndarray | None) -> np.ndarray:
    if weights is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights has shape {w.shape}, expected ({n},)")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    return w


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Inverted-CDF quantiles: for each q the smallest value whose cumulative weight share
    reaches q (with unit weights, ``np.quantile(values, qs, method='inverted_cdf')``)."""
    distinct, mass, _ = _distinct(np.asarray(values), np.asarray(weights, dtype=np.float64))
    return _quantiles(distinct, mass, qs)


def _distinct(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted distinct values of `x` with their total weight and their number of rows."""
    distinct, inverse = np.unique(x, return_inverse=True)
    mass = np.bincount(inverse, weights=w, minlength=distinct.size)
    return distinct, mass, np.bincount(inverse, minlength=distinct.size)


def _quantiles(distinct: np.ndarray, mass: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    cum = np.cumsum(mass)
    # a small relative tolerance so q * total equal to a cumulative sum (unit weights) matches it
    targets = np.asarray(qs, dtype=np.float64) * cum[-1] * (1 - 1e-12)
    return distinct[np.minimum(np.searchsorted(cum, targets, side="left"), distinct.size - 1)]


def _edges(distinct: np.ndarray, mass: np.ndarray, bins: int) -> np.ndarray:
    """`numeric_edges` from the sorted distinct values (float32) and their positive weights."""
    if distinct.size <= bins:
        cuts = distinct[:-1]
    else:
        cuts = np.unique(_quantiles(distinct, mass, [k / bins for k in range(1, bins)]))
        cuts = cuts[cuts < distinct[-1]]
    after = distinct[np.searchsorted(distinct, cuts, side="right")]
    middle = ((cuts.astype(np.float64) + after) / 2).astype(np.float32)
    # halfway between two neighbouring float32 values rounds to one of them: then the next one
    interior = np.where(middle > cuts, middle, after)
    top = np.nextafter(distinct[-1], np.float32(np.inf))
    return np.concatenate([distinct[:1], interior, [top]]).astype(np.float32)


def numeric_edges(values: np.ndarray, weights: np.ndarray | None = None, *, bins: int = N_BINS):
    """The in-range bin edges of `values` (float32): ``edges[i] <= x < edges[i + 1]`` is in-range
    bin i; ``x < edges[0]`` (the smallest value) is below, ``x >= edges[-1]`` (just above the
    largest value) above the training range.

    The cut values are the quantiles (or every distinct value but the largest, for a feature with
    at most `bins` of them); each closes its bin, and the edge after it lies halfway to the next
    training value, so no training value sits on an interior edge and a value that moves by less
    than half a gap (float rounding of a score, say) stays in its bin.
    """
    x = np.asarray(values, dtype=np.float32)
    if x.size == 0:
        raise ValueError("no values to bin")
    distinct, mass, _ = _distinct(x, _weights(x.size, weights))
    return _edges(distinct[mass > 0], mass[mass > 0], bins)


def numeric_rows(
    values: np.ndarray, weights: np.ndarray | None = None, *, bins: int = N_BINS
) -> list[dict[str, Any]]:
    """Bin rows of a numeric feature (or the score): below, the in-range bins, above."""
    x = np.asarray(values, dtype=np.float32)
    if x.size == 0:
        raise ValueError("no values to bin")
    distinct, mass, rows = _distinct(x, _weights(x.size, weights))
    edges = _edges(distinct[mass > 0], mass[mass > 0], bins)
    index = np.searchsorted(edges, distinct, side="right")  # 0 = below, len(edges) = above
    counts = np.bincount(index, weights=rows, minlength=edges.size + 1)
    shares = np.bincount(index, weights=mass, minlength=edges.size + 1) / mass.sum()
    bounds = [None, *(float(e) for e in edges), None]
    return [
        {
            "bin": b,
            "bin_lower": bounds[b],
            "bin_upper": bounds[b + 1],
            "category": None,
            "reference_rows": int(counts[b]),
            "reference_share": float(shares[b]),
        }
        for b in range(edges.size + 1)
    ]


def categorical_rows(
    values: np.ndarray, weights: np.ndarray | None = None, *, max_categories: int = MAX_CATEGORIES
) -> list[dict[str, Any]]:
    """Bin rows of a categorical feature: one per category (ascending), then ``other``."""
    x = np.asarray(values, dtype=np.float32)
    w = _weights(x.size, weights)
    cats, inverse = np.unique(x, return_inverse=True)
    mass = np.bincount(inverse, weights=w, minlength=cats.size)
    counts = np.bincount(inverse, minlength=cats.size)
    kept = np.sort(np.argsort(-mass, kind="stable")[:max_categories])
    rows = [
        {
            "bin": b,
            "bin_lower": None,
            "bin_upper": None,
            "category": float(cats[c]),
            "reference_rows": int(counts[c]),
            "reference_share": float(mass[c] / w.sum()),
        }
        for b, c in enumerate(kept)
    ]
    other = np.ones(cats.size, dtype=bool)
    other[kept] = False
    rows.append(
        {
            "bin": len(rows),
            "bin_lower": None,
            "bin_upper": None,
            "category": None,
            "reference_rows": int(counts[other].sum()),
            "reference_share": float(mass[other].sum() / w.sum()),
        }
    )
    return rows


def reference_rows(
    X: np.ndarray,
    feature_names: Sequence[str],
    score: np.ndarray,
    *,
    categorical: Sequence[str] = (),
    weights: np.ndarray | None = None,
    bins: int = N_BINS,
) -> list[dict[str, Any]]:
    """Every bin row of a model's reference: its features (columns of `X`) and its score.

    Parameters
    ----------
    X : ndarray of shape (n, len(feature_names))
        The training rows.
    feature_names : sequence of str
        Column names of `X`.
    score : ndarray of shape (n,)
        The calibrated score of each training row.
    categorical : sequence of str
        Features binned by category instead of quantiles.
    weights : ndarray of shape (n,), optional
        Sampling weights of the rows (unit weights when absent).
    bins : int
        Quantile bins per numeric feature and for the score.

    Returns
    -------
    list of dict
        Rows of ``ml.reference_distributions`` without the model's ids: ``feature_name``,
        ``feature_kind`` (numeric, categorical or score), ``bin``, ``bin_lower``, ``bin_upper``,
        ``category``, ``reference_rows``, ``reference_share``.
    """
    if X.shape != (len(score), len(feature_names)):
        raise ValueError(
            f"X has shape {X.shape}; expected ({len(score)}, {len(feature_names)}) for "
            f"{len(feature_names)} features and {len(score)} scores"
        )
    unknown = sorted(set(categorical) - set(feature_names))
    if unknown:
        raise ValueError(f"categorical feature(s) {', '.join(unknown)} are not in feature_names")
    rows: list[dict[str, Any]] = []
    for j, name in enumerate(feature_names):
        kind = "categorical" if name in categorical else "numeric"
        binned = (
            categorical_rows(X[:, j], weights)
            if kind == "categorical"
            else numeric_rows(X[:, j], weights, bins=bins)
        )
        rows += [{"feature_name": name, "feature_kind": kind, **r} for r in binned]
    rows += [
        {"feature_name": SCORE_NAME, "feature_kind": "score", **r}
        for r in numeric_rows(score, weights, bins=bins)
    ]
    return rows
