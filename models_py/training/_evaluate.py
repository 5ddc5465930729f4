"""Evaluation: threshold choice, metrics at the threshold, lift by decile, calibration bins,
permutation importance and mean |SHAP|. Everything returns plain rows that the registry writes
to schema `ml`."""

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


def importance_sample(y: np.ndarray, max_rows: int, *, random_state: int = 0) -> np.ndarray:
    """Indices of a label-stratified subsample of at most `max_rows` rows (all rows when there
    are fewer): the test rows both importances are computed on."""
    if len(y) <= max_rows:
        return np.arange(len(y))
    rng = np.random.default_rng(random_state)
    pos = np.flatnonzero(y == 1)
    neg = np.flatnonzero(y == 0)
    n_pos = max(1, round(max_rows * len(pos) / len(y)))
    return np.concatenate(
        [
            rng.choice(pos, n_pos, replace=False),
            rng.choice(neg, max_rows - n_pos, replace=False),
        ]
    )


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
    idx = importance_sample(y, max_rows, random_state=random_state)
    X, y = X[idx], y[idx]
    result = permutation_importance(
        model, X, y, scoring="roc_auc", n_repeats=n_repeats, random_state=random_state, n_jobs=1
    )
    return [
        {
            "feature_name": name,
            "importance_mean": float(result.importances_mean[i]),
            "importance_std": float(result.importances_std[i]),
            "importance_rank": int(rank),
            "method": f"permutation_roc_auc_{len(y)}_rows_{n_repeats}_repeats",
        }
        for i, (name, rank) in enumerate(
            zip(feature_names, _ranks(result.importances_mean), strict=True)
        )
    ]


def _ranks(values: np.ndarray) -> np.ndarray:
    """1 = the largest value (ties keep the feature order)."""
    order = np.argsort(-np.asarray(values), kind="stable")
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(1, len(order) + 1)
    return rank


def linear_shap_values(pipeline, X: np.ndarray) -> np.ndarray:
    """Exact SHAP values, in log-odds, of the logistic-regression pipeline (scaler and one-hot
    encoder in a ColumnTransformer, then the classifier) with `X` as the background: for a linear
    model of independent inputs the SHAP value of input j is ``coef_j * (z_j - mean(z_j))``
    (Lundberg and Lee 2017). A one-hot encoded feature gets the sum over its indicator columns
    (the SHAP value of the group of columns), so every value belongs to one feature."""
    prep, clf = pipeline.steps[0][1], pipeline.steps[-1][1]
    Z = np.asarray(prep.transform(X), dtype=np.float64)
    phi_columns = (Z - Z.mean(axis=0)) * np.asarray(clf.coef_, dtype=np.float64)[0]
    phi = np.zeros((X.shape[0], X.shape[1]))
    for name, transformer, columns in prep.transformers_:
        if name == "remainder" or transformer == "drop":
            continue
        out = prep.output_indices_[name]
        if hasattr(transformer, "categories_"):  # one output column per category, in order
            widths = [len(c) for c in transformer.categories_]
        else:
            widths = [1] * len(columns)
        start = out.start
        for column, width in zip(columns, widths, strict=True):
            phi[:, column] = phi_columns[:, start : start + width].sum(axis=1)
            start += width
    return phi


def mean_abs_shap_rows(
    *,
    algorithm: str,
    estimator,
    onnx_bytes: bytes,
    model_id: str,
    X: np.ndarray,
    feature_names: Sequence[str],
) -> list[dict[str, Any]]:
    """Mean |SHAP value| per feature of the base estimator (before its sigmoid calibration) over
    the rows `X`, which are also the background (node covers, feature means).

    Tree ensembles: exact path-dependent TreeSHAP of the exported ONNX trees (the method and units
    of ``fct_score_reasons``: log-odds for gradient boosting, probability for a random forest);
    without the optional ``shap`` package, Saabas path attributions (the method says so). The
    logistic regression: exact linear SHAP in log-odds (`linear_shap_values`). Ensembles (soft
    voting, stacking) get none: their members' SHAP values are in different units and do not add
    up to the ensemble's output.
    """
    from models_py.explain._trees import (
        ExplainError,
        build_explainer,
        parse_tree_ensemble,
        tree_shap_values,
    )
    from models_py.training._algorithms import ALGORITHMS

    known = ALGORITHMS.get(algorithm)
    if known is None or len(X) == 0:
        return []
    if known.is_tree:
        try:
            ens = parse_tree_ensemble(onnx_bytes, model_id=model_id, n_features=len(feature_names))
        except ExplainError as exc:  # a graph the explainer does not read: no mean |SHAP|
            logger.warning("no mean |SHAP| for %s: %s", model_id, exc)
            return []
        units = ens.units.replace("-", "_")
        try:
            values = tree_shap_values(ens, X, X)
            method = "tree_shap"
        except ExplainError:  # shap is not installed
            values = build_explainer(ens, X).contributions(X)
            method = "saabas"
    else:
        values = linear_shap_values(estimator, X)
        method, units = "linear_shap", "log_odds"
    mean_abs = np.abs(np.asarray(values, dtype=np.float64)).mean(axis=0)
    return [
        {
            "feature_name": name,
            "mean_abs_shap": float(mean_abs[i]),
            "shap_rank": int(rank),
            "shap_method": f"{method}_{units}_{len(X)}_rows",
        }
        for i, (name, rank) in enumerate(zip(feature_names, _ranks(mean_abs), strict=True))
    ]


def merge_importance(
    permutation: Sequence[dict[str, Any]], shap: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per feature with both importances (a side missing for a feature stays null)."""
    by_feature = {r["feature_name"]: dict(r) for r in permutation}
    for r in shap:
        by_feature.setdefault(r["feature_name"], {"feature_name": r["feature_name"]}).update(r)
    keys = list(dict.fromkeys(k for r in by_feature.values() for k in r))
    return [{k: r.get(k) for k in keys} for r in by_feature.values()]
