"""Candidate classifiers, their search spaces, time-ordered or stratified folds and sigmoid
calibration.

Every candidate takes ONE float32 matrix whose columns are the spec's features in order, so the
ONNX export has a single input. The logistic regression scales numeric columns and one-hot
encodes integer-coded categorical columns inside a ColumnTransformer; tree models take the
matrix as is. Class imbalance is handled with class weights ('balanced').
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import ParameterGrid, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from models_py._errors import ConfigError, InputDataError

logger = logging.getLogger(__name__)

#: Defaults applied before the spec's search space (the spec wins).
_DEFAULTS: dict[str, dict[str, Any]] = {
    # newton-cholesky: many rows, few columns (the feature marts): a few Newton steps where
    # lbfgs takes about a hundred (9x faster on 150k rows x 63 features). Its fully converged
    # coefficients can be large enough on small data to miss the ONNX parity gate (1.15e-5 on
    # a 5,000-customer demo); training then exports the next best candidate (_train.fit_target).
    "logistic_regression": {
        "C": 1.0,
        "max_iter": 2000,
        "class_weight": "balanced",
        "solver": "newton-cholesky",
    },
    "random_forest": {
        "n_estimators": 100,
        "max_depth": 10,
        "min_samples_leaf": 20,
        "max_features": "sqrt",
        "class_weight": "balanced_subsample",
        "n_jobs": 2,
    },
    "hist_gradient_boosting": {
        "max_iter": 200,
        "learning_rate": 0.1,
        "max_leaf_nodes": 31,
        "early_stopping": True,
        "n_iter_no_change": 10,
        "class_weight": "balanced",
    },
    "lightgbm": {
        "n_estimators": 200,
        "learning_rate": 0.05,
        "class_weight": "balanced",
        "n_jobs": 1,  # OpenMP spin-waits on a busy machine, as for HistGradientBoosting
    },
}

#: Hyperparameters refused before training because the export cannot be trusted.
_REFUSED: dict[str, dict[str, str]] = {
    "hist_gradient_boosting": {
        "categorical_features": (
            "HistGradientBoostingClassifier with categorical_features is refused: skl2onnx "
            "does not convert native categorical splits; leave the column integer-coded "
            "(trees split on it) or list it under `categorical:` for the logistic regression"
        ),
    },
    "logistic_regression": {},
    "random_forest": {},
    "lightgbm": {},
}


def lightgbm_available() -> bool:
    """LightGBM is an optional extra (``pip install .[lightgbm]``)."""
    return (
        importlib.util.find_spec("lightgbm") is not None
        and importlib.util.find_spec("onnxmltools") is not None
    )


def available_algorithms(names: Sequence[str]) -> list[str]:
    """The spec's algorithms that can run here (LightGBM is skipped when not installed)."""
    return [n for n in names if n != "lightgbm" or lightgbm_available()]


def _base_estimator(algorithm: str, params: Mapping[str, Any], random_state: int):
    merged = {**_DEFAULTS[algorithm], **params}
    if algorithm == "logistic_regression":
        return LogisticRegression(random_state=random_state, **merged)
    if algorithm == "random_forest":
        return RandomForestClassifier(random_state=random_state, **merged)
    if algorithm == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(random_state=random_state, **merged)
    if algorithm == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(random_state=random_state, verbose=-1, **merged)
    raise ConfigError(f"unknown algorithm {algorithm!r}")


def build_estimator(
    algorithm: str,
    params: Mapping[str, Any],
    *,
    n_features: int,
    categorical_idx: Sequence[int] = (),
    random_state: int = 0,
):
    """An unfitted estimator taking the full float32 feature matrix.

    Parameters
    ----------
    algorithm : str
        One of ``logistic_regression``, ``random_forest``, ``hist_gradient_boosting``, ``lightgbm``.
    params : Mapping
        Hyperparameters (merged over the package defaults).
    n_features : int
        Number of columns of the input matrix.
    categorical_idx : sequence of int
        Columns holding integer-coded categories (one-hot encoded for the logistic regression).
    """
    clf = _base_estimator(algorithm, params, random_state)
    if algorithm != "logistic_regression":
        return clf
    cat = sorted(set(categorical_idx))
    num = [i for i in range(n_features) if i not in cat]
    transformers: list[tuple[str, Any, list[int]]] = []
    if num:
        transformers.append(("numeric", StandardScaler(), num))
    if cat:
        transformers.append(
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cat)
        )
    prep = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("prep", prep), ("clf", clf)])


def final_classifier(estimator):
    """The classifier at the end of a pipeline (the object ONNX options are keyed on)."""
    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator


def validate_candidate(
    algorithm: str, grid: Mapping[str, Sequence[Any]], *, spec_name: str = "?"
) -> None:
    """Refuse known-bad settings and unknown hyperparameters before any training starts."""
    for key, message in _REFUSED.get(algorithm, {}).items():
        if key in grid and any(v is not None for v in grid[key]):
            raise ConfigError(f"model spec {spec_name!r}: {message}")
    if algorithm == "lightgbm" and not lightgbm_available():
        return  # cannot check parameter names without the package; skipped at training time
    probe = _base_estimator(algorithm, {}, 0)
    valid = set(probe.get_params())
    for key in grid:
        if key not in valid:
            raise ConfigError(
                f"model spec {spec_name!r}: {key!r} is not a hyperparameter of {algorithm} "
                f"({type(probe).__name__}); valid: {', '.join(sorted(valid))}"
            )
    for params in ParameterGrid(dict(grid)):
        est = _base_estimator(algorithm, params, 0)
        try:
            # scikit-learn's own parameter constraints (LightGBM's sklearn wrapper inherits
            # `_validate_params` but declares no constraints: its values are checked at fit).
            if hasattr(est, "_parameter_constraints"):
                est._validate_params()
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"model spec {spec_name!r}: invalid {algorithm} hyperparameters {params}: {exc}"
            ) from exc


# -------------------------------------------------------------------------------- temporal folds


def temporal_folds(
    cutoffs: np.ndarray, *, n_folds: int, min_train_cutoffs: int = 1
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over the training cutoffs.

    The newest `n_folds` cutoffs each validate once; each fold trains on every row whose cutoff is
    strictly earlier than the validation cutoff, so no fold ever trains on a cutoff later than or
    equal to the one it is validated on. Cutoffs with fewer than `min_train_cutoffs` earlier
    cutoffs are not used for validation.

    Returns
    -------
    list of (train_indices, validation_indices)
        Oldest fold first.
    """
    cutoffs = np.asarray(cutoffs)
    unique = np.unique(cutoffs)
    candidates = unique[min_train_cutoffs:]
    chosen = candidates[-n_folds:] if n_folds > 0 else candidates[:0]
    folds = []
    for c in chosen:
        train_idx = np.flatnonzero(cutoffs < c)
        val_idx = np.flatnonzero(cutoffs == c)
        folds.append((train_idx, val_idx))
    return folds


# ------------------------------------------------------------------------------------- search


@dataclass
class SearchResult:
    """The best hyperparameters of one algorithm and the fold scores of every configuration."""

    algorithm: str
    best_params: dict[str, Any]
    best_score: float | None
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    #: Stratified k-fold only: the rows searched (indices into the input), the best
    #: configuration's out-of-fold positive-class probabilities on them, and its fold AUCs.
    oof_index: np.ndarray | None = None
    oof_proba: np.ndarray | None = None
    fold_auc: list[float] = field(default_factory=list)


def _fit(estimator, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None):
    """Fit, passing sampling weights to the classifier (a pipeline's last step) when given.

    Histogram gradient boosting is fitted unweighted: with weights, scikit-learn finds its bin
    thresholds by one weighted percentile per bin and feature, which made a fit on the demo's
    60k label-stratified rows 3-4x slower (party: 7.7 against 2.2 CPU s), and the unweighted fit
    on the same rows ranked as well (test ROC AUC 0.9183 against 0.9173 on party, +0.0001 to
    +0.0010 on four groups). Platt scaling on the uniform validation rows restores its
    probabilities, as for the class-balanced logistic regression."""
    if isinstance(final_classifier(estimator), HistGradientBoostingClassifier):
        sample_weight = None
    if sample_weight is None:
        return estimator.fit(X, y)
    if isinstance(estimator, Pipeline):
        return estimator.fit(X, y, **{f"{estimator.steps[-1][0]}__sample_weight": sample_weight})
    return estimator.fit(X, y, sample_weight=sample_weight)


def fit_estimator(estimator, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None):
    """Fit a candidate for export: LightGBM thresholds are then made float32-exact.

    LightGBM learns double thresholds; ONNX tree ensembles compare the float32 input with float32
    thresholds, so a value between the two went the other way (0.0004 probability difference
    measured on the demo's kitchen group). Every double threshold t is replaced by the largest
    float32 <= t: for float32 inputs, ``x <= t`` and ``x <= that float`` are the same test, so
    the model's predictions do not change and the export compares exactly the same way.
    """
    _fit(estimator, X, y, sample_weight)
    clf = final_classifier(estimator)
    if type(clf).__name__ == "LGBMClassifier":
        _float32_lightgbm_thresholds(clf)
    return estimator


def _float32_lightgbm_thresholds(clf) -> None:
    from lightgbm import Booster

    lines = clf.booster_.model_to_string().split("\n")
    for i, line in enumerate(lines):
        if not line.startswith("threshold="):
            continue
        t = np.array([float(v) for v in line[len("threshold=") :].split()], dtype=np.float64)
        t32 = t.astype(np.float32)
        above = t32.astype(np.float64) > t
        t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
        lines[i] = "threshold=" + " ".join(repr(float(v)) for v in t32)
    # `tree_sizes` holds each tree's byte length, which the new threshold text changes; without
    # it LightGBM parses the trees one after the other.
    lines = [line for line in lines if not line.startswith("tree_sizes=")]
    clf._Booster = Booster(model_str="\n".join(lines))


def search_algorithm(
    algorithm: str,
    grid: Mapping[str, Sequence[Any]],
    X: np.ndarray,
    y: np.ndarray,
    cutoffs: np.ndarray,
    *,
    n_folds: int,
    categorical_idx: Sequence[int],
    random_state: int,
    max_rows: int | None = None,
    sample_weight: np.ndarray | None = None,
) -> SearchResult:
    """Grid search scored by mean ROC AUC over expanding-window temporal folds.

    With a single configuration, or fewer than two training cutoffs, no folds are run and the
    first configuration is used. With `max_rows`, the search runs on a uniform random subsample
    of that many train rows (every cutoff keeps its share); the final refit uses all rows.
    Sampling weights, when given, weigh both the fits and the fold AUCs.
    """
    started = time.perf_counter()
    configs = list(ParameterGrid(dict(grid))) or [{}]
    w = sample_weight
    if max_rows is not None and len(y) > max_rows and len(configs) > 1:
        keep = np.sort(np.random.default_rng(random_state).choice(len(y), max_rows, replace=False))
        X, y, cutoffs = X[keep], y[keep], cutoffs[keep]
        w = None if w is None else w[keep]
    folds = temporal_folds(cutoffs, n_folds=n_folds)
    folds = [
        (tr, va) for tr, va in folds if len(np.unique(y[tr])) == 2 and len(np.unique(y[va])) == 2
    ]
    if len(configs) == 1 or not folds:
        if len(configs) > 1:
            logger.info("%s: no temporal folds available; using the first configuration", algorithm)
        return SearchResult(algorithm, dict(configs[0]), None, [], time.perf_counter() - started)
    trials = []
    for params in configs:
        scores = []
        for tr, va in folds:
            est = build_estimator(
                algorithm,
                params,
                n_features=X.shape[1],
                categorical_idx=categorical_idx,
                random_state=random_state,
            )
            _fit(est, X[tr], y[tr], None if w is None else w[tr])
            p = est.predict_proba(X[va])[:, 1]
            scores.append(
                float(roc_auc_score(y[va], p, sample_weight=None if w is None else w[va]))
            )
        trials.append(
            {"params": dict(params), "fold_auc": scores, "mean_auc": float(np.mean(scores))}
        )
    best = max(trials, key=lambda t: t["mean_auc"])
    return SearchResult(
        algorithm, best["params"], best["mean_auc"], trials, time.perf_counter() - started
    )


def stratified_folds(
    y: np.ndarray, *, n_folds: int, random_state: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffled stratified k folds (for tables without a time axis).

    Raises
    ------
    InputDataError
        When a class has fewer rows than folds.
    """
    y = np.asarray(y)
    smallest = int(min((y == 0).sum(), (y == 1).sum()))
    if smallest < n_folds:
        raise InputDataError(
            f"stratified {n_folds}-fold validation needs at least {n_folds} rows of each class "
            f"in the training share; the smaller class has {smallest}. Lower search.folds or "
            "test_share, or add rows"
        )
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    return list(skf.split(np.zeros((len(y), 1)), y))


def kfold_search(
    algorithm: str,
    grid: Mapping[str, Sequence[Any]],
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_folds: int,
    categorical_idx: Sequence[int],
    random_state: int,
    max_rows: int | None = None,
) -> SearchResult:
    """Grid search scored by mean ROC AUC over shuffled stratified k folds.

    Every configuration is cross-validated (even a single one: its out-of-fold predictions
    calibrate the model and choose its threshold). With `max_rows`, the folds run on a stratified
    random subsample of that many rows; the caller refits on all rows.
    """
    started = time.perf_counter()
    configs = list(ParameterGrid(dict(grid))) or [{}]
    index = np.arange(len(y))
    if max_rows is not None and len(y) > max_rows:
        rng = np.random.default_rng(random_state)
        parts = []
        for cls in (0, 1):
            members = np.flatnonzero(y == cls)
            take = max(n_folds, round(max_rows * len(members) / len(y)))
            parts.append(rng.choice(members, min(take, len(members)), replace=False))
        index = np.sort(np.concatenate(parts))
    Xs, ys = X[index], y[index]
    folds = stratified_folds(ys, n_folds=n_folds, random_state=random_state)
    trials = []
    best: tuple[float, dict[str, Any], np.ndarray, list[float]] | None = None
    for params in configs:
        oof = np.empty(len(ys), dtype=np.float64)
        scores = []
        for tr, va in folds:
            est = build_estimator(
                algorithm,
                params,
                n_features=X.shape[1],
                categorical_idx=categorical_idx,
                random_state=random_state,
            )
            _fit(est, Xs[tr], ys[tr])
            oof[va] = est.predict_proba(Xs[va])[:, 1]
            scores.append(float(roc_auc_score(ys[va], oof[va])))
        mean = float(np.mean(scores))
        trials.append({"params": dict(params), "fold_auc": scores, "mean_auc": mean})
        if best is None or mean > best[0]:
            best = (mean, dict(params), oof, scores)
    assert best is not None
    return SearchResult(
        algorithm,
        best[1],
        best[0],
        trials,
        time.perf_counter() - started,
        oof_index=index,
        oof_proba=best[2],
        fold_auc=best[3],
    )


# -------------------------------------------------------------------------------- calibration


class SigmoidCalibratedClassifier(ClassifierMixin, BaseEstimator):
    """Platt scaling of an already fitted binary classifier, fitted on a later period.

    The positive-class probability p of `estimator` is mapped to
    ``sigmoid(coef_ * logit(clip(p, eps, 1 - eps)) + intercept_)``. Unlike
    ``CalibratedClassifierCV(FrozenEstimator(...))`` this exports to ONNX as the base model's graph
    plus five elementwise nodes (see `models_py.training._export`), so parity is exact to float32.

    Parameters
    ----------
    estimator : fitted classifier
        Left untouched by `fit` (prefit).
    eps : float
        Probabilities are clipped to [eps, 1 - eps] before the logit.
    """

    def __init__(self, estimator=None, *, eps: float = 1e-6):
        self.estimator = estimator
        self.eps = eps

    def _logit(self, X: np.ndarray) -> np.ndarray:
        p = self.estimator.predict_proba(X)[:, 1].astype(np.float64)
        p = np.clip(p, self.eps, 1 - self.eps)
        return np.log(p) - np.log1p(-p)

    def fit(self, X: np.ndarray, y: np.ndarray) -> SigmoidCalibratedClassifier:
        return self.fit_scores(self.estimator.predict_proba(X)[:, 1], y)

    def fit_scores(self, p: np.ndarray, y: np.ndarray) -> SigmoidCalibratedClassifier:
        """Fit the sigmoid on given positive-class probabilities (e.g. out-of-fold predictions
        of the same configuration, as ``CalibratedClassifierCV(ensemble=False)`` does)."""
        p = np.clip(np.asarray(p, dtype=np.float64), self.eps, 1 - self.eps)
        f = (np.log(p) - np.log1p(-p)).reshape(-1, 1)
        lr = LogisticRegression(C=1e6, max_iter=1000)
        lr.fit(f, y)
        self.coef_ = float(lr.coef_[0, 0])
        self.intercept_ = float(lr.intercept_[0])
        self.classes_ = np.asarray(self.estimator.classes_)
        return self

    def calibrate(self, p: np.ndarray) -> np.ndarray:
        """The fitted sigmoid applied to positive-class probabilities of the base estimator."""
        p = np.clip(np.asarray(p, dtype=np.float64), self.eps, 1 - self.eps)
        z = self.coef_ * (np.log(p) - np.log1p(-p)) + self.intercept_
        return 1.0 / (1.0 + np.exp(-z))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = self.coef_ * self._logit(X) + self.intercept_
        q = 1.0 / (1.0 + np.exp(-z))
        return np.column_stack([1.0 - q, q])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]
