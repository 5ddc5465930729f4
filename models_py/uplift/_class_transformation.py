"""Class-transformation learner (Jaskowski and Jaroszewicz 2012) for a binary outcome: one
classifier per treated arm on the rows of that arm and the control, predicting
``z = 1 if (treated and y = 1) or (control and y = 0)``, with sample weights that give the two
arms equal total weight. Then ``P(z = 1 | x) = (p_t(x) + 1 - p_c(x)) / 2``, so the CATE is
``2 P(z = 1 | x) - 1`` (part ``ct__<arm>``, recombined by `combine_part_outputs`).

The weights make the identity hold whatever the arm shares (scikit-uplift's
ClassTransformation assumes equal shares and does not weight); the parts are plain
classifiers, so they export like the T-learner's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import clone

from models_py.uplift._errors import UpliftInputError
from models_py.uplift._inputs import experiment
from models_py.uplift._learners import MIN_ROWS_PER_ARM, UpliftModelSet, _model_set, _template


def _weighted_fit(template, X: np.ndarray, z: np.ndarray, weight: np.ndarray):
    """A fitted clone with sample weights (a pipeline passes them to its last step)."""
    model = clone(template)
    steps = getattr(model, "steps", None)
    key = f"{steps[-1][0]}__sample_weight" if steps else "sample_weight"
    return model.fit(X, z, **{key: weight})


def fit_class_transformation(
    X,
    arm,
    y,
    *,
    control_arm: str,
    treated_arms: Sequence[str] | None = None,
    outcome: str = "outcome",
    base: str = "linear",
    estimator=None,
    feature_names: Sequence[str] | None = None,
    min_rows_per_arm: int = MIN_ROWS_PER_ARM,
    random_state: int = 0,
) -> UpliftModelSet:
    """Class transformation per treated arm (parts ``ct__<arm>``); binary outcomes only."""
    exp = experiment(
        X,
        arm,
        y,
        control_arm=control_arm,
        treated_arms=treated_arms,
        feature_names=feature_names,
        outcome_type="auto",
        min_rows_per_arm=min_rows_per_arm,
    )
    if exp.outcome_type != "binary":
        raise UpliftInputError(
            "the class-transformation learner needs a binary 0/1 outcome; use fit_t_learner, "
            "fit_dr_learner or fit_two_part"
        )
    template = _template(estimator, base, "classifier", role="ct", random_state=random_state)
    parts = {}
    for a in exp.treated_arms:
        rows = exp.rows(a) | exp.rows(exp.control_arm)
        treated = exp.rows(a)[rows]
        y_rows = exp.y[rows]
        z = np.where(treated, y_rows == 1, y_rows == 0).astype(int)
        n_t, n_c = int(treated.sum()), int((~treated).sum())
        weight = np.where(treated, 0.5 * len(z) / n_t, 0.5 * len(z) / n_c)
        parts[f"ct__{a}"] = _weighted_fit(template, exp.X[rows], z, weight)
    return _model_set("class_transformation", outcome, exp, parts, weighting="equal arm weight")
