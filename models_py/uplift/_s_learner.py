"""S-learner with a logistic link: ONE logistic regression on the standardised features plus
an indicator per treated arm, split into one outcome part per arm for the export.

The model is ``logit P(y = 1 | x, arm) = b + w.z(x) + d_arm`` (d_control = 0): every arm shares
the covariate effects and shifts the log-odds by a constant. The CATE on the probability scale,
``sigmoid(b + w.z + d_arm) - sigmoid(b + w.z)``, is still heterogeneous: largest where the
control's response probability is near 0.5 (for d > 0). It suits experiments whose effect
differs little between customers beyond their base rate; with real interactions between the arm
and the features, a T- or DR-learner can find them and this learner cannot.

Because the arm only moves the intercept, the fitted model splits exactly into one
StandardScaler + LogisticRegression pipeline per arm (intercept ``b + d_arm``): the parts are
the T-learner's (``mu__<arm>``), so they export and recombine the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from models_py.uplift._errors import UpliftInputError
from models_py.uplift._inputs import experiment
from models_py.uplift._learners import MIN_ROWS_PER_ARM, UpliftModelSet, _model_set


def _arm_part(scaler: StandardScaler, shared: LogisticRegression, shift: float) -> Pipeline:
    """The shared model restricted to one arm: the covariate coefficients and the intercept
    moved by the arm's shift."""
    n_features = scaler.n_features_in_
    part = copy.deepcopy(shared)
    part.coef_ = shared.coef_[:, :n_features].copy()
    part.intercept_ = shared.intercept_ + shift
    part.n_features_in_ = n_features
    return Pipeline([("standardscaler", copy.deepcopy(scaler)), ("logisticregression", part)])


def fit_s_learner(
    X,
    arm,
    y,
    *,
    control_arm: str,
    treated_arms: Sequence[str] | None = None,
    outcome: str = "outcome",
    C: float = 1.0,
    feature_names: Sequence[str] | None = None,
    min_rows_per_arm: int = MIN_ROWS_PER_ARM,
    random_state: int = 0,
) -> UpliftModelSet:
    """Logistic S-learner (binary outcomes): one regression on the standardised features and
    the treated arms' indicators, exported as one part per arm (``mu__<arm>``).

    The arm indicators are not standardised, so `C` penalises their shifts on the log-odds
    scale. Continuous outcomes are refused: with a linear link the shift would give every
    customer the same CATE.
    """
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
            "the S-learner needs a binary 0/1 outcome (with a continuous one every customer "
            "would get the same CATE); use fit_t_learner, fit_dr_learner or fit_two_part"
        )
    scaler = StandardScaler().fit(exp.X)
    indicators = np.column_stack([exp.rows(a) for a in exp.treated_arms]).astype(np.float64)
    design = np.column_stack([scaler.transform(exp.X), indicators])
    shared = LogisticRegression(C=C, max_iter=2000, random_state=random_state)
    shared.fit(design, exp.y)
    p = exp.X.shape[1]
    shifts = {exp.control_arm: 0.0}
    shifts.update({a: float(shared.coef_[0, p + j]) for j, a in enumerate(exp.treated_arms)})
    parts = {f"mu__{a}": _arm_part(scaler, shared, shifts[a]) for a in exp.arms}
    return _model_set("s_learner", outcome, exp, parts, C=C, log_odds_shift=shifts)
