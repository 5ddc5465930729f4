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


def short_name(algorithm: str) -> str:
    """The short name of a known algorithm (an unknown name is returned as is)."""
    known = ALGORITHMS.get(algorithm)
    return known.short if known else algorithm
