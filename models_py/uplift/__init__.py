"""Uplift (CATE) learners for a randomised experiment with one control arm and several treated
arms, their ONNX export in parts, and uplift metrics (Qini, AUUC, uplift at k, per-bin table).

Learners return an `UpliftModelSet`; ``predict(X)`` gives ``outcome__<arm>`` and
``cate__<arm>``. `export_parts` writes one ONNX model per part (parity-checked) and
`predict_onnx` recombines their outputs exactly as ``predict`` does.
"""

from __future__ import annotations

from models_py.training._export import ParityError
from models_py.uplift._errors import (
    ArmError,
    LengthMismatchError,
    MissingValuesError,
    UpliftConfigError,
    UpliftInputError,
)
from models_py.uplift._evaluate import (
    ArmEvaluation,
    UpliftEvaluation,
    evaluate_scores,
    evaluate_uplift,
)
from models_py.uplift._learners import (
    UpliftModelSet,
    combine_part_outputs,
    default_estimator,
    dr_pseudo_outcome,
    fit_dr_learner,
    fit_t_learner,
    fit_two_part,
    part_names,
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
from models_py.uplift._onnx import check_part_parity, export_parts, predict_onnx
from models_py.uplift._s_learner import fit_s_learner
from models_py.uplift._splits import stratification_labels, stratified_kfold, stratified_split

__all__ = [
    "ArmError",
    "ArmEvaluation",
    "LengthMismatchError",
    "MissingValuesError",
    "ParityError",
    "UpliftConfigError",
    "UpliftEvaluation",
    "UpliftInputError",
    "UpliftModelSet",
    "check_part_parity",
    "combine_part_outputs",
    "default_estimator",
    "dr_pseudo_outcome",
    "evaluate_scores",
    "evaluate_uplift",
    "export_parts",
    "fit_dr_learner",
    "fit_s_learner",
    "fit_t_learner",
    "fit_two_part",
    "part_names",
    "perfect_qini_curve",
    "perfect_uplift_curve",
    "predict_onnx",
    "qini_auc_score",
    "qini_curve",
    "stratification_labels",
    "stratified_kfold",
    "stratified_split",
    "uplift_at_k",
    "uplift_auc_score",
    "uplift_by_percentile",
    "uplift_curve",
]
