"""Experiments: design (sample sizes), salted-hash assignment, and analysis of campaigns and
offers in the warehouse (docs/experiments.md)."""

from models_py.experiments._analyse import (
    ExperimentAnalysis,
    aa_false_positive_rate,
    analyse_experiment,
    analyse_relation,
)
from models_py.experiments._assign import assign_experiments
from models_py.experiments._config import read_experiments

__all__ = [
    "ExperimentAnalysis",
    "aa_false_positive_rate",
    "analyse_experiment",
    "analyse_relation",
    "assign_experiments",
    "read_experiments",
]
