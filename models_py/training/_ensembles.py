"""Ensembles over a spec's fitted candidates: soft voting and stacking.

Both reuse the candidates as they were fitted on the training rows (no member is refitted), so an
ensemble costs a few predictions on the validation rows, and both export through skl2onnx's
`VotingClassifier` and `StackingClassifier` converters behind the same parity gate.

- ``soft_voting``: the mean of the members' positive-class probabilities. Nothing is fitted on
  the validation rows, so its validation ROC AUC compares fairly with the candidates'.
- ``stacking``: a logistic regression on the members' probabilities, fitted on the validation
  rows (the members never saw them). Its validation ROC AUC is out of fold (5 stratified folds of
  the validation rows, `cross_val_predict`), the model kept is fitted on all of them. Calibration
  then fits Platt scaling on the same validation rows: two more parameters on top of the
  meta-model's few, on tens of thousands of rows.

Without a time axis (`validation: stratified_kfold`) the members' out-of-fold probabilities of
the search (the same rows and folds for every candidate) take the validation rows' place: soft
voting averages them; stacking fits its logistic regression fold by fold on the other folds'
out-of-fold probabilities (nested: its own out-of-fold scores), and the model kept is fitted on
all of them. The ensemble's out-of-fold scores then calibrate it as a candidate's do.

An ensemble is chosen only when its validation ROC AUC beats the best single candidate's by the
spec's promotion margin (`choose_candidate`): two models that disagree by noise are not worth the
scoring cost of all of them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import StackingClassifier, VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from models_py.training._candidates import SearchResult, stratified_folds

#: Folds of the validation rows for the stacking meta-model's out-of-fold validation AUC.
STACKING_FOLDS = 5


@dataclass(frozen=True)
class FittedEnsemble:
    kind: str
    estimator: Any
    validation_auc: float
    members: tuple[str, ...]
    seconds: float


def _unfreeze(ensemble: VotingClassifier | StackingClassifier, members: Mapping[str, Any]):
    """Put the fitted members themselves in `estimators_`: `FrozenEstimator` (which makes `fit`
    keep them as they are) has no ONNX converter, the members do; predictions are unchanged."""
    ensemble.estimators_ = list(members.values())
    ensemble.named_estimators_ = dict(members)  # type: ignore[assignment]
    return ensemble


def _voting_classifier(members: Mapping[str, Any], X: np.ndarray, y: np.ndarray):
    """The soft-voting classifier over the fitted members (`fit` only records the classes)."""
    frozen = [(name, FrozenEstimator(est)) for name, est in members.items()]
    # flatten_transform=False: skl2onnx converts only the unflattened voting classifier.
    voting = VotingClassifier(frozen, voting="soft", flatten_transform=False).fit(X, y)
    return _unfreeze(voting, members)


def _stacking_classifier(
    members: Mapping[str, Any], X: np.ndarray, y: np.ndarray, P: np.ndarray
) -> StackingClassifier:
    """The stacking classifier over the fitted members whose meta-model is a logistic
    regression fitted on `P` (the members' probabilities of the rows `y` labels). `fit` would
    predict every row with every member again for the meta-model's input; those predictions are
    `P`, so the classifier is fitted on a few rows of each class (for its attributes) and its
    meta-model is then replaced."""
    frozen = [(name, FrozenEstimator(est)) for name, est in members.items()]
    few = np.concatenate([np.flatnonzero(y == c)[:STACKING_FOLDS] for c in (0, 1)])
    stack = StackingClassifier(
        frozen, final_estimator=LogisticRegression(), cv=2, stack_method="predict_proba"
    ).fit(X[few], y[few])
    stack = _unfreeze(stack, members)
    stack.final_estimator_ = LogisticRegression().fit(P, y)
    return stack


def soft_voting(
    members: Mapping[str, Any], X_va: np.ndarray, y_va: np.ndarray, p_va: Mapping[str, np.ndarray]
) -> FittedEnsemble:
    """Mean of the members' probabilities; `p_va` holds each member's validation probabilities."""
    started = time.perf_counter()
    voting = _voting_classifier(members, X_va, y_va)
    p = np.mean([p_va[name] for name in members], axis=0)
    auc = float(roc_auc_score(y_va, p))
    return FittedEnsemble("soft_voting", voting, auc, tuple(members), time.perf_counter() - started)


def stacking(
    members: Mapping[str, Any],
    X_va: np.ndarray,
    y_va: np.ndarray,
    p_va: Mapping[str, np.ndarray],
    *,
    random_state: int,
) -> FittedEnsemble:
    """A logistic regression on the members' validation probabilities (out-of-fold AUC)."""
    started = time.perf_counter()
    P = np.column_stack([p_va[name] for name in members])
    folds = StratifiedKFold(STACKING_FOLDS, shuffle=True, random_state=random_state)
    oof = cross_val_predict(LogisticRegression(), P, y_va, cv=folds, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(y_va, oof))
    stack = _stacking_classifier(members, X_va, y_va, P)
    return FittedEnsemble("stacking", stack, auc, tuple(members), time.perf_counter() - started)


def fit_ensembles(
    kinds: tuple[str, ...],
    members: Mapping[str, Any],
    X_va: np.ndarray,
    y_va: np.ndarray,
    *,
    random_state: int,
    p_va: Mapping[str, np.ndarray] | None = None,
) -> list[FittedEnsemble]:
    """Every ensemble the spec names, over `members` (name -> fitted candidate); `p_va`: the
    members' validation probabilities when the caller has them (computed otherwise)."""
    if not kinds or len(members) < 2:
        return []
    known = dict(p_va or {})
    p_va = {
        name: known[name] if name in known else est.predict_proba(X_va)[:, 1]
        for name, est in members.items()
    }
    out = []
    for kind in kinds:
        if kind == "soft_voting":
            out.append(soft_voting(members, X_va, y_va, p_va))
        elif kind == "stacking":
            out.append(stacking(members, X_va, y_va, p_va, random_state=random_state))
        else:  # the spec schema admits only the two
            raise ValueError(f"unknown ensemble {kind!r}")
    return out


def fit_ensembles_kfold(
    kinds: tuple[str, ...],
    members: Mapping[str, Any],
    searches: Mapping[str, SearchResult],
    X_tr: np.ndarray,
    y_tr: np.ndarray,
    *,
    n_folds: int,
    random_state: int,
) -> list[tuple[FittedEnsemble, SearchResult]]:
    """Ensembles of a table without a time axis, from the members' out-of-fold search scores;
    each with the `SearchResult` (out-of-fold scores, fold AUCs) that calibrates it."""
    if not kinds or len(members) < 2:
        return []
    index = searches[next(iter(members))].oof_index
    assert index is not None
    for name in members:  # same subsample and folds for every candidate (same random_state)
        other = searches[name].oof_index
        if other is None or not np.array_equal(other, index):
            raise ValueError(f"candidate {name} was cross-validated on other rows")
    y = y_tr[index]
    P = np.column_stack([searches[name].oof_proba for name in members])
    folds = stratified_folds(y, n_folds=n_folds, random_state=random_state)
    out = []
    for kind in kinds:
        started = time.perf_counter()
        if kind == "soft_voting":
            oof = P.mean(axis=1)
            estimator = _voting_classifier(members, X_tr[index], y)
        elif kind == "stacking":
            oof = np.empty(len(y), dtype=np.float64)
            for tr, va in folds:
                oof[va] = LogisticRegression().fit(P[tr], y[tr]).predict_proba(P[va])[:, 1]
            # the meta-model of this recipe: fitted on the out-of-fold member scores, not on
            # the refitted members' in-sample scores
            estimator = _stacking_classifier(members, X_tr[index], y, P)
        else:  # the spec schema admits only the two
            raise ValueError(f"unknown ensemble {kind!r}")
        fold_auc = [float(roc_auc_score(y[va], oof[va])) for _, va in folds]
        auc = float(np.mean(fold_auc))
        seconds = time.perf_counter() - started
        search = SearchResult(
            kind, {}, auc, [], seconds, oof_index=index, oof_proba=oof, fold_auc=fold_auc
        )
        out.append((FittedEnsemble(kind, estimator, auc, tuple(members), seconds), search))
    return out
