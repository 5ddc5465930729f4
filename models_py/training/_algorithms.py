"""The candidate algorithms a model spec may name: the one table of their names, short names
(in model ids such as ``wine-hgb-20261123T120501-3fa2b9`` and in the training summary) and
whether they are tree ensembles."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Algorithm:
    name: str
    short: str
    is_tree: bool


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("logistic_regression", "lr", is_tree=False),
        Algorithm("random_forest", "rf", is_tree=True),
        Algorithm("hist_gradient_boosting", "hgb", is_tree=True),
        Algorithm("lightgbm", "lgbm", is_tree=True),
    )
}
ALGORITHM_NAMES: tuple[str, ...] = tuple(ALGORITHMS)
TREE_ALGORITHMS: tuple[str, ...] = tuple(a.name for a in ALGORITHMS.values() if a.is_tree)

#: Ensembles over a spec's fitted candidates (models_py.training._ensembles); `is_tree` is unused.
ENSEMBLES: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("soft_voting", "vote", is_tree=False),
        Algorithm("stacking", "stack", is_tree=False),
    )
}
ENSEMBLE_NAMES: tuple[str, ...] = tuple(ENSEMBLES)


def short_name(algorithm: str) -> str:
    """The short name of a known algorithm or ensemble (an unknown name is returned as is)."""
    known = ALGORITHMS.get(algorithm) or ENSEMBLES.get(algorithm)
    return known.short if known else algorithm
