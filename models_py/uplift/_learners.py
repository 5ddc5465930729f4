"""Meta-learners of the conditional average treatment effect (CATE) of each treated arm against
one control arm, built from scikit-learn estimators that export to ONNX one part at a time.

- T-learner: one outcome model per arm; CATE(arm) = mu_arm(x) - mu_control(x).
- S-learner (logistic, models_py.uplift._s_learner): one model with arm indicators, split into
  the same per-arm parts as the T-learner.
- DR-learner: cross-fitted outcome models per arm give doubly robust pseudo-outcomes, and one
  regressor per treated arm learns the CATE from them (Kennedy 2023, "Towards optimal doubly
  robust estimation of heterogeneous causal effects").
- Two-part revenue model: per arm P(purchase | x) x E[revenue | purchase, x]; CATE on revenue
  from the difference with the control.

Every learner returns an `UpliftModelSet` whose ``parts`` are plain fitted estimators: a
classifier part contributes P(class 1), a regressor part its prediction, and
`combine_part_outputs` turns those numbers into outcomes and CATEs. ONNX scoring runs the same
function on the parts' ONNX outputs (models_py.uplift._onnx).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from models_py.uplift._errors import (
    ArmError,
    LengthMismatchError,
    UpliftConfigError,
    UpliftInputError,
)
from models_py.uplift._inputs import Experiment, experiment, feature_matrix, outcome_vector
from models_py.uplift._splits import stratified_kfold

KINDS = ("t_learner", "s_learner", "dr_learner", "class_transformation", "two_part")
#: Kinds whose parts are one outcome model per arm (``mu__<arm>``), CATE = difference.
OUTCOME_MODEL_KINDS = ("t_learner", "s_learner")
BASES = ("hgb", "linear")
MIN_ROWS_PER_ARM = 50
#: Part roles: the outcome model of an arm (T), the CATE regressor of a treated arm (DR), the
#: purchase classifier and the revenue-given-purchase regressor of an arm (two-part).
ROLES = ("mu", "tau", "ct", "purchase", "revenue")

#: Regularised defaults: outcome differences are small against the noise, so leaves are large.
_HGB = {
    "max_iter": 200,
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 50,
    "l2_regularization": 1.0,
    # Early stopping on a 10 % validation share at any size (scikit-learn's "auto" stops early
    # only from 10,000 rows; an experiment's arms are often smaller, and 200 rounds on every
    # cross-fitting fold cost minutes).
    "early_stopping": True,
    "n_iter_no_change": 10,
}
#: The DR pseudo-outcomes are far noisier than outcomes (inverse-propensity weighted residuals).
_HGB_EFFECT = {**_HGB, "max_iter": 100, "max_leaf_nodes": 8, "min_samples_leaf": 200}


# --------------------------------------------------------------------------------- estimators


def default_estimator(base: str, task: str, *, role: str = "mu", random_state: int = 0):
    """An unfitted base estimator.

    ``hgb``: HistGradientBoosting (no class weights: the parts must give calibrated
    probabilities, since CATEs are their differences). ``linear``: StandardScaler followed by
    LogisticRegression (classifier) or Ridge (regressor).
    """
    if base not in BASES:
        raise UpliftConfigError(f"base must be one of {BASES} or an estimator, got {base!r}")
    if base == "hgb":
        params = _HGB_EFFECT if role == "tau" else _HGB
        if task == "classifier":
            return HistGradientBoostingClassifier(random_state=random_state, **params)
        return HistGradientBoostingRegressor(random_state=random_state, **params)
    if task == "classifier":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    return make_pipeline(StandardScaler(), Ridge(alpha=1.0))


def _final_step(estimator):
    """The estimator inside a search object and at the end of a pipeline."""
    if hasattr(estimator, "param_grid") or hasattr(estimator, "param_distributions"):
        estimator = estimator.estimator
    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator


def _refuse_unexportable(estimator) -> None:
    final = _final_step(estimator)
    categorical = getattr(final, "categorical_features", None)
    if isinstance(final, HistGradientBoostingClassifier | HistGradientBoostingRegressor) and (
        categorical not in (None, "from_dtype")
    ):
        raise UpliftConfigError(
            "HistGradientBoosting with categorical_features is refused: skl2onnx does not "
            "convert native categorical splits; leave the column integer-coded"
        )
    if isinstance(final, CalibratedClassifierCV) and final.method == "isotonic":
        raise UpliftConfigError(
            "isotonic calibration is refused: skl2onnx converts it wrongly; use method='sigmoid'"
        )


def _template(estimator, base: str, task: str, *, role: str, random_state: int):
    """The estimator a part is cloned from, checked for its task and its export."""
    if estimator is None:
        return default_estimator(base, task, role=role, random_state=random_state)
    if task == "classifier" and not (
        is_classifier(estimator) and hasattr(estimator, "predict_proba")
    ):
        raise UpliftConfigError(
            f"the {role} parts need a classifier with predict_proba (binary outcome), got "
            f"{type(estimator).__name__}"
        )
    if task == "regressor" and not is_regressor(estimator):
        raise UpliftConfigError(
            f"the {role} parts need a regressor, got {type(estimator).__name__}"
        )
    _refuse_unexportable(estimator)
    return estimator


def _fit(template, X: np.ndarray, y: np.ndarray):
    """A fitted clone; a search object (GridSearchCV, ...) is replaced by its refitted best
    estimator, so that a part is always a plain estimator the ONNX converter knows."""
    model = clone(template).fit(X, y)
    return getattr(model, "best_estimator_", model)


def part_output(estimator, X: np.ndarray) -> np.ndarray:
    """A part's number per row: P(class 1) for a classifier, the prediction for a regressor."""
    if is_classifier(estimator):
        classes = list(getattr(estimator, "classes_", []))
        if classes != [0, 1]:
            raise UpliftInputError(f"a classifier part must have classes [0, 1], got {classes}")
        return estimator.predict_proba(X)[:, 1].astype(np.float64)
    return np.asarray(estimator.predict(X), dtype=np.float64).ravel()


# --------------------------------------------------------------------------------- the result


def part_names(kind: str, control_arm: str, treated_arms: Sequence[str]) -> tuple[str, ...]:
    """Names of the parts a learner of `kind` fits, ``<role>__<arm>``."""
    arms = (control_arm, *treated_arms)
    if kind in OUTCOME_MODEL_KINDS:
        return tuple(f"mu__{a}" for a in arms)
    if kind == "dr_learner":
        return tuple(f"tau__{a}" for a in treated_arms)
    if kind == "class_transformation":
        return tuple(f"ct__{a}" for a in treated_arms)
    if kind == "two_part":
        return tuple(f"{role}__{a}" for a in arms for role in ("purchase", "revenue"))
    raise UpliftConfigError(f"unknown uplift model kind {kind!r}; expected one of {KINDS}")


def combine_part_outputs(
    kind: str,
    control_arm: str,
    treated_arms: Sequence[str],
    outputs: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Outcomes and CATEs from the parts' numbers (see `part_output`).

    Returns ``outcome__<arm>`` for every arm where the learner defines it (T-, S-learner: mu;
    two-part: P(purchase) x revenue; the DR-learner has no outcome model) and ``cate__<arm>``
    for every treated arm: the treated arm's outcome minus the control's, or the DR regressor.
    The same function serves scikit-learn and ONNX outputs, so both give the same CATE.
    """
    missing = [p for p in part_names(kind, control_arm, treated_arms) if p not in outputs]
    if missing:
        raise UpliftInputError(f"part outputs lack {', '.join(missing)} for a {kind} model")
    values = {name: np.asarray(v, dtype=np.float64).ravel() for name, v in outputs.items()}
    if len({v.size for v in values.values()}) > 1:
        raise LengthMismatchError("part outputs have different numbers of rows")
    arms = (control_arm, *treated_arms)
    result: dict[str, np.ndarray] = {}
    if kind in OUTCOME_MODEL_KINDS:
        result = {f"outcome__{a}": values[f"mu__{a}"] for a in arms}
    elif kind == "two_part":
        result = {f"outcome__{a}": values[f"purchase__{a}"] * values[f"revenue__{a}"] for a in arms}
    for a in treated_arms:
        if kind == "dr_learner":
            result[f"cate__{a}"] = values[f"tau__{a}"]
        elif kind == "class_transformation":
            result[f"cate__{a}"] = 2.0 * values[f"ct__{a}"] - 1.0
        else:
            result[f"cate__{a}"] = result[f"outcome__{a}"] - result[f"outcome__{control_arm}"]
    return result


@dataclass(frozen=True, kw_only=True)
class UpliftModelSet:
    """A fitted uplift learner: its parts and what is needed to combine them.

    Attributes
    ----------
    kind : {"t_learner", "s_learner", "dr_learner", "two_part"}
    outcome : str
        Name of the outcome (``visit``, ``spend``, ...), for reports and ONNX metadata.
    outcome_type : {"binary", "continuous"}
    control_arm, treated_arms : str, tuple of str
    feature_names : tuple of str
        Column order of the input matrix.
    parts : Mapping[str, estimator]
        ``<role>__<arm>`` -> fitted scikit-learn estimator (see `part_names`).
    rows_per_arm : Mapping[str, int]
        Training rows per arm.
    details : Mapping[str, Any]
        Learner settings (DR: folds, propensity source and values, clipping).
    """

    kind: str
    outcome: str
    outcome_type: str
    control_arm: str
    treated_arms: tuple[str, ...]
    feature_names: tuple[str, ...]
    parts: Mapping[str, Any]
    rows_per_arm: Mapping[str, int]
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def arms(self) -> tuple[str, ...]:
        return (self.control_arm, *self.treated_arms)

    def features(self, X) -> np.ndarray:
        """`X` as the float32 matrix the parts take: a DataFrame's columns are picked by name."""
        columns = getattr(X, "columns", None)
        if columns is not None:
            missing = [c for c in self.feature_names if c not in set(map(str, columns))]
            if missing:
                raise UpliftInputError(f"features lack column(s) {', '.join(missing)}")
            X = X[list(self.feature_names)]
        matrix, _ = feature_matrix(X, self.feature_names)
        return matrix

    def part_outputs(self, X) -> dict[str, np.ndarray]:
        """Each part's number per row (see `part_output`)."""
        matrix = self.features(X)
        return {name: part_output(est, matrix) for name, est in self.parts.items()}

    def predict(self, X) -> dict[str, np.ndarray]:
        """``outcome__<arm>`` (where defined) and ``cate__<arm>`` per row of `X` (see
        `combine_part_outputs`)."""
        return combine_part_outputs(
            self.kind, self.control_arm, self.treated_arms, self.part_outputs(X)
        )


def _model_set(kind: str, outcome: str, exp: Experiment, parts: dict, **details) -> UpliftModelSet:
    return UpliftModelSet(
        kind=kind,
        outcome=outcome,
        outcome_type=exp.outcome_type,
        control_arm=exp.control_arm,
        treated_arms=exp.treated_arms,
        feature_names=exp.feature_names,
        parts=MappingProxyType(dict(parts)),
        rows_per_arm=MappingProxyType(exp.rows_per_arm()),
        details=MappingProxyType(details),
    )


# --------------------------------------------------------------------------------- T-learner


def fit_t_learner(
    X,
    arm,
    y,
    *,
    control_arm: str,
    treated_arms: Sequence[str] | None = None,
    outcome: str = "outcome",
    outcome_type: str = "auto",
    base: str = "hgb",
    estimator=None,
    feature_names: Sequence[str] | None = None,
    min_rows_per_arm: int = MIN_ROWS_PER_ARM,
    random_state: int = 0,
) -> UpliftModelSet:
    """One outcome model per arm, fitted on that arm's rows (parts ``mu__<arm>``).

    Parameters
    ----------
    X : array-like or DataFrame, shape (n, p)
        Pre-treatment features, no NaN.
    arm : array-like, shape (n,)
        Arm label per row; rows of arms other than the control and `treated_arms` are ignored.
    y : array-like, shape (n,)
        Outcome: 0/1 (classifier parts) or continuous (regressor parts).
    base : {"hgb", "linear"}
        Default estimator family, used when `estimator` is None.
    estimator : scikit-learn estimator, optional
        Cloned for every arm; a search object (GridSearchCV) is replaced by its best estimator.
    """
    exp = experiment(
        X,
        arm,
        y,
        control_arm=control_arm,
        treated_arms=treated_arms,
        feature_names=feature_names,
        outcome_type=outcome_type,
        min_rows_per_arm=min_rows_per_arm,
    )
    task = "classifier" if exp.outcome_type == "binary" else "regressor"
    template = _template(estimator, base, task, role="mu", random_state=random_state)
    parts = {f"mu__{a}": _fit(template, exp.X[exp.rows(a)], exp.y[exp.rows(a)]) for a in exp.arms}
    return _model_set("t_learner", outcome, exp, parts)


# --------------------------------------------------------------------------------- DR-learner


def dr_pseudo_outcome(
    y: np.ndarray,
    treated: np.ndarray,
    mu_treated: np.ndarray,
    mu_control: np.ndarray,
    propensity: np.ndarray,
) -> np.ndarray:
    """Doubly robust (AIPW) pseudo-outcome of one treated arm against the control:

    ``mu_1 - mu_0 + W (Y - mu_1) / e - (1 - W) (Y - mu_0) / (1 - e)``

    with W = 1 for the treated arm, e = P(treated arm | x, treated arm or control). Its
    conditional mean is the CATE when either the outcome models or e are right.
    """
    w = np.asarray(treated, dtype=np.float64)
    return (
        mu_treated
        - mu_control
        + w * (y - mu_treated) / propensity
        - (1.0 - w) * (y - mu_control) / (1.0 - propensity)
    )


def _cross_fitted_outcomes(exp: Experiment, template, n_folds: int, seed: int) -> dict:
    """Out-of-fold mu_arm(x) for every row and arm: each fold's rows are predicted by models
    fitted on the other folds only (folds stratified by arm x outcome)."""
    mu = {a: np.empty(exp.y.size) for a in exp.arms}
    for train, test in stratified_kfold(exp.arm, exp.y, n_splits=n_folds, seed=seed):
        for a in exp.arms:
            rows = train[exp.arm[train] == a]
            mu[a][test] = part_output(_fit(template, exp.X[rows], exp.y[rows]), exp.X[test])
    return mu


def _estimated_assignment(exp: Experiment, n_folds: int, seed: int) -> dict[str, np.ndarray]:
    """Out-of-fold P(arm | x) from a multinomial logistic regression on the features."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    probabilities = {a: np.empty(exp.y.size) for a in exp.arms}
    for train, test in stratified_kfold(exp.arm, exp.y, n_splits=n_folds, seed=seed):
        fitted = clone(model).fit(exp.X[train], exp.arm[train])
        predicted = fitted.predict_proba(exp.X[test])
        for j, a in enumerate(fitted.classes_):
            probabilities[str(a)][test] = predicted[:, j]
    return probabilities


def _assignment(exp: Experiment, propensity, n_folds: int, seed: int) -> tuple[dict, Any]:
    """P(arm | x) per arm and row, and what to record about it."""
    n = exp.y.size
    if propensity is None:
        shares = {a: float(exp.rows(a).mean()) for a in exp.arms}
        return {a: np.full(n, p) for a, p in shares.items()}, {"arm shares": shares}
    if isinstance(propensity, str):
        if propensity != "estimate":
            raise UpliftConfigError(
                f"propensity must be None (arm shares), 'estimate' or a mapping arm -> "
                f"probability, got {propensity!r}"
            )
        return _estimated_assignment(exp, n_folds, seed), "estimated (logistic regression)"
    given = {str(a): float(p) for a, p in dict(propensity).items()}
    missing = [a for a in exp.arms if a not in given]
    if missing or not all(0 < given[a] < 1 for a in exp.arms):
        raise UpliftConfigError(
            f"propensity must give a probability in (0, 1) for every arm {exp.arms}; got {given}"
        )
    return {a: np.full(n, given[a]) for a in exp.arms}, {"given": given}


def fit_dr_learner(
    X,
    arm,
    y,
    *,
    control_arm: str,
    treated_arms: Sequence[str] | None = None,
    outcome: str = "outcome",
    outcome_type: str = "auto",
    base: str = "hgb",
    outcome_estimator=None,
    effect_estimator=None,
    propensity: Mapping[str, float] | str | None = None,
    n_folds: int = 5,
    clip: float = 0.01,
    feature_names: Sequence[str] | None = None,
    min_rows_per_arm: int = MIN_ROWS_PER_ARM,
    random_state: int = 0,
) -> UpliftModelSet:
    """DR-learner: cross-fitted outcome models, doubly robust pseudo-outcomes, then one CATE
    regressor per treated arm (parts ``tau__<arm>``).

    For each treated arm, the pseudo-outcomes (`dr_pseudo_outcome`) are computed on the rows of
    that arm and of the control, with outcome predictions from models that did not see the row
    (`n_folds` folds stratified by arm x outcome) and e = P(arm) / (P(arm) + P(control)) clipped
    to [clip, 1 - clip]; the regressor is fitted on the same rows.

    Parameters
    ----------
    propensity : None, "estimate" or Mapping[str, float]
        P(arm | x). None: the arm shares of the data (a randomised experiment); a mapping: the
        known assignment probability per arm; "estimate": a cross-fitted multinomial logistic
        regression of the arm on the features (observational data).
    outcome_estimator : estimator, optional
        Classifier (binary outcome) or regressor for the outcome models; default from `base`.
    effect_estimator : regressor, optional
        The CATE regressor; default from `base` (more regularised than the outcome models).
    """
    if not 0 <= clip < 0.5:
        raise UpliftConfigError(f"clip must be in [0, 0.5), got {clip}")
    exp = experiment(
        X,
        arm,
        y,
        control_arm=control_arm,
        treated_arms=treated_arms,
        feature_names=feature_names,
        outcome_type=outcome_type,
        min_rows_per_arm=min_rows_per_arm,
        min_rows_per_class=n_folds,
    )
    task = "classifier" if exp.outcome_type == "binary" else "regressor"
    mu_template = _template(outcome_estimator, base, task, role="mu", random_state=random_state)
    tau_template = _template(
        effect_estimator, base, "regressor", role="tau", random_state=random_state
    )
    mu = _cross_fitted_outcomes(exp, mu_template, n_folds, random_state)
    assignment, source = _assignment(exp, propensity, n_folds, random_state)
    parts = {}
    c = exp.control_arm
    for a in exp.treated_arms:
        rows = exp.rows(a) | exp.rows(c)
        e = assignment[a][rows] / (assignment[a][rows] + assignment[c][rows])
        e = np.clip(e, clip, 1.0 - clip)
        pseudo = dr_pseudo_outcome(exp.y[rows], exp.rows(a)[rows], mu[a][rows], mu[c][rows], e)
        parts[f"tau__{a}"] = _fit(tau_template, exp.X[rows], pseudo)
    return _model_set(
        "dr_learner", outcome, exp, parts, n_folds=n_folds, clip=clip, propensity=source
    )


# --------------------------------------------------------------------------------- two-part


def _purchases(exp: Experiment, purchase, min_purchases: int) -> np.ndarray:
    if purchase is None:
        bought = exp.y > 0
    else:
        given = outcome_vector(purchase, exp.kept.size, name="purchase")[exp.kept]
        if not np.isin(given, (0.0, 1.0)).all():
            raise UpliftInputError("purchase must hold only 0 and 1")
        bought = given == 1
    stray = int(((~bought) & (exp.y != 0)).sum())
    if stray:
        raise UpliftInputError(
            f"{stray:,} row(s) have revenue without a purchase; the two-part model needs "
            "revenue 0 where purchase is 0"
        )
    for a in exp.arms:
        n_bought = int(bought[exp.rows(a)].sum())
        n_other = int(exp.rows(a).sum()) - n_bought
        if n_bought < min_purchases or n_other < min_purchases:
            raise ArmError(
                f"arm {a!r} has {n_bought:,} purchases and {n_other:,} rows without; each "
                f"needs at least {min_purchases} to fit the two parts"
            )
    return bought


def fit_two_part(
    X,
    arm,
    revenue,
    *,
    control_arm: str,
    treated_arms: Sequence[str] | None = None,
    purchase=None,
    outcome: str = "revenue",
    base: str = "hgb",
    purchase_estimator=None,
    revenue_estimator=None,
    feature_names: Sequence[str] | None = None,
    min_rows_per_arm: int = MIN_ROWS_PER_ARM,
    min_purchases_per_arm: int = 20,
    random_state: int = 0,
) -> UpliftModelSet:
    """Two-part revenue model: per arm a purchase classifier (all the arm's rows) and a revenue
    regressor (the arm's purchasers); expected revenue = P(purchase | x) x E[revenue |
    purchase, x] (parts ``purchase__<arm>``, ``revenue__<arm>``).

    Relies on revenue being 0 without a purchase (checked). `purchase` defaults to
    ``revenue > 0``.
    """
    exp = experiment(
        X,
        arm,
        revenue,
        control_arm=control_arm,
        treated_arms=treated_arms,
        feature_names=feature_names,
        outcome_type="continuous",
        min_rows_per_arm=min_rows_per_arm,
    )
    bought = _purchases(exp, purchase, min_purchases_per_arm)
    classifier = _template(
        purchase_estimator, base, "classifier", role="purchase", random_state=random_state
    )
    regressor = _template(
        revenue_estimator, base, "regressor", role="revenue", random_state=random_state
    )
    parts = {}
    for a in exp.arms:
        rows = exp.rows(a)
        parts[f"purchase__{a}"] = _fit(classifier, exp.X[rows], bought[rows].astype(int))
        parts[f"revenue__{a}"] = _fit(regressor, exp.X[rows & bought], exp.y[rows & bought])
    return _model_set("two_part", outcome, exp, parts)
