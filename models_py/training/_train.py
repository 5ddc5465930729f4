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
6. the model is registered as challenger and promoted to champion when its test metric beats the
   current champion's on the same test rows by the spec's margin (the first model is promoted).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.metrics import average_precision_score, roc_auc_score
from threadpoolctl import threadpool_limits

from models_py._errors import ConfigError, InputDataError, PropensityError
from models_py._settings import Settings
from models_py._warehouse import connect, qualified, quote_ident, transaction
from models_py.registry import (
    Evaluation,
    ModelRecord,
    get_alias,
    model_row,
    register_model,
    require_ml_tables,
)
from models_py.training._algorithms import TREE_ALGORITHMS, short_name
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
from models_py.training._evaluate import (
    binary_metrics,
    calibration_bins,
    choose_threshold,
    curve_points,
    lift_by_decile,
    permutation_importance_rows,
)
from models_py.training._export import (
    check_parity,
    export_onnx,
    feature_hash,
    library_versions,
    onnx_predict_proba,
)
from models_py.training._specs import ModelSpec, TrainingTarget, load_specs, resolve_spec

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


# ------------------------------------------------------------------------------------ results


@dataclass(frozen=True, kw_only=True)
class TrainProgress:
    """One step done: a candidate searched and fitted, or a model exported and registered."""

    spec_name: str
    product_group: str
    step: str
    completed: int
    total: int


@dataclass(kw_only=True)
class CandidateResult:
    algorithm: str
    params: dict[str, Any]
    search_auc: float | None
    validation_auc: float
    seconds: float
    fold_auc: list[float] = field(default_factory=list)


@dataclass(kw_only=True)
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
    candidates: list[CandidateResult] = field(default_factory=list)
    parity_max_abs_diff: float | None = None
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: Stratified k-fold only: folds, mean and std of the chosen candidate's fold ROC AUCs.
    cv: dict[str, Any] | None = None


@dataclass(kw_only=True)
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


# -------------------------------------------------------------------------------------- data


@dataclass(kw_only=True)
class Examples:
    """The rows of one target, sorted by (cutoff, ids).

    Without a time axis (stratified k-fold) `cutoff` is all zeros, `split` is ``train`` or
    ``test`` (a stratified held-out share) and `cutoffs_by_split` describes the protocol.
    """

    X: np.ndarray  # float32 [n, n_features]
    y: np.ndarray  # int8
    cutoff: np.ndarray  # datetime64[D] (or zeros without a cutoff column)
    split: np.ndarray  # str
    oracle: np.ndarray | None  # float64, NaN where missing
    feature_names: tuple[str, ...]
    cutoffs_by_split: dict[str, list[str]]
    observable_oracle: np.ndarray | None = None  # float64, NaN where missing (docs/oracle.md)

    def part(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mask = self.split == split
        return self.X[mask], self.y[mask], self.cutoff[mask]


def _split_quotas(con, target: TrainingTarget) -> tuple[pa.Table, dict[str, list[str]]]:
    """Per (cutoff, split): how many rows to read. Splits come from the split column or, without
    one, from the cutoffs (newest `test_cutoffs` = test, the `validation_cutoffs` before them =
    validation, the rest = train)."""
    spec = target.spec
    rel = qualified(spec.schema_name, spec.table_name)
    where, params = _group_filter(target)
    split_expr = f"cast({quote_ident(spec.split)} as varchar)" if spec.split else "null"
    rows = con.execute(
        f"select {quote_ident(spec.cutoff)} as cutoff, {split_expr} as split, count(*) as n "
        f"from {rel} {where} group by all order by 1, 2",
        params,
    ).fetchall()
    if not rows:
        raise InputDataError(f"{spec.relation} has no rows for {target.product_group}")
    if any(r[0] is None for r in rows):
        raise InputDataError(f"{spec.relation}: {spec.cutoff} is null in some rows")
    if spec.split:
        bad = sorted({str(r[1]) for r in rows if r[1] not in SPLITS})
        if bad:
            raise InputDataError(
                f"{spec.relation}.{spec.split} holds {', '.join(bad)}; allowed: train, "
                "validation, test"
            )
        assigned = [(r[0], r[1], r[2]) for r in rows]
    else:
        cutoffs = sorted({r[0] for r in rows})
        n_test, n_val = spec.test_cutoffs, spec.validation_cutoffs
        if len(cutoffs) < n_test + n_val + 1:
            raise InputDataError(
                f"{spec.relation} has {len(cutoffs)} cutoffs for {target.product_group}; "
                f"need at least {n_test + n_val + 1} (test {n_test}, validation {n_val}, train 1)"
            )
        label = {c: "train" for c in cutoffs}
        for c in cutoffs[len(cutoffs) - n_test :]:
            label[c] = "test"
        for c in cutoffs[len(cutoffs) - n_test - n_val : len(cutoffs) - n_test]:
            label[c] = "validation"
        assigned = [(r[0], label[r[0]], r[2]) for r in rows]
    by_split: dict[str, list[Any]] = {s: [] for s in SPLITS}
    for cutoff, split, _ in assigned:
        by_split[split].append(cutoff)
    missing = [s for s in SPLITS if not by_split[s]]
    if missing:
        raise InputDataError(
            f"{spec.relation} has no {', '.join(missing)} rows for {target.product_group}"
        )
    caps = {
        "train": spec.max_training_rows,
        "validation": spec.max_evaluation_rows,
        "test": spec.max_evaluation_rows,
    }
    quota = [max(1, caps[s] // len(set(by_split[s]))) for _, s, _ in assigned]
    table = pa.table(
        {
            "cutoff": pa.array([a[0] for a in assigned]),
            "split": pa.array([a[1] for a in assigned], pa.string()),
            "quota": pa.array(quota, pa.int64()),
        }
    )
    cutoffs_by_split = {s: sorted({str(c) for c in by_split[s]}) for s in SPLITS}
    return table, cutoffs_by_split


def _group_filter(target: TrainingTarget, alias: str = "") -> tuple[str, list[Any]]:
    spec = target.spec
    if spec.group_column is None:
        return "", []
    prefix = f"{alias}." if alias else ""
    return f"where {prefix}{quote_ident(spec.group_column)} = ?", [target.group_value]


def load_examples(con, target: TrainingTarget) -> Examples:
    """Read one target's examples (stratified-by-cutoff subsample) as a float32 matrix."""
    spec = target.spec
    if not spec.is_temporal:
        return _load_kfold_examples(con, target)
    quotas, cutoffs_by_split = _split_quotas(con, target)
    view = f"__propensity_quotas_{uuid.uuid4().hex[:8]}"
    con.register(view, quotas)
    try:
        q = quote_ident
        feats = ", ".join(f"e.{q(c)}" for c in target.feature_names)
        split_expr = f"cast(e.{q(spec.split)} as varchar)" if spec.split else "null"
        oracle_join, oracle_cols = _oracle_join(target, [*spec.id_columns, spec.cutoff])
        where, params = _group_filter(target, "e")
        ids = ", ".join(f"e.{q(c)}" for c in spec.id_columns)
        src_ids = ", ".join(f"src.{q(c)}" for c in spec.id_columns)
        bare_ids = ", ".join(q(c) for c in spec.id_columns)
        join_split = "and s.split = src.__split" if spec.split else ""
        sql = f"""
            with src as (
                select {ids}, e.{q(spec.cutoff)} as __cutoff, {split_expr} as __split,
                    cast(e.{q(spec.label)} as integer) as __label, {oracle_cols},
                    {feats}
                from {qualified(spec.schema_name, spec.table_name)} as e
                {oracle_join}
                {where}
            ),
            final as (
                select src.*, s.split as __assigned
                from src
                inner join {q(view)} as s on src.__cutoff = s.cutoff {join_split}
                qualify row_number() over (
                    partition by src.__cutoff, s.split
                    order by hash({src_ids}, src.__cutoff, ?), {src_ids}
                ) <= s.quota
            )
            select * from final order by __cutoff, {bare_ids}
        """
        table = con.sql(sql, params=[*params, spec.random_state]).to_arrow_table()
    finally:
        con.unregister(view)
    y = _labels(target, table)
    cutoff = table.column("__cutoff").to_numpy(zero_copy_only=False).astype("datetime64[D]")
    split = np.asarray(table.column("__assigned").to_pylist(), dtype=object)
    return _examples(target, table, y=y, cutoff=cutoff, split=split, cutoffs=cutoffs_by_split)


def _labels(target: TrainingTarget, table: pa.Table) -> np.ndarray:
    spec = target.spec
    labels = table.column("__label")
    if labels.null_count:
        raise InputDataError(f"{spec.relation}.{spec.label} is null in {labels.null_count} rows")
    y = labels.to_numpy(zero_copy_only=False).astype(np.int8)
    bad = np.setdiff1d(np.unique(y), [0, 1])
    if bad.size:
        raise InputDataError(
            f"{spec.relation}.{spec.label} must be 0/1, found {', '.join(map(str, bad[:5]))}"
        )
    return y


def _oracle_join(target: TrainingTarget, keys: list[str | None]) -> tuple[str, str]:
    """(left join of the spec's oracle table on `keys` + the group column, the select list of
    ``__oracle`` and ``__observable_oracle``); NULL columns and no join without an oracle."""
    spec, q = target.spec, quote_ident
    cols = {"__oracle": None, "__observable_oracle": None}
    join = ""
    if target.oracle_available and spec.oracle is not None:
        o_schema, o_table = spec.oracle.relation.split(".")
        on = " and ".join(f"e.{q(k)} = o.{q(k)}" for k in [*keys, spec.group_column] if k)
        join = f"left join {qualified(o_schema, o_table)} as o on {on}"
        cols["__oracle"] = spec.oracle.probability
        if target.observable_oracle_available:
            cols["__observable_oracle"] = spec.oracle.observable_probability
    select = ", ".join(
        f"cast({'o.' + q(c) if c else 'null'} as double) as {alias}" for alias, c in cols.items()
    )
    return join, select


def _examples(
    target: TrainingTarget,
    table: pa.Table,
    *,
    y: np.ndarray,
    cutoff: np.ndarray,
    split: np.ndarray,
    cutoffs: dict[str, list[str]],
) -> Examples:
    n = table.num_rows
    X = np.empty((n, len(target.feature_names)), dtype=np.float32)
    for j, name in enumerate(target.feature_names):
        col = pc.cast(table.column(name), pa.float64())
        X[:, j] = col.to_numpy(zero_copy_only=False)
    oracle = observable = None
    if target.oracle_available:
        oracle = pc.cast(table.column("__oracle"), pa.float64()).to_numpy(zero_copy_only=False)
    if target.observable_oracle_available:
        observable = pc.cast(table.column("__observable_oracle"), pa.float64()).to_numpy(
            zero_copy_only=False
        )
    return Examples(
        X=X,
        y=y,
        cutoff=cutoff,
        split=split,
        oracle=oracle,
        observable_oracle=observable,
        feature_names=target.feature_names,
        cutoffs_by_split=cutoffs,
    )


def kfold_protocol(spec: ModelSpec) -> dict[str, list[str]]:
    """What the registry's cutoff columns hold for a table without a time axis."""
    k, share = spec.search_folds, spec.test_share
    return {
        "train": [f"stratified_kfold k={k}: training share {1 - share:g}"],
        "validation": [f"stratified_kfold k={k}: out-of-fold predictions on the training share"],
        "test": [
            f"stratified_kfold: held-out test share {share:g} (random_state {spec.random_state})"
        ],
    }


def _load_kfold_examples(con, target: TrainingTarget) -> Examples:
    """Rows of a table without a time axis, split into a stratified held-out test share.

    At most ``max_training_rows`` training and ``max_evaluation_rows`` test rows are read (a
    hashed random sample of the whole table); the split is stratified on the label and
    reproducible for a given `random_state` and table content.
    """
    from sklearn.model_selection import train_test_split

    spec = target.spec
    q = quote_ident
    feats = ", ".join(f"e.{q(c)}" for c in target.feature_names)
    oracle_join, oracle_cols = _oracle_join(target, list(spec.id_columns))
    where, params = _group_filter(target, "e")
    ids = ", ".join(f"e.{q(c)}" for c in spec.id_columns)
    bare_ids = ", ".join(q(c) for c in spec.id_columns)
    cap = int(
        min(
            spec.max_training_rows / (1 - spec.test_share),
            spec.max_evaluation_rows / spec.test_share,
        )
    )
    sql = f"""
        with src as (
            select {ids}, cast(e.{q(spec.label)} as integer) as __label,
                {oracle_cols}, {feats}
            from {qualified(spec.schema_name, spec.table_name)} as e
            {oracle_join}
            {where}
        ),
        final as (
            select * from src
            qualify row_number() over (order by hash({bare_ids}, ?), {bare_ids}) <= ?
        )
        select * from final order by {bare_ids}
    """
    table = con.sql(sql, params=[*params, spec.random_state, cap]).to_arrow_table()
    if table.num_rows == 0:
        raise InputDataError(f"{spec.relation} has no rows for {target.product_group}")
    y = _labels(target, table)
    counts = np.bincount(y, minlength=2)
    if counts.min() < 2:
        raise InputDataError(
            f"{spec.relation} ({target.product_group}): {counts[1]} positive and {counts[0]} "
            "negative rows; a stratified split needs at least 2 of each"
        )
    _, test_idx = train_test_split(
        np.arange(len(y)), test_size=spec.test_share, stratify=y, random_state=spec.random_state
    )
    split = np.full(len(y), "train", dtype=object)
    split[test_idx] = "test"
    return _examples(
        target,
        table,
        y=y,
        cutoff=np.zeros(len(y), dtype="datetime64[D]"),
        split=split,
        cutoffs=kfold_protocol(spec),
    )


def refuse_bad_inputs(target: TrainingTarget, examples: Examples) -> None:
    """Known-bad inputs are refused before training: NaN/inf features (tree exports treat missing
    values differently from scikit-learn, and the scorer's input contract has no NULLs)."""
    finite = np.isfinite(examples.X)
    if not finite.all():
        bad = [
            f"{name} ({int((~finite[:, j]).sum())} rows)"
            for j, name in enumerate(target.feature_names)
            if not finite[:, j].all()
        ]
        trees = [a for a in target.spec.candidates if a in TREE_ALGORITHMS]
        raise ConfigError(
            f"model spec {target.spec.name!r}, group {target.product_group}: NULL/NaN/inf in "
            f"feature(s) {', '.join(bad[:10])}. NaN in tree inputs ({', '.join(trees) or 'any'})"
            " is refused: fill them in SQL (coalesce) or exclude the columns"
        )


# ------------------------------------------------------------------------------------ training


def _refit(
    target: TrainingTarget, algorithm: str, params: dict[str, Any], X: np.ndarray, y: np.ndarray
) -> Any:
    """The candidate with the search's best parameters, fitted on all training rows."""
    est = build_estimator(
        algorithm,
        params,
        n_features=X.shape[1],
        categorical_idx=[target.feature_names.index(c) for c in target.categorical],
        random_state=target.spec.random_state,
    )
    fit_estimator(est, X, y)
    return est


def _fit_candidate(target: TrainingTarget, algorithm: str, ex: Examples) -> tuple[Any, Any]:
    spec = target.spec
    X_tr, y_tr, c_tr = ex.part("train")
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
    )
    est = _refit(target, algorithm, search.best_params, X_tr, y_tr)
    val_auc = float(roc_auc_score(y_va, est.predict_proba(X_va)[:, 1]))
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
    return est, result


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


def train_target(
    settings: Settings,
    target: TrainingTarget,
    *,
    actor: str = "propensity",
    on_step: Callable[[str], None] | None = None,
    export_hook: Callable[[bytes], bytes] | None = None,
) -> ModelResult:
    """Train, evaluate, export and register one target. Nothing is written unless every step,
    including the parity gate, succeeds.

    `export_hook` (tests) may replace the ONNX bytes between export and the parity gate.
    """
    # OpenMP (HistGradientBoosting) and BLAS (logistic regression) spin-wait on a busy machine:
    # on a loaded 2-core box one thread fitted HGB in 0.4 s against 11 s with two, and LR in 3 s
    # against 11 s. Random forests still use n_jobs (joblib threads, not limited here).
    result, finish = _train_one(
        settings, target, actor=actor, on_step=on_step, export_hook=export_hook
    )
    if finish is not None:
        with (
            closing(connect(settings.warehouse, threads=settings.threads)) as con,
            transaction(con),
        ):
            finish(con)
    return result


def _train_one(
    settings: Settings,
    target: TrainingTarget,
    *,
    actor: str,
    on_step: Callable[[str], None] | None,
    export_hook: Callable[[bytes], bytes] | None = None,
) -> tuple[ModelResult, Callable[[Any], None] | None]:
    """Train one target; return its result and the function that registers it (None when
    skipped). Nothing is written here."""
    with threadpool_limits(limits=1):
        return _train_target(
            settings, target, actor=actor, on_step=on_step, export_hook=export_hook
        )


def _train_target(
    settings: Settings,
    target: TrainingTarget,
    *,
    actor: str,
    on_step: Callable[[str], None] | None,
    export_hook: Callable[[bytes], bytes] | None,
) -> tuple[ModelResult, Callable[[Any], None] | None]:
    spec = target.spec
    started = time.perf_counter()
    step = on_step or (lambda _name: None)
    with closing(connect(settings.warehouse, read_only=True, threads=settings.threads)) as con:
        ex = load_examples(con, target)
    refuse_bad_inputs(target, ex)
    rows = {s: int((ex.split == s).sum()) for s in SPLITS}
    result = ModelResult(
        spec_name=spec.name, product_group=target.product_group, status="failed", rows=rows
    )
    for s in SPLITS if spec.is_temporal else ("train", "test"):
        y_s = ex.y[ex.split == s]
        if len(np.unique(y_s)) < 2:
            result.status = "skipped"
            result.message = (
                f"{s} period has only {'positive' if y_s.mean() > 0.5 else 'negative'} labels "
                f"({len(y_s)} rows): cannot train or evaluate"
            )
            logger.warning("%s/%s skipped: %s", spec.name, target.product_group, result.message)
            return result, None

    fitted: dict[str, Any] = {}
    searches: dict[str, SearchResult] = {}
    for algorithm in available_algorithms(list(spec.candidates)):
        if spec.is_temporal:
            est, cand = _fit_candidate(target, algorithm, ex)
        else:
            est, cand, searches[algorithm] = _fit_candidate_kfold(target, algorithm, ex)
        fitted[algorithm] = est
        result.candidates.append(cand)
        step(algorithm)
    best = max(result.candidates, key=lambda c: c.validation_auc)

    X_te, y_te, _ = ex.part("test")
    cv: dict[str, Any] | None = None
    if spec.is_temporal:
        # Platt scaling and the threshold on the validation period (after the train cutoffs).
        X_va, y_va, _ = ex.part("validation")
        model = SigmoidCalibratedClassifier(fitted[best.algorithm]).fit(X_va, y_va)
        p_va = model.predict_proba(X_va)[:, 1]
    else:
        # Platt scaling fitted on the chosen configuration's out-of-fold predictions (as
        # CalibratedClassifierCV(ensemble=False)); the threshold on the same, calibrated.
        search = searches[best.algorithm]
        assert search.oof_proba is not None and search.oof_index is not None
        y_va = ex.part("train")[1][search.oof_index]
        model = SigmoidCalibratedClassifier(fitted[best.algorithm]).fit_scores(
            search.oof_proba, y_va
        )
        p_va = model.calibrate(search.oof_proba)
        rows["validation"] = len(y_va)
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
    threshold, threshold_note = choose_threshold(y_va, p_va, spec.threshold)
    if not spec.is_temporal:
        threshold_note = threshold_note.replace("on validation", "on out-of-fold predictions")
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
    val_metrics = binary_metrics(y_va, p_va, threshold)
    lift = lift_by_decile(y_te, p_te)
    bins = calibration_bins(y_te, p_te)
    importance = permutation_importance_rows(
        model.estimator,
        X_te,
        y_te.astype(int),
        target.feature_names,
        max_rows=spec.importance_rows,
        random_state=spec.random_state,
    )

    trained_at = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    model_id = (
        f"{target.product_group}-{short_name(best.algorithm)}-"
        f"{trained_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    )
    cutoffs = ex.cutoffs_by_split
    onnx_bytes = export_onnx(
        model,
        feature_names=target.feature_names,
        threshold=threshold,
        metadata={
            "model_id": model_id,
            "spec_name": spec.name,
            "product_group": target.product_group,
            "algorithm": best.algorithm,
            "validation_protocol": spec.protocol(),
            "train_cutoffs": cutoffs["train"],
            "validation_cutoffs": cutoffs["validation"],
            "test_cutoffs": cutoffs["test"],
            "trained_at": trained_at.isoformat(),
        },
    )
    if export_hook is not None:
        onnx_bytes = export_hook(onnx_bytes)
    parity = check_parity(onnx_bytes, model, X_te, model_id=model_id)
    result.parity_max_abs_diff = parity
    step("export")
    result.model_id = model_id
    result.algorithm = best.algorithm
    result.test_metrics = test_metrics
    result.lift_top_decile = float(lift[0]["lift"]) if lift and lift[0]["lift"] else None
    result.cv = cv
    result.seconds = time.perf_counter() - started
    result.status = "trained"
    logger.info(
        "%s/%s: %s test AUC %.4f%s; registered when every target of the run is trained",
        spec.name,
        target.product_group,
        best.algorithm,
        test_metrics["roc_auc"],
        ""
        if test_metrics["oracle_roc_auc"] is None
        else f" (oracle {test_metrics['oracle_roc_auc']:.4f})",
    )

    def finish(con) -> None:
        """Decide promotion against the champion of now and register (in the caller's
        transaction)."""
        require_ml_tables(con)
        promote, reason, comparison = _promotion_decision(con, target, ex, p_te)
        metrics_json = {
            "protocol": spec.protocol(),
            "selection": (
                "best validation roc_auc among candidates (uncalibrated model)"
                if spec.is_temporal
                else f"best mean {spec.search_folds}-fold CV roc_auc among candidates"
            ),
            "test": test_metrics,
            "validation": val_metrics,
            **({"cv": cv} if cv is not None else {}),
            "candidates": [c.__dict__ for c in result.candidates],
            "calibration": {
                "method": "sigmoid",
                "fitted_on": "validation period" if spec.is_temporal else "out-of-fold predictions",
                "coef": model.coef_,
                "intercept": model.intercept_,
            },
            "threshold_note": threshold_note,
            "parity_max_abs_diff": parity,
            "rows": rows,
            "promotion": {"promoted": promote, "reason": reason, **comparison},
        }
        record = ModelRecord(
            model_id=model_id,
            spec_name=spec.name,
            product_group=target.product_group,
            algorithm=best.algorithm,
            hyperparameters=best.params,
            trained_at=trained_at,
            training_relation=spec.relation,
            train_cutoffs=cutoffs["train"],
            validation_cutoffs=cutoffs["validation"],
            test_cutoffs=cutoffs["test"],
            feature_names=target.feature_names,
            feature_hash=feature_hash(target.feature_names),
            threshold=threshold,
            threshold_rule=spec.threshold.describe(),
            metrics=metrics_json,
            onnx_model=onnx_bytes,
            library_versions=library_versions(),
        )
        evaluation = Evaluation(
            metrics=[{"split": "validation", **val_metrics}, {"split": "test", **test_metrics}],
            lift=[{"split": "test", **r} for r in lift],
            calibration=[{"split": "test", **r} for r in bins],
            importance=importance,
            curves=[{"split": "test", **r} for r in curve_points(y_te, p_te)],
        )
        register_model(con, record, evaluation, promote=promote, reason=reason, actor=actor)
        step("register")
        result.status = "registered"
        result.promoted = promote
        result.promotion_reason = reason
        logger.info("%s/%s: registered %s; %s", spec.name, target.product_group, model_id, reason)

    return result, finish


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
    per_target = {id(t): len(available_algorithms(list(t.spec.candidates))) + 2 for t in targets}
    total = sum(per_target.values())
    done = 0
    results: list[ModelResult] = []
    pending: list[Callable[[Any], None]] = []
    for target in targets:
        expected = per_target[id(target)]
        seen = 0

        def on_step(name: str, target: TrainingTarget = target) -> None:
            nonlocal done, seen
            done += 1
            seen += 1
            if progress is not None:
                progress(
                    TrainProgress(
                        spec_name=target.spec.name,
                        product_group=target.product_group,
                        step=name,
                        completed=done,
                        total=total,
                    )
                )

        finish = None
        try:
            result, finish = _train_one(settings, target, actor=actor, on_step=on_step)
            if finish is not None:
                pending.append(finish)
        except ConfigError:
            raise
        except Exception as exc:  # one failing group must not lose the others' work
            if not isinstance(exc, PropensityError):
                logger.exception("%s/%s: unexpected error", target.spec.name, target.product_group)
            logger.error("%s/%s failed: %s", target.spec.name, target.product_group, exc)
            result = ModelResult(
                spec_name=target.spec.name,
                product_group=target.product_group,
                status="failed",
                message=str(exc),
            )
        # skipped/failed targets still advance the bar (a trained one registers at the end)
        for _ in range(expected - seen - (finish is not None)):
            on_step("skipped")
        results.append(result)
    if pending:
        # All targets land in one transaction: a run killed or failing before this point leaves
        # the registry exactly as it was, and a run never publishes half of its models.
        with (
            closing(connect(settings.warehouse, threads=settings.threads)) as con,
            transaction(con),
        ):
            for finish in pending:
                finish(con)
    return TrainReport(results=results, seconds=time.perf_counter() - started)


def summary_json(report: TrainReport) -> str:
    return json.dumps(report.summary_rows(), default=str, indent=2)
