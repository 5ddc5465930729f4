"""Checks on the arrays an uplift learner is given: one float32 feature matrix without NaN, one
arm label and one outcome per row, a control arm and enough rows in every arm."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models_py.uplift._errors import (
    ArmError,
    LengthMismatchError,
    MissingValuesError,
    UpliftInputError,
)

OUTCOME_TYPES = ("binary", "continuous")


def feature_matrix(X, feature_names: Sequence[str] | None = None) -> tuple[np.ndarray, tuple]:
    """`X` as a C-contiguous float32 matrix and its column names.

    Names come from `feature_names`, else from a DataFrame's columns, else ``x0, x1, ...``.
    float32 because the ONNX parts take one float32 input (models_py.training._export).

    Raises
    ------
    MissingValuesError
        When a column holds NaN: the project imputes in SQL, and skl2onnx converts tree models
        trained on NaN wrongly.
    """
    columns = getattr(X, "columns", None)
    try:
        matrix = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise UpliftInputError(f"features must be numeric ({exc})") from exc
    if matrix.ndim != 2:
        raise UpliftInputError(f"features must be a 2-D matrix, got shape {matrix.shape}")
    if feature_names is not None:
        names = tuple(str(n) for n in feature_names)
    elif columns is not None:
        names = tuple(str(c) for c in columns)
    else:
        names = tuple(f"x{i}" for i in range(matrix.shape[1]))
    if len(names) != matrix.shape[1]:
        raise LengthMismatchError(
            f"{len(names)} feature names for a matrix of {matrix.shape[1]} columns"
        )
    missing = np.isnan(matrix).sum(axis=0)
    if missing.any():
        listed = ", ".join(f"{names[i]} ({missing[i]:,})" for i in np.flatnonzero(missing)[:5])
        raise MissingValuesError(
            f"features hold NaN in {int((missing > 0).sum())} column(s): {listed}. Impute them "
            "before training (the project does it in SQL); tree models exported from data with "
            "NaN score wrongly in ONNX"
        )
    return matrix.astype(np.float32), names


def outcome_vector(y, n_rows: int, *, name: str = "outcome") -> np.ndarray:
    """`y` as float64, one value per row, no NaN."""
    vector = np.asarray(y, dtype=np.float64).ravel()
    if vector.size != n_rows:
        raise LengthMismatchError(
            f"{name} has {vector.size:,} values for {n_rows:,} feature rows; pass one per row"
        )
    missing = int(np.isnan(vector).sum())
    if missing:
        raise MissingValuesError(f"{name} holds {missing:,} NaN value(s) of {n_rows:,}")
    return vector


def outcome_type_of(y: np.ndarray, declared: str = "auto") -> str:
    """``binary`` when every value is 0 or 1 (or when declared so, then checked), else
    ``continuous``."""
    is_binary = bool(np.isin(y, (0.0, 1.0)).all())
    if declared == "auto":
        return "binary" if is_binary else "continuous"
    if declared not in OUTCOME_TYPES:
        raise UpliftInputError(f"outcome_type must be 'auto' or one of {OUTCOME_TYPES}")
    if declared == "binary" and not is_binary:
        raise UpliftInputError("outcome_type='binary' but the outcome holds values other than 0/1")
    return declared


def arm_vector(arm, n_rows: int) -> np.ndarray:
    """Arm labels as strings, one per row, none missing."""
    labels = np.asarray(arm, dtype=object).ravel()
    if labels.size != n_rows:
        raise LengthMismatchError(
            f"arm has {labels.size:,} labels for {n_rows:,} feature rows; pass one per row"
        )
    missing = sum(1 for a in labels if a is None or (isinstance(a, float) and np.isnan(a)))
    if missing:
        raise MissingValuesError(f"arm is missing for {missing:,} row(s) of {n_rows:,}")
    return labels.astype(str)


@dataclass(frozen=True)
class Experiment:
    """Validated training data restricted to the control and the treated arms used; `kept`
    marks those rows among the rows given."""

    X: np.ndarray
    arm: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    control_arm: str
    treated_arms: tuple[str, ...]
    outcome_type: str
    kept: np.ndarray

    @property
    def arms(self) -> tuple[str, ...]:
        return (self.control_arm, *self.treated_arms)

    def rows(self, arm: str) -> np.ndarray:
        return self.arm == arm

    def rows_per_arm(self) -> dict[str, int]:
        return {a: int(self.rows(a).sum()) for a in self.arms}


def _treated_arms(present: list[str], control_arm: str, treated_arms) -> tuple[str, ...]:
    if control_arm not in present:
        raise ArmError(
            f"control arm {control_arm!r} has no row; arms present: {', '.join(present)}"
        )
    if treated_arms is None:
        chosen = tuple(a for a in present if a != control_arm)
    else:
        chosen = tuple(str(a) for a in treated_arms)
        unknown = [a for a in chosen if a not in present or a == control_arm]
        if unknown:
            raise ArmError(
                f"treated arm(s) {', '.join(map(repr, unknown))} have no row or are the control; "
                f"arms present: {', '.join(present)}"
            )
    if not chosen:
        raise ArmError(
            f"only the control arm {control_arm!r} has rows: uplift needs at least one treated arm"
        )
    return chosen


def _check_arm_sizes(exp: Experiment, min_rows: int, min_per_class: int) -> None:
    for a, n in exp.rows_per_arm().items():
        if n < min_rows:
            raise ArmError(
                f"arm {a!r} has {n:,} rows; at least {min_rows:,} are needed to fit its models "
                "(lower min_rows_per_arm, or merge or drop the arm)"
            )
        if exp.outcome_type != "binary":
            continue
        positives = int(exp.y[exp.rows(a)].sum())
        if min(positives, n - positives) < min_per_class:
            raise ArmError(
                f"arm {a!r} has {positives:,} positive and {n - positives:,} negative outcomes; "
                f"each class needs at least {min_per_class} rows to fit a classifier"
            )


def experiment(
    X,
    arm,
    y,
    *,
    control_arm: str,
    treated_arms: Sequence[str] | None = None,
    feature_names: Sequence[str] | None = None,
    outcome_type: str = "auto",
    min_rows_per_arm: int = 50,
    min_rows_per_class: int = 5,
) -> Experiment:
    """Validate and keep the rows of the control and of the treated arms (others are dropped).

    Raises
    ------
    LengthMismatchError, MissingValuesError, ArmError, UpliftInputError
        With what is wrong, where and how many rows.
    """
    matrix, names = feature_matrix(X, feature_names)
    labels = arm_vector(arm, matrix.shape[0])
    outcome = outcome_vector(y, matrix.shape[0])
    present = sorted(set(labels.tolist()))
    treated = _treated_arms(present, str(control_arm), treated_arms)
    keep = np.isin(labels, (str(control_arm), *treated))
    exp = Experiment(
        X=matrix[keep],
        arm=labels[keep],
        y=outcome[keep],
        feature_names=names,
        control_arm=str(control_arm),
        treated_arms=treated,
        outcome_type=outcome_type_of(outcome[keep], outcome_type),
        kept=keep,
    )
    _check_arm_sizes(exp, min_rows_per_arm, min_rows_per_class)
    return exp
