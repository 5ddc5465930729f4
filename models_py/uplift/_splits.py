"""Held-out shares and folds stratified by arm and outcome, so that every split keeps the arm
shares of the experiment and the response rate of every arm (scikit-learn's stratified
splitters on the label ``arm|outcome``)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

from models_py.uplift._errors import LengthMismatchError, UpliftInputError


def stratification_labels(arm, y) -> np.ndarray:
    """``"<arm>|<outcome class>"`` per row: the class is the outcome itself when it is 0/1,
    else whether it is positive (a purchase for spend)."""
    arms = np.asarray(arm, dtype=object).astype(str).ravel()
    outcome = np.asarray(y, dtype=np.float64).ravel()
    if arms.size != outcome.size:
        raise LengthMismatchError(f"arm has {arms.size:,} rows, the outcome {outcome.size:,}")
    binary = np.isin(outcome, (0.0, 1.0)).all()
    classes = (outcome if binary else outcome > 0).astype(int).astype(str)
    return np.char.add(np.char.add(arms.astype(str), "|"), classes)


def _check_counts(labels: np.ndarray, needed: int, what: str) -> None:
    values, counts = np.unique(labels, return_counts=True)
    small = [f"{v} ({c})" for v, c in zip(values, counts, strict=True) if c < needed]
    if small:
        raise UpliftInputError(
            f"{what} needs at least {needed} rows per arm and outcome class; too few in: "
            + ", ".join(small)
        )


def stratified_split(
    arm, y, *, test_share: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test) of one random split stratified by arm x outcome
    (`sklearn.model_selection.StratifiedShuffleSplit`), both sorted."""
    if not 0 < test_share < 1:
        raise UpliftInputError(f"test_share must be in (0, 1), got {test_share}")
    labels = stratification_labels(arm, y)
    _check_counts(labels, 2, "a stratified split")
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=test_share, random_state=seed)
    train, test = next(splitter.split(np.zeros(labels.size), labels))
    return np.sort(train), np.sort(test)


def stratified_kfold(
    arm, y, *, n_splits: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Row indices (train, test) of `n_splits` shuffled folds stratified by arm x outcome
    (`sklearn.model_selection.StratifiedKFold`); every row is in exactly one test fold."""
    if n_splits < 2:
        raise UpliftInputError(f"n_splits must be at least 2, got {n_splits}")
    labels = stratification_labels(arm, y)
    _check_counts(labels, n_splits, f"{n_splits}-fold cross-fitting")
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(folds.split(np.zeros(labels.size), labels))
