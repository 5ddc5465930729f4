"""Uplift (CATE) learners for a randomised experiment with one control arm and several treated
arms, their ONNX export in parts, and uplift metrics (Qini, AUUC, uplift at k, per-bin table)."""

from __future__ import annotations

from models_py.uplift._errors import (
    ArmError,
    LengthMismatchError,
    MissingValuesError,
    UpliftConfigError,
    UpliftInputError,
)
from models_py.uplift._metrics import (
    perfect_qini_curve,
    perfect_uplift_curve,
    qini_auc_score,
    qini_curve,
    uplift_at_k,
    uplift_auc_score,
    uplift_by_percentile,
    uplift_curve,
)

__all__ = [
    "ArmError",
    "LengthMismatchError",
    "MissingValuesError",
    "UpliftConfigError",
    "UpliftInputError",
    "perfect_qini_curve",
    "perfect_uplift_curve",
    "qini_auc_score",
    "qini_curve",
    "uplift_at_k",
    "uplift_auc_score",
    "uplift_by_percentile",
    "uplift_curve",
]
