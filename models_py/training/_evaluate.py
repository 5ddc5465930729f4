"""Evaluation: threshold choice, metrics at the threshold, lift by decile, calibration bins,
permutation importance. Everything returns plain rows that the registry writes to schema `ml`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

from models_py.training._specs import ThresholdRule

logger = logging.getLogger(__name__)


def choose_threshold(y: np.ndarray, p: np.ndarray, rule: ThresholdRule) -> tuple[float, str]:
    """The decision threshold on validation probabilities, and a note on how it was found.

    ``max_f1``: the probability maximising F1 (predicted positive when p >= threshold).
    ``precision_at``: the lowest threshold whose precision reaches the target; when no threshold
    reaches it, the one with the highest precision (the note says so).
    """
    precision, recall, thresholds = precision_recall_curve(y, p)
    # precision/recall have one more entry than thresholds (the (1, 0) end point).
    precision, recall = precision[:-1], recall[:-1]
    if len(thresholds) == 0:
        return 0.5, "degenerate validation scores: default 0.5"
    if rule.kind == "max_f1":
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
        i = int(np.argmax(f1))
        return float(thresholds[i]), f"max F1 {f1[i]:.4f} on validation"
    target = float(rule.value or 0.5)
    ok = np.flatnonzero(precision >= target)
    if ok.size:
        i = int(ok[0])  # thresholds ascend: the first reaching the target keeps most recall
        return float(thresholds[i]), f"precision {precision[i]:.4f} >= {target} on validation"
    i = int(np.argmax(precision))
    logger.warning(
        "no threshold reaches precision %.2f on validation; using the most precise one (%.3f)",
        target,
        precision[i],
    )
    return float(thresholds[i]), f"precision {target} unreachable; best {precision[i]:.4f}"


def binary_metrics(
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    *,
    oracle: np.ndarray | None = None,
    observable_oracle: np.ndarray | None = None,
) -> dict[str, Any]:
    """ROC AUC, PR AUC (average precision), log loss, Brier, base rate, and the confusion matrix,
    precision, recall and F1 at `threshold` (predicted positive when p >= threshold).

    With `oracle` (true probabilities of generated data, NaN where unknown) also
    ``oracle_roc_auc``, and with `observable_oracle` (the best probability reachable from the
    observable history, docs/oracle.md) ``observable_oracle_roc_auc``, each on the rows where it
    is known."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    pred = (p >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    both = len(np.unique(y)) == 2
    out: dict[str, Any] = {
        "examples": len(y),
        "positives": int(y.sum()),
        "base_rate": float(y.mean()) if len(y) else float("nan"),
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "pr_auc": float(average_precision_score(y, p)) if both else None,
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "threshold": float(threshold),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "true_positives": int(tp),
        "false_positives": int(fp),
        "true_negatives": int(tn),
        "false_negatives": int(fn),
        "oracle_roc_auc": _auc_where_known(y, oracle, "oracle") if both else None,
        "observable_oracle_roc_auc": (
            _auc_where_known(y, observable_oracle, "observable oracle") if both else None
        ),
    }
    return out


def _auc_where_known(y: np.ndarray, reference: np.ndarray | None, what: str) -> float | None:
    """ROC AUC of `reference` probabilities on the rows where they are not NaN (None if none)."""
    if reference is None:
        return None
    mask = ~np.isnan(reference)
    if mask.sum() == len(y):
        return float(roc_auc_score(y, reference))
    if mask.any() and len(np.unique(y[mask])) == 2:
        logger.info("%s probabilities found for %d of %d rows", what, mask.sum(), len(y))
        return float(roc_auc_score(y[mask], reference[mask]))
    return None


def lift_by_decile(y: np.ndarray, p: np.ndarray, *, n_bins: int = 10) -> list[dict[str, Any]]:
    """Rows sorted by descending score, cut into `n_bins` equal-count bins (decile 1 = top).

    Ties are broken by row order (stable sort), so the deciles always hold equal counts (±1).
    Lift = response rate of the decile / overall base rate; cumulative gains = share of all
    positives captured in deciles 1..d.
    """
    y = np.asarray(y).astype(int)
    order = np.argsort(-np.asarray(p, dtype=np.float64), kind="stable")
    n = len(y)
    decile = np.empty(n, dtype=int)
    decile[order] = np.arange(n) * n_bins // max(n, 1) + 1
    base = float(y.mean()) if n else float("nan")
    total_pos = int(y.sum())
    rows = []
    cum_customers = cum_pos = 0
    for d in range(1, n_bins + 1):
        mask = decile == d
        customers = int(mask.sum())
        positives = int(y[mask].sum())
        cum_customers += customers
        cum_pos += positives
        rate = positives / customers if customers else 0.0
        cum_rate = cum_pos / cum_customers if cum_customers else 0.0
        rows.append(
            {
                "decile": d,
                "customers": customers,
                "positives": positives,
                "response_rate": rate,
                "lift": rate / base if base else None,
                "cumulative_customers": cum_customers,
                "cumulative_positives": cum_pos,
                "cumulative_gains": cum_pos / total_pos if total_pos else None,
                "cumulative_lift": cum_rate / base if base else None,
            }
        )
    return rows


def curve_points(y: np.ndarray, p: np.ndarray, *, max_points: int = 200) -> list[dict[str, Any]]:
    """ROC (x = false positive rate, y = true positive rate) and precision-recall (x = recall,
    y = precision) curves from scikit-learn, thinned to at most `max_points` points each, for the
    report. Empty when `y` has a single class."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        return []
    fpr, tpr, roc_thr = roc_curve(y, p)
    precision, recall, pr_thr = precision_recall_curve(y, p)
    pr_thr = np.append(pr_thr, np.nan)  # sklearn returns one threshold fewer than points
    rows: list[dict[str, Any]] = []
    for curve, xs, ys, thr in (("roc", fpr, tpr, roc_thr), ("pr", recall, precision, pr_thr)):
        keep = np.unique(np.linspace(0, len(xs) - 1, min(max_points, len(xs))).astype(int))
        for i, k in enumerate(keep):
            t = float(thr[k])
            rows.append(
                {
                    "curve": curve,
                    "point": i,
                    "x": float(xs[k]),
                    "y": float(ys[k]),
                    "threshold": t if np.isfinite(t) else None,
                }
            )
    return rows


def calibration_bins(y: np.ndarray, p: np.ndarray, *, n_bins: int = 10) -> list[dict[str, Any]]:
    """Uniform probability bins on [0, 1] (as ``sklearn.calibration.calibration_curve`` with
    ``strategy='uniform'``); empty bins are omitted."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.searchsorted(edges[1:-1], p, side="right")
    rows = []
    for b in range(n_bins):
        mask = idx == b
        if not mask.any():
            continue
        rows.append(
            {
                "bin": b + 1,
                "bin_lower": float(edges[b]),
                "bin_upper": float(edges[b + 1]),
                "examples": int(mask.sum()),
                "mean_predicted": float(p[mask].mean()),
                "observed_rate": float(y[mask].mean()),
            }
        )
    return rows


def permutation_importance_rows(
    model,
    X: np.ndarray,
    y: np.ndarray,
    feature_names: Sequence[str],
    *,
    max_rows: int,
    n_repeats: int = 3,
    random_state: int = 0,
) -> list[dict[str, Any]]:
    """Permutation importance (drop in ROC AUC) on a stratified test subsample of `max_rows`."""
    from sklearn.inspection import permutation_importance

    if max_rows <= 0 or len(np.unique(y)) < 2:
        return []
    rng = np.random.default_rng(random_state)
    if len(y) > max_rows:
        pos = np.flatnonzero(y == 1)
        neg = np.flatnonzero(y == 0)
        n_pos = max(1, round(max_rows * len(pos) / len(y)))
        idx = np.concatenate(
            [
                rng.choice(pos, n_pos, replace=False),
                rng.choice(neg, max_rows - n_pos, replace=False),
            ]
        )
        X, y = X[idx], y[idx]
    result = permutation_importance(
        model, X, y, scoring="roc_auc", n_repeats=n_repeats, random_state=random_state, n_jobs=1
    )
    order = np.argsort(-result.importances_mean, kind="stable")
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(1, len(order) + 1)
    return [
        {
            "feature_name": name,
            "importance_mean": float(result.importances_mean[i]),
            "importance_std": float(result.importances_std[i]),
            "importance_rank": int(rank[i]),
            "method": f"permutation_roc_auc_{len(y)}_rows_{n_repeats}_repeats",
        }
        for i, name in enumerate(feature_names)
    ]
