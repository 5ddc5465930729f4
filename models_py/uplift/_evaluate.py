"""Evaluation of uplift scores on a held-out share: per treated arm against the control, the
Qini coefficient, AUUC, uplift at the top k and the per-decile table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd

from models_py.uplift._errors import ArmError, LengthMismatchError
from models_py.uplift._inputs import arm_vector, outcome_type_of, outcome_vector
from models_py.uplift._learners import UpliftModelSet
from models_py.uplift._metrics import (
    qini_auc_score,
    uplift_at_k,
    uplift_auc_score,
    uplift_by_percentile,
)

DEFAULT_KS = (0.1, 0.2, 0.3)


@dataclass(frozen=True, kw_only=True)
class ArmEvaluation:
    """One treated arm against the control on the evaluation rows of both.

    ``auuc`` is NaN for a continuous outcome (the perfect uplift curve needs a binary one);
    ``uplift_at`` maps k (a share) to the uplift among the top k; ``by_decile`` is
    `uplift_by_percentile`'s table.
    """

    arm: str
    n_treatment: int
    n_control: int
    observed_uplift: float
    qini: float
    auuc: float
    uplift_at: Mapping[float, float]
    by_decile: pd.DataFrame


@dataclass(frozen=True, kw_only=True)
class UpliftEvaluation:
    control_arm: str
    outcome_type: str
    arms: Mapping[str, ArmEvaluation]

    def summary(self) -> pd.DataFrame:
        """One row per treated arm: sizes, observed uplift, Qini, AUUC, uplift at each k."""
        rows = []
        for e in self.arms.values():
            row = {
                "arm": e.arm,
                "n_treatment": e.n_treatment,
                "n_control": e.n_control,
                "observed_uplift": e.observed_uplift,
                "qini": e.qini,
                "auuc": e.auuc,
            }
            row.update({f"uplift_at_{round(k * 100)}": v for k, v in e.uplift_at.items()})
            rows.append(row)
        return pd.DataFrame(rows)


def _evaluate_arm(arm: str, score, treated, y, *, binary: bool, ks, bins, strategy):
    return ArmEvaluation(
        arm=arm,
        n_treatment=int(treated.sum()),
        n_control=int((1 - treated).sum()),
        observed_uplift=float(y[treated == 1].mean() - y[treated == 0].mean()),
        qini=qini_auc_score(y, score, treated),
        auuc=uplift_auc_score(y, score, treated) if binary else float("nan"),
        uplift_at=MappingProxyType(
            {k: uplift_at_k(y, score, treated, k=k, strategy=strategy) for k in ks}
        ),
        by_decile=uplift_by_percentile(y, score, treated, bins=bins, strategy=strategy),
    )


def evaluate_scores(
    scores: Mapping[str, np.ndarray],
    arm,
    y,
    *,
    control_arm: str,
    ks: Sequence[float] = DEFAULT_KS,
    bins: int = 10,
    strategy: str = "overall",
) -> UpliftEvaluation:
    """Evaluate uplift scores, one array per treated arm over all rows.

    For each treated arm, only its rows and the control's are used; rows of other arms are
    ignored. Works for any scores (a model set's CATE, another library's predictions).
    """
    labels = arm_vector(arm, np.size(y))
    outcome = outcome_vector(y, labels.size)
    binary = outcome_type_of(outcome) == "binary"
    results = {}
    for treated_arm, score in scores.items():
        score = np.asarray(score, dtype=np.float64).ravel()
        if score.size != labels.size:
            raise LengthMismatchError(
                f"scores of arm {treated_arm!r} have {score.size:,} rows, the outcome "
                f"{labels.size:,}"
            )
        rows = (labels == treated_arm) | (labels == control_arm)
        treated = (labels[rows] == treated_arm).astype(int)
        if treated.min() == treated.max():
            raise ArmError(
                f"the evaluation rows need both arm {treated_arm!r} and the control "
                f"{control_arm!r}; found {int(treated.sum()):,} and {int((1 - treated).sum()):,}"
            )
        results[treated_arm] = _evaluate_arm(
            treated_arm,
            score[rows],
            treated,
            outcome[rows],
            binary=binary,
            ks=tuple(ks),
            bins=bins,
            strategy=strategy,
        )
    return UpliftEvaluation(
        control_arm=control_arm,
        outcome_type="binary" if binary else "continuous",
        arms=MappingProxyType(results),
    )


def evaluate_uplift(
    model_set: UpliftModelSet,
    X,
    arm,
    y,
    *,
    ks: Sequence[float] = DEFAULT_KS,
    bins: int = 10,
    strategy: str = "overall",
) -> UpliftEvaluation:
    """Evaluate a model set's CATEs (``cate__<arm>``) on held-out rows `X`, `arm`, `y`.

    Relies on the rows not having been used for training (see `stratified_split`).
    """
    predicted = model_set.predict(X)
    scores = {a: predicted[f"cate__{a}"] for a in model_set.treated_arms}
    return evaluate_scores(
        scores, arm, y, control_arm=model_set.control_arm, ks=ks, bins=bins, strategy=strategy
    )
