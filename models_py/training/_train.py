"""Training: read examples, search candidates on temporal folds, calibrate on validation, choose
the threshold, evaluate on test, export to ONNX behind a parity gate, register and promote.

Tables without a time axis (``validation: stratified_kfold``) follow the same steps with a
held-out stratified test share instead of the newest cutoffs, shuffled stratified k folds on the
rest for the search, and out-of-fold predictions for the calibration and the threshold.

One spec expands to one training target per product group. For each target:

1. rows are read from the warehouse with a stratified-by-cutoff subsample (at most
   ``max_training_rows`` train rows, an equal quota per cutoff; ``max_evaluation_rows`` for the
   validation and for the test period), as one float32 matrix;
2. each candidate algorithm's search space is scored by mean ROC AUC on expanding-window folds
   over the train cutoffs, the best configuration refitted on all train rows;
3. the candidate with the best validation ROC AUC wins (the test period is never used to choose);
4. it is Platt-calibrated on the validation period, the threshold is chosen there by the spec's
   rule, and it is evaluated on the test period (metrics, lift, calibration, importance);
5. the ONNX export must match scikit-learn within 1e-5 on every test row, else nothing is written;
   the bins of every feature and of the exported model's score on the train rows are kept as its
   drift reference, and the mean |SHAP| of every feature on the importance test rows beside its
   permutation importance;
6. the model is registered as challenger and promoted to champion when its test metric beats the
   current champion's on the same test rows by the spec's margin (the first model is promoted).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score
from threadpoolctl import threadpool_limits

from models_py._errors import ConfigError, PropensityError
from models_py._settings import Settings
from models_py._warehouse import connect, transaction
from models_py.registry import Evaluation as EvaluationRows
from models_py.registry import (
    ModelRecord,
    get_alias,
    model_row,
    register_model,
    require_ml_tables,
)
from models_py.training._algorithms import short_name
from models_py.training._candidates import (
    SearchResult,
    SigmoidCalibratedClassifier,
    available_algorithms,
    build_estimator,
    fit_estimator,
    kfold_search,
    lightgbm_available,
    search_algorithm,
)
from models_py.training._ensembles import fit_ensembles, fit_ensembles_kfold
from models_py.training._evaluate import (
    binary_metrics,
    calibration_bins,
    choose_threshold,
    curve_points,
    importance_sample,
    lift_by_decile,
    mean_abs_shap_rows,
    merge_importance,
    permutation_importance_rows,
)
from models_py.training._examples import (
    SPLITS,
    Examples,
    load_examples,
    refuse_bad_inputs,
)
from models_py.training._export import (
    ParityError,
    check_parity,
    export_onnx,
    feature_hash,
    library_versions,
    onnx_predict_proba,
)
from models_py.training._reference import reference_rows
from models_py.training._specs import ModelSpec, TrainingTarget, load_specs, resolve_spec

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------ results


@dataclass(frozen=True, kw_only=True)
class TrainProgress:
    """One step done: a candidate searched and fitted, or a model exported and registered."""

    spec_name: str
    product_group: str
    step: str
    completed: int
    total: int


@dataclass(frozen=True, kw_only=True)
class CandidateResult:
    """One candidate algorithm: its best search parameters and how it scored."""

    algorithm: str
    params: dict[str, Any]
    search_auc: float | None
    validation_auc: float
    seconds: float
    fold_auc: list[float] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ModelResult:
    """What training one target did. `status` is registered, skipped or failed."""

    spec_name: str
    product_group: str
    status: str
    message: str = ""
    model_id: str | None = None
    algorithm: str | None = None
    test_metrics: dict[str, Any] = field(default_factory=dict)
    lift_top_decile: float | None = None
    promoted: bool = False
    promotion_reason: str = ""
    candidates: tuple[CandidateResult, ...] = ()
    parity_max_abs_diff: float | None = None
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: Stratified k-fold only: folds, mean and std of the chosen candidate's fold ROC AUCs.
    cv: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class TrainReport:
    results: list[ModelResult]
    seconds: float

    @property
    def failed(self) -> list[ModelResult]:
        return [r for r in self.results if r.status == "failed"]

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per target: group, algorithm, test/oracle/PR AUC, lift@top decile, promoted."""
        return [
            {
                "spec": r.spec_name,
                "product_group": r.product_group,
                "status": r.status,
                "model_id": r.model_id,
                "algorithm": r.algorithm,
                "test_roc_auc": r.test_metrics.get("roc_auc"),
                "oracle_roc_auc": r.test_metrics.get("oracle_roc_auc"),
                "observable_oracle_roc_auc": r.test_metrics.get("observable_oracle_roc_auc"),
                "test_pr_auc": r.test_metrics.get("pr_auc"),
                "lift_top_decile": r.lift_top_decile,
                "cv_roc_auc_mean": r.cv["roc_auc_mean"] if r.cv else None,
                "cv_roc_auc_std": r.cv["roc_auc_std"] if r.cv else None,
                "promoted": r.promoted,
                "note": r.promotion_reason if r.status == "registered" else r.message,
            }
            for r in self.results
        ]


def _refit(
    target: TrainingTarget,
    algorithm: str,
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None = None,
) -> Any:
    """The candidate with the search's best parameters, fitted on all training rows."""
    est = build_estimator(
        algorithm,
        params,
        n_features=X.shape[1],
        categorical_idx=[target.feature_names.index(c) for c in target.categorical],
        random_state=target.spec.random_state,
    )
    fit_estimator(est, X, y, sample_weight)
    return est


def _fit_candidate(
    target: TrainingTarget, algorithm: str, ex: Examples
) -> tuple[Any, CandidateResult, np.ndarray]:
    """Search and refit one candidate; with its validation probabilities (reused by ensembles)."""
    spec = target.spec
    X_tr, y_tr, c_tr = ex.part("train")
    w_tr = ex.weights("train")
    X_va, y_va, _ = ex.part("validation")
    cat_idx = [target.feature_names.index(c) for c in target.categorical]
    started = time.perf_counter()
    search = search_algorithm(
        algorithm,
        spec.candidates[algorithm],
        X_tr,
        y_tr,
        c_tr,
        n_folds=spec.search_folds,
        categorical_idx=cat_idx,
        random_state=spec.random_state,
        max_rows=spec.search_max_rows,
        sample_weight=w_tr,
    )
    est = _refit(target, algorithm, search.best_params, X_tr, y_tr, w_tr)
    p_va = est.predict_proba(X_va)[:, 1]
    val_auc = float(roc_auc_score(y_va, p_va))
    result = CandidateResult(
        algorithm=algorithm,
        params=search.best_params,
        search_auc=search.best_score,
        validation_auc=val_auc,
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "%s/%s %s: validation AUC %.4f (search %s) in %.1fs",
        spec.name,
        target.product_group,
        algorithm,
        val_auc,
        "n/a" if search.best_score is None else f"{search.best_score:.4f}",
        result.seconds,
    )
    return est, result, p_va


def _fit_candidate_kfold(
    target: TrainingTarget, algorithm: str, ex: Examples
) -> tuple[Any, CandidateResult, SearchResult]:
    """Stratified k-fold search on the training share, then a refit on all of it."""
    spec = target.spec
    X_tr, y_tr, _ = ex.part("train")
    cat_idx = [target.feature_names.index(c) for c in target.categorical]
    started = time.perf_counter()
    search = kfold_search(
        algorithm,
        spec.candidates[algorithm],
        X_tr,
        y_tr,
        n_folds=spec.search_folds,
        categorical_idx=cat_idx,
        random_state=spec.random_state,
        max_rows=spec.search_max_rows,
    )
    est = _refit(target, algorithm, search.best_params, X_tr, y_tr)
    assert search.best_score is not None
    result = CandidateResult(
        algorithm=algorithm,
        params=search.best_params,
        search_auc=search.best_score,
        validation_auc=search.best_score,
        seconds=time.perf_counter() - started,
        fold_auc=search.fold_auc,
    )
    logger.info(
        "%s/%s %s: %d-fold CV AUC %.4f +- %.4f in %.1fs",
        spec.name,
        target.product_group,
        algorithm,
        spec.search_folds,
        search.best_score,
        float(np.std(search.fold_auc)),
        result.seconds,
    )
    return est, result, search


def _metric(y: np.ndarray, p: np.ndarray, name: str) -> float:
    return float(roc_auc_score(y, p) if name == "roc_auc" else average_precision_score(y, p))


def _promotion_decision(
    con, target: TrainingTarget, ex: Examples, challenger_p: np.ndarray
) -> tuple[bool, str, dict[str, Any]]:
    """Compare with the current champion on the SAME test rows (the champion's ONNX is rescored)."""
    spec = target.spec
    metric, margin = spec.promotion_metric, spec.promotion_margin
    champion_id = get_alias(con, target.product_group, "champion")
    X_te, y_te, _ = ex.part("test")
    mine = _metric(y_te, challenger_p, metric)
    if champion_id is None:
        return True, f"first model for {target.product_group}", {"challenger": mine}
    champ = model_row(con, champion_id, with_onnx=True)
    names = list(champ["feature_names"] or [])
    missing = [f for f in names if f not in ex.feature_names]
    if missing:
        return (
            False,
            f"champion {champion_id} needs feature(s) {', '.join(missing[:5])} absent from "
            f"{spec.relation}; not compared (promote manually)",
            {"challenger": mine},
        )
    idx = [ex.feature_names.index(f) for f in names]
    try:
        champ_p = onnx_predict_proba(champ["onnx_model"], X_te[:, idx])[:, 1]
    except Exception as exc:  # an unreadable champion must not block a new model
        return True, f"champion {champion_id} cannot be scored ({exc}); replaced", {}
    theirs = _metric(y_te, champ_p, metric)
    detail = {"metric": metric, "challenger": mine, "champion": theirs, "margin": margin}
    cutoffs = ("cutoffs " if spec.is_temporal else "") + ", ".join(ex.cutoffs_by_split["test"])
    if mine >= theirs + margin:
        return (
            True,
            f"test {metric} {mine:.4f} beats champion {champion_id} {theirs:.4f} + margin "
            f"{margin:g} on {cutoffs}",
            detail,
        )
    return (
        False,
        f"test {metric} {mine:.4f} does not beat champion {champion_id} {theirs:.4f} + margin "
        f"{margin:g} on {cutoffs}",
        detail,
    )


# ------------------------------------------------------------------------------------- steps


@dataclass(frozen=True, kw_only=True)
class Choice:
    """Step 2: every candidate searched and refitted on the training rows; the best one by
    validation ROC AUC (mean CV ROC AUC without a time axis). The test period is never used."""

    candidates: tuple[CandidateResult, ...]
    best: CandidateResult
    estimator: Any  # the best candidate, fitted, uncalibrated
    search: SearchResult | None  # stratified k-fold: the best candidate's search (OOF scores)
    #: every candidate's fitted estimator and search, for `runner_up`
    fitted: Mapping[str, tuple[Any, SearchResult | None]] = field(default_factory=dict)
    #: ensembles fitted and reported but not eligible: they missed the best candidate + margin
    not_chosen: frozenset[str] = frozenset()
    #: temporal: each single candidate's probabilities on the validation rows (from its fit)
    validation_proba: Mapping[str, np.ndarray] = field(default_factory=dict)

    def ranked(self) -> list[CandidateResult]:
        """The eligible candidates, best validation ROC AUC first."""
        eligible = [c for c in self.candidates if c.algorithm not in self.not_chosen]
        return sorted(eligible, key=lambda c: c.validation_auc, reverse=True)

    def with_best(self, candidate: CandidateResult) -> Choice:
        """The same choice with `candidate` as the one to calibrate and export."""
        estimator, search = self.fitted[candidate.algorithm]
        return replace(self, best=candidate, estimator=estimator, search=search)


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """Step 3: the Platt-calibrated model and the threshold chosen on the validation scores."""

    model: SigmoidCalibratedClassifier
    y_validation: np.ndarray
    p_validation: np.ndarray
    threshold: float
    threshold_note: str
    #: Stratified k-fold only: folds, mean and std of the chosen candidate's fold ROC AUCs.
    cv: dict[str, Any] | None


@dataclass(frozen=True, kw_only=True)
class Evaluated:
    """Step 4: test-period scores and every evaluation row the registry stores."""

    p_test: np.ndarray
    test_metrics: dict[str, Any]
    validation_metrics: dict[str, Any]
    lift: list[dict[str, Any]]
    calibration_bins: list[dict[str, Any]]
    importance: list[dict[str, Any]]
    curves: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class Reference:
    """Step 5b: the drift references, the bins of every feature and of the calibrated score on
    the training rows (`models_py.training._reference`), for ``ml.reference_distributions``."""

    rows: tuple[dict[str, Any], ...]


@dataclass(frozen=True, kw_only=True)
class Export:
    """Step 5: the ONNX bytes that passed the parity gate."""

    model_id: str
    trained_at: dt.datetime
    onnx_model: bytes
    parity_max_abs_diff: float


@dataclass(frozen=True, kw_only=True)
class TrainedModel:
    """Everything one target's training produced; `register_trained` saves it."""

    target: TrainingTarget
    examples: Examples
    choice: Choice
    calibration: Calibration
    evaluation: Evaluated
    reference: Reference
    export: Export
    rows: dict[str, int]
    seconds: float

    def result(self, **changes: Any) -> ModelResult:
        """The `ModelResult` of this model (status ``trained`` unless `changes` say otherwise)."""
        ev = self.evaluation
        lift = ev.lift
        values: dict[str, Any] = {
            "spec_name": self.target.spec.name,
            "product_group": self.target.product_group,
            "status": "trained",
            "model_id": self.export.model_id,
            "algorithm": self.choice.best.algorithm,
            "test_metrics": ev.test_metrics,
            "lift_top_decile": float(lift[0]["lift"]) if lift and lift[0]["lift"] else None,
            "candidates": self.choice.candidates,
            "parity_max_abs_diff": self.export.parity_max_abs_diff,
            "rows": self.rows,
            "seconds": self.seconds,
            "cv": self.calibration.cv,
        }
        return ModelResult(**{**values, **changes})


def load(settings: Settings, target: TrainingTarget) -> Examples:
    """Step 1: read the target's examples (read-only connection) and refuse known-bad inputs."""
    with closing(connect(settings.warehouse, read_only=True, threads=settings.threads)) as con:
        ex = load_examples(con, target)
    refuse_bad_inputs(target, ex)
    return ex


def _skip_reason(target: TrainingTarget, ex: Examples) -> str | None:
    """Why the target cannot be trained or evaluated (a split with one label class), or None."""
    for s in SPLITS if target.spec.is_temporal else ("train", "test"):
        y_s = ex.y[ex.split == s]
        if len(np.unique(y_s)) < 2:
            return (
                f"{s} period has only {'positive' if y_s.mean() > 0.5 else 'negative'} labels "
                f"({len(y_s)} rows): cannot train or evaluate"
            )
    return None


def choose_candidate(
    target: TrainingTarget, ex: Examples, *, on_step: Callable[[str], None]
) -> Choice:
    """Step 2: search and refit every available candidate; keep the best on validation."""
    fitted: dict[str, Any] = {}
    searches: dict[str, SearchResult] = {}
    candidates: list[CandidateResult] = []
    validation_proba: dict[str, np.ndarray] = {}
    for algorithm in available_algorithms(list(target.spec.candidates)):
        if target.spec.is_temporal:
            est, cand, validation_proba[algorithm] = _fit_candidate(target, algorithm, ex)
        else:
            est, cand, searches[algorithm] = _fit_candidate_kfold(target, algorithm, ex)
        fitted[algorithm] = est
        candidates.append(cand)
        on_step(algorithm)
    best_single = max(candidates, key=lambda c: c.validation_auc)
    passed: list[str] = []
    if target.spec.ensembles:
        spec = target.spec
        if spec.is_temporal:
            X_va, y_va, _ = ex.part("validation")
            built = [
                (ens, None)
                for ens in fit_ensembles(
                    spec.ensembles,
                    dict(fitted),
                    X_va,
                    y_va,
                    random_state=spec.random_state,
                    p_va=validation_proba,
                )
            ]
        else:
            X_tr, y_tr, _ = ex.part("train")
            built = fit_ensembles_kfold(
                spec.ensembles,
                dict(fitted),
                searches,
                X_tr,
                y_tr,
                n_folds=spec.search_folds,
                random_state=spec.random_state,
            )
        for ens, ens_search in built:
            fitted[ens.kind] = ens.estimator
            if ens_search is not None:
                searches[ens.kind] = ens_search
            candidates.append(
                CandidateResult(
                    algorithm=ens.kind,
                    params={"members": list(ens.members)},
                    search_auc=ens_search.best_score if ens_search else None,
                    validation_auc=ens.validation_auc,
                    seconds=ens.seconds,
                    fold_auc=list(ens_search.fold_auc) if ens_search else [],
                )
            )
            beats = ens.validation_auc >= best_single.validation_auc + target.spec.promotion_margin
            if beats:
                passed.append(ens.kind)
            logger.info(
                "%s/%s %s of %s: validation AUC %.4f, %s the best candidate's %.4f + margin %g",
                target.spec.name,
                target.product_group,
                ens.kind,
                ", ".join(ens.members),
                ens.validation_auc,
                "beats" if beats else "does not beat",
                best_single.validation_auc,
                target.spec.promotion_margin,
            )
    not_chosen = frozenset(set(target.spec.ensembles) - set(passed))
    best = max(
        (c for c in candidates if c.algorithm not in not_chosen), key=lambda c: c.validation_auc
    )
    return Choice(
        candidates=tuple(candidates),
        best=best,
        estimator=fitted[best.algorithm],
        search=searches.get(best.algorithm),
        fitted={a: (est, searches.get(a)) for a, est in fitted.items()},
        not_chosen=not_chosen,
        validation_proba=validation_proba,
    )


def calibrate(target: TrainingTarget, ex: Examples, choice: Choice) -> Calibration:
    """Step 3: Platt scaling and the threshold, on data the candidate was not fitted on."""
    spec = target.spec
    cv: dict[str, Any] | None = None
    if spec.is_temporal:
        # Platt scaling and the threshold on the validation period (after the train cutoffs),
        # from the candidate's validation probabilities when its fit kept them.
        X_va, y_va, _ = ex.part("validation")
        p_raw = choice.validation_proba.get(choice.best.algorithm)
        if p_raw is None:
            p_raw = choice.estimator.predict_proba(X_va)[:, 1]
        model = SigmoidCalibratedClassifier(choice.estimator).fit_scores(p_raw, y_va)
        p_va = model.calibrate(p_raw)
    else:
        # Platt scaling fitted on the chosen configuration's out-of-fold predictions (as
        # CalibratedClassifierCV(ensemble=False)); the threshold on the same, calibrated.
        search = choice.search
        assert search is not None and search.oof_proba is not None
        assert search.oof_index is not None
        y_va = ex.part("train")[1][search.oof_index]
        model = SigmoidCalibratedClassifier(choice.estimator).fit_scores(search.oof_proba, y_va)
        p_va = model.calibrate(search.oof_proba)
        cv = {
            "protocol": "stratified_kfold",
            "folds": spec.search_folds,
            "test_share": spec.test_share,
            "random_state": spec.random_state,
            "rows": len(y_va),
            "roc_auc_mean": float(np.mean(search.fold_auc)),
            "roc_auc_std": float(np.std(search.fold_auc)),
            "fold_roc_auc": list(search.fold_auc),
        }
    threshold, note = choose_threshold(y_va, p_va, spec.threshold)
    if not spec.is_temporal:
        note = note.replace("on validation", "on out-of-fold predictions")
    return Calibration(
        model=model,
        y_validation=y_va,
        p_validation=p_va,
        threshold=threshold,
        threshold_note=note,
        cv=cv,
    )


def evaluate(target: TrainingTarget, ex: Examples, calibration: Calibration) -> Evaluated:
    """Step 4: score the test period once; metrics, lift, calibration, importance, curves."""
    spec = target.spec
    model, threshold = calibration.model, calibration.threshold
    X_te, y_te, _ = ex.part("test")
    p_te = model.predict_proba(X_te)[:, 1]
    is_test = ex.split == "test"
    test_metrics = binary_metrics(
        y_te,
        p_te,
        threshold,
        oracle=ex.oracle[is_test] if ex.oracle is not None else None,
        observable_oracle=(
            ex.observable_oracle[is_test] if ex.observable_oracle is not None else None
        ),
    )
    return Evaluated(
        p_test=p_te,
        test_metrics=test_metrics,
        validation_metrics=binary_metrics(
            calibration.y_validation, calibration.p_validation, threshold
        ),
        lift=lift_by_decile(y_te, p_te),
        calibration_bins=calibration_bins(y_te, p_te),
        importance=permutation_importance_rows(
            model.estimator,
            X_te,
            y_te.astype(int),
            target.feature_names,
            max_rows=spec.importance_rows,
            random_state=spec.random_state,
        ),
        curves=curve_points(y_te, p_te),
    )


def export(
    target: TrainingTarget,
    ex: Examples,
    choice: Choice,
    calibration: Calibration,
    evaluation: Evaluated,
    *,
    export_hook: Callable[[bytes], bytes] | None = None,
) -> Export:
    """Step 5: ONNX bytes with their metadata, behind the parity gate on every test row.

    `export_hook` (tests) may replace the ONNX bytes between export and the parity gate.
    """
    spec = target.spec
    trained_at = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    model_id = (
        f"{target.product_group}-{short_name(choice.best.algorithm)}-"
        f"{trained_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    )
    cutoffs = ex.cutoffs_by_split
    onnx_bytes = export_onnx(
        calibration.model,
        feature_names=target.feature_names,
        threshold=calibration.threshold,
        metadata={
            "model_id": model_id,
            "spec_name": spec.name,
            "product_group": target.product_group,
            "algorithm": choice.best.algorithm,
            "validation_protocol": spec.protocol(),
            "train_cutoffs": cutoffs["train"],
            "validation_cutoffs": cutoffs["validation"],
            "test_cutoffs": cutoffs["test"],
            "trained_at": trained_at.isoformat(),
        },
    )
    if export_hook is not None:
        onnx_bytes = export_hook(onnx_bytes)
    X_te = ex.part("test")[0]
    parity = check_parity(
        onnx_bytes, calibration.model, X_te, model_id=model_id, expected=evaluation.p_test
    )
    return Export(
        model_id=model_id, trained_at=trained_at, onnx_model=onnx_bytes, parity_max_abs_diff=parity
    )


def reference(target: TrainingTarget, ex: Examples, exported: Export) -> Reference:
    """Step 5b: bin every feature and the calibrated score on the training rows (the rows the
    model was fitted on, within the spec's `max_training_rows`), weighted by their sampling
    weights (a label-stratified sample over-represents positives; unit weights otherwise). The
    score comes from the exported ONNX model, so it is computed as scoring computes it."""
    X_tr = ex.part("train")[0]
    score = onnx_predict_proba(exported.onnx_model, X_tr)[:, 1]
    rows = reference_rows(
        X_tr,
        target.feature_names,
        score,
        categorical=target.categorical,
        weights=ex.weights("train"),
    )
    return Reference(rows=tuple(rows))


def shap_importance(
    target: TrainingTarget, ex: Examples, choice: Choice, evaluated: Evaluated, exported: Export
) -> Evaluated:
    """Step 5c: mean |SHAP| per feature of the exported model, beside its permutation importance,
    on the same stratified test subsample (`importance_rows`; docs/explaining.md)."""
    spec = target.spec
    if spec.importance_rows <= 0:
        return evaluated
    started = time.perf_counter()
    X_te, y_te, _ = ex.part("test")
    idx = importance_sample(y_te.astype(int), spec.importance_rows, random_state=spec.random_state)
    rows = mean_abs_shap_rows(
        algorithm=choice.best.algorithm,
        estimator=choice.estimator,
        onnx_bytes=exported.onnx_model,
        model_id=exported.model_id,
        X=X_te[idx],
        feature_names=target.feature_names,
    )
    logger.info(
        "%s/%s: mean |SHAP| (%s) in %.2fs",
        spec.name,
        target.product_group,
        rows[0]["shap_method"] if rows else f"none for {choice.best.algorithm}",
        time.perf_counter() - started,
    )
    return replace(evaluated, importance=merge_importance(evaluated.importance, rows))


def fit_target(
    settings: Settings,
    target: TrainingTarget,
    *,
    on_step: Callable[[str], None] | None = None,
    export_hook: Callable[[bytes], bytes] | None = None,
) -> TrainedModel | ModelResult:
    """Load -> choose candidate -> calibrate -> evaluate -> export for one target. Writes
    nothing: returns the `TrainedModel` for `register_trained`, or a ``skipped`` `ModelResult`."""
    started = time.perf_counter()
    step = on_step or (lambda _name: None)
    spec = target.spec
    # OpenMP (HistGradientBoosting) and BLAS (logistic regression) spin-wait on a busy machine,
    # so fits run single-threaded; random forests still use n_jobs (joblib threads).
    with threadpool_limits(limits=1):
        ex = load(settings, target)
        rows = {s: int((ex.split == s).sum()) for s in SPLITS}
        reason = _skip_reason(target, ex)
        if reason is not None:
            logger.warning("%s/%s skipped: %s", spec.name, target.product_group, reason)
            return ModelResult(
                spec_name=spec.name,
                product_group=target.product_group,
                status="skipped",
                message=reason,
                rows=rows,
            )
        choice = choose_candidate(target, ex, on_step=step)
        # The best candidate whose ONNX export passes the parity gate: a model that cannot be
        # exported faithfully is never deployed, the next best by validation AUC is.
        ranked = choice.ranked()
        for i, candidate in enumerate(ranked):
            choice = choice.with_best(candidate)
            calibration = calibrate(target, ex, choice)
            evaluation = evaluate(target, ex, calibration)
            try:
                exported = export(
                    target, ex, choice, calibration, evaluation, export_hook=export_hook
                )
                break
            except ParityError as exc:
                if i == len(ranked) - 1:
                    raise
                logger.warning(
                    "%s/%s: %s failed the parity gate (%s); exporting %s instead",
                    spec.name,
                    target.product_group,
                    candidate.algorithm,
                    exc,
                    ranked[i + 1].algorithm,
                )
        if calibration.cv is not None:  # the out-of-fold predictions are the validation rows
            rows = {**rows, "validation": calibration.cv["rows"]}
        references = reference(target, ex, exported)
        evaluation = shap_importance(target, ex, choice, evaluation, exported)
    step("export")
    trained = TrainedModel(
        target=target,
        examples=ex,
        choice=choice,
        calibration=calibration,
        evaluation=evaluation,
        reference=references,
        export=exported,
        rows=rows,
        seconds=time.perf_counter() - started,
    )
    oracle = evaluation.test_metrics["oracle_roc_auc"]
    logger.info(
        "%s/%s: %s test AUC %.4f%s; registered when every target of the run is trained",
        spec.name,
        target.product_group,
        choice.best.algorithm,
        evaluation.test_metrics["roc_auc"],
        "" if oracle is None else f" (oracle {oracle:.4f})",
    )
    return trained


def register_trained(con, trained: TrainedModel, *, actor: str = "propensity") -> ModelResult:
    """Step 6 (in the caller's transaction): decide promotion against the champion of now and
    save the model and its evaluation rows in the registry."""
    require_ml_tables(con)
    target, ev, cal, exp = trained.target, trained.evaluation, trained.calibration, trained.export
    spec, best = target.spec, trained.choice.best
    promote, reason, comparison = _promotion_decision(con, target, trained.examples, ev.p_test)
    cutoffs = trained.examples.cutoffs_by_split
    metrics_json = {
        "protocol": spec.protocol(),
        "selection": (
            "best validation roc_auc among candidates (uncalibrated model)"
            if spec.is_temporal
            else f"best mean {spec.search_folds}-fold CV roc_auc among candidates"
        ),
        "test": ev.test_metrics,
        "validation": ev.validation_metrics,
        **({"cv": cal.cv} if cal.cv is not None else {}),
        "candidates": [dict(c.__dict__) for c in trained.choice.candidates],
        "calibration": {
            "method": "sigmoid",
            "fitted_on": "validation period" if spec.is_temporal else "out-of-fold predictions",
            "coef": cal.model.coef_,
            "intercept": cal.model.intercept_,
        },
        "threshold_note": cal.threshold_note,
        "parity_max_abs_diff": exp.parity_max_abs_diff,
        "rows": trained.rows,
        "promotion": {"promoted": promote, "reason": reason, **comparison},
    }
    record = ModelRecord(
        model_id=exp.model_id,
        spec_name=spec.name,
        product_group=target.product_group,
        algorithm=best.algorithm,
        hyperparameters=best.params,
        trained_at=exp.trained_at,
        training_relation=spec.relation,
        train_cutoffs=cutoffs["train"],
        validation_cutoffs=cutoffs["validation"],
        test_cutoffs=cutoffs["test"],
        feature_names=target.feature_names,
        feature_hash=feature_hash(target.feature_names),
        threshold=cal.threshold,
        threshold_rule=spec.threshold.describe(),
        metrics=metrics_json,
        onnx_model=exp.onnx_model,
        library_versions=library_versions(),
    )
    rows = EvaluationRows(
        metrics=[
            {"split": "validation", **ev.validation_metrics},
            {"split": "test", **ev.test_metrics},
        ],
        lift=[{"split": "test", **r} for r in ev.lift],
        calibration=[{"split": "test", **r} for r in ev.calibration_bins],
        importance=ev.importance,
        curves=[{"split": "test", **r} for r in ev.curves],
        reference=list(trained.reference.rows),
    )
    register_model(con, record, rows, promote=promote, reason=reason, actor=actor)
    logger.info("%s/%s: registered %s; %s", spec.name, target.product_group, exp.model_id, reason)
    return trained.result(status="registered", promoted=promote, promotion_reason=reason)


def train_target(
    settings: Settings,
    target: TrainingTarget,
    *,
    actor: str = "propensity",
    on_step: Callable[[str], None] | None = None,
    export_hook: Callable[[bytes], bytes] | None = None,
) -> ModelResult:
    """Train, evaluate, export and register one target. Nothing is written unless every step,
    including the parity gate, succeeds."""
    outcome = fit_target(settings, target, on_step=on_step, export_hook=export_hook)
    if isinstance(outcome, ModelResult):
        return outcome
    with closing(connect(settings.warehouse, threads=settings.threads)) as con, transaction(con):
        result = register_trained(con, outcome, actor=actor)
    if on_step is not None:
        on_step("register")
    return result


# ---------------------------------------------------------------------------------- a run


def plan_training(
    settings: Settings,
    *,
    specs: Sequence[ModelSpec] | None = None,
    spec_path: Path | str | None = None,
    groups: Sequence[str] | None = None,
) -> list[TrainingTarget]:
    """Validate specs against the warehouse and list the targets `train` would fit."""
    specs = list(specs) if specs is not None else load_specs(spec_path)
    with closing(connect(settings.warehouse, read_only=True, threads=settings.threads)) as con:
        require_ml_tables(con)
        targets: list[TrainingTarget] = []
        for spec in specs:
            targets += resolve_spec(con, spec, only_groups=groups)
    return targets


def train(
    settings: Settings,
    *,
    specs: Sequence[ModelSpec] | None = None,
    spec_path: Path | str | None = None,
    groups: Sequence[str] | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    actor: str = "propensity",
    jobs: int | None = None,
    on_register: Callable[[Any, list[ModelResult]], None] | None = None,
) -> TrainReport:
    """Train every target of the specs (default: the packaged ``specs/default.yml``).

    Parameters
    ----------
    settings : Settings
        The warehouse (must hold the training relation and the ``ml`` tables).
    specs, spec_path : optional
        Spec objects, or a YAML path; default the packaged spec file.
    groups : sequence of str, optional
        Train only these product groups.
    progress : callable, optional
        Called with a `TrainProgress` after each candidate and after export/registration.
    actor : str
        Recorded as ``changed_by`` in ``ml.alias_history``.
    jobs : int, optional
        Targets fitted at once (default ``settings.threads``); results do not depend on it.
    on_register : callable, optional
        Called as ``on_register(con, results)`` inside the registration transaction, after the
        models are saved, to write more rows that must land with them (or not at all).

    Returns
    -------
    TrainReport
        One `ModelResult` per target. A target whose parity gate or data check fails is
        reported as ``failed`` (nothing written for it) and the others still train;
        configuration errors raise `ConfigError` before any training. The trained targets are
        registered together at the end, in one transaction: a run that is killed never leaves
        part of its models behind.
    """
    started = time.perf_counter()
    targets = plan_training(settings, specs=specs, spec_path=spec_path, groups=groups)
    if any("lightgbm" in t.spec.candidates for t in targets) and not lightgbm_available():
        logger.info("lightgbm is not installed: its candidate is skipped (pip install .[lightgbm])")
    per_target = [len(available_algorithms(list(t.spec.candidates))) + 2 for t in targets]
    ticks = _Ticks(progress, total=sum(per_target))

    def fit_one(index: int) -> ModelResult | TrainedModel:
        target = targets[index]
        try:
            outcome = fit_target(settings, target, on_step=lambda name: ticks(index, target, name))
        except ConfigError:
            raise
        except Exception as exc:  # one failing group must not lose the others' work
            if not isinstance(exc, PropensityError):
                logger.exception("%s/%s: unexpected error", target.spec.name, target.product_group)
            logger.error("%s/%s failed: %s", target.spec.name, target.product_group, exc)
            outcome = ModelResult(
                spec_name=target.spec.name,
                product_group=target.product_group,
                status="failed",
                message=str(exc),
            )
        # skipped/failed targets still advance the bar (a trained one registers at the end)
        trained = isinstance(outcome, TrainedModel)
        for _ in range(per_target[index] - ticks.count(index) - trained):
            ticks(index, target, "skipped")
        return outcome

    # Targets are independent and write nothing, so `jobs` of them fit at once (threads: the
    # fits release the GIL, results stay in target order). Every fit is single-threaded; the
    # limit is set around the pool so no thread restores another's setting on exit.
    jobs = max(1, min(jobs if jobs is not None else settings.threads, len(targets)))
    with threadpool_limits(limits=1):
        if jobs == 1:
            results = [fit_one(i) for i in range(len(targets))]
        else:
            with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="fit") as pool:
                results = list(pool.map(fit_one, range(len(targets))))
    if any(isinstance(r, TrainedModel) for r in results):
        # All targets land in one transaction: a run killed or failing before this point leaves
        # the registry exactly as it was, and a run never publishes half of its models.
        with (
            closing(connect(settings.warehouse, threads=settings.threads)) as con,
            transaction(con),
        ):
            registered = [
                register_trained(con, r, actor=actor) if isinstance(r, TrainedModel) else r
                for r in results
            ]
            if on_register is not None:
                on_register(con, registered)
        for index, r in enumerate(results):
            if isinstance(r, TrainedModel):
                ticks(index, r.target, "register")
    else:
        registered = [r for r in results if isinstance(r, ModelResult)]
    return TrainReport(results=registered, seconds=time.perf_counter() - started)


class _Ticks:
    """Counts finished steps over a run (per target and in all) and reports each as a
    `TrainProgress`; called from the fitting threads."""

    def __init__(self, progress: Callable[[TrainProgress], None] | None, *, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0
        self._per_target: dict[int, int] = {}
        self._lock = threading.Lock()

    def count(self, index: int) -> int:
        with self._lock:
            return self._per_target.get(index, 0)

    def __call__(self, index: int, target: TrainingTarget, step: str) -> None:
        with self._lock:
            self.done += 1
            self._per_target[index] = self._per_target.get(index, 0) + 1
            event = TrainProgress(
                spec_name=target.spec.name,
                product_group=target.product_group,
                step=step,
                completed=self.done,
                total=self.total,
            )
            if self.progress is not None:
                self.progress(event)


def summary_json(report: TrainReport) -> str:
    return json.dumps(report.summary_rows(), default=str, indent=2)
