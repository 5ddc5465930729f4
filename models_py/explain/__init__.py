"""Why a score: per-feature contributions of tree-ensemble champions and the reason codes of
``fct_score_reasons`` (docs/explaining.md)."""

from __future__ import annotations

from models_py.explain._reasons import TOP_K, feature_labels, score_reasons, top_reasons
from models_py.explain._trees import (
    Explainer,
    ExplainError,
    TreeEnsemble,
    build_explainer,
    parse_tree_ensemble,
)

__all__ = [
    "TOP_K",
    "ExplainError",
    "Explainer",
    "TreeEnsemble",
    "build_explainer",
    "feature_labels",
    "parse_tree_ensemble",
    "score_reasons",
    "top_reasons",
]
