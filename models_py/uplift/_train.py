"""Uplift training from the warehouse: read one experiment's examples, hold out a stratified
share, choose the purchase learner by cross-validated Qini on the rest, fit the revenue model,
evaluate on the held-out share, export every part to ONNX behind the parity gate and register
the model set as a unit (one transaction).

Steps are pure functions returning frozen results; only `register_model_set` writes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models_py._errors import ConfigError, InputDataError
from models_py._warehouse import connect, relation_columns, relation_exists, transaction
from models_py.registry._registry import _insert, _now
from models_py.registry._tables import ml_table, require_ml_tables
from models_py.training._export import feature_hash, library_versions
from models_py.uplift._class_transformation import fit_class_transformation
from models_py.uplift._learners import (
    default_estimator,
    fit_dr_learner,
    fit_t_learner,
    fit_two_part,
)
from models_py.uplift._metrics import (
    qini_auc_score,
    qini_curve,
    uplift_at_k,
    uplift_auc_score,
    uplift_by_percentile,
)
from models_py.uplift._onnx import export_parts
from models_py.uplift._spec import UpliftSpec
from models_py.uplift._splits import stratified_kfold, stratified_split
from scoring import is_feature_type
from scoring._core import sha256_hex

logger = logging.getLogger(__name__)

#: Columns of fct_experiment_examples that are keys, outcomes or money, never features.
NOT_FEATURES = (
    "experiment_id",
    "customer_id",
    "arm",
    "discount_pct",
    "assigned_at",
    "as_of_date",
    "outcome_window_end",
    "purchased",
    "orders",
    "revenue",
    "discount_cost",
    "margin",
)
ORACLE_RELATION = "raw.oracle_treatment_effect"


@dataclass(frozen=True)
class ExperimentData:
    """One experiment's examples: features (float32), arm, outcomes, ids, discounts per arm."""

    experiment_id: str
    frame: pd.DataFrame
    feature_names: tuple[str, ...]
    discounts: Mapping[str, float | None]

    def X(self, rows: np.ndarray | None = None) -> np.ndarray:
        values = self.frame[list(self.feature_names)].to_numpy(dtype=np.float32)
        return values if rows is None else values[rows]


def read_experiment(con, spec: UpliftSpec) -> ExperimentData:
    """The examples of the spec's experiment, checked: columns present, one experiment, no
    missing outcome, at least two arms including the control.

    Raises
    ------
    ConfigError
        A missing relation or column, or several experiments and no `experiment_id`.
    InputDataError
        Missing outcomes or arms, or an experiment with one arm.
    """
    if not relation_exists(con, spec.relation):
        raise ConfigError(
            f"uplift spec {spec.name!r}: relation {spec.relation} does not exist; build it with "
            "`propensity build` (dbt build)"
        )
    columns = relation_columns(con, spec.relation)
    needed = [*spec.id_columns, spec.arm, *spec.outcome_columns]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ConfigError(
            f"uplift spec {spec.name!r}: {spec.relation} has no column {', '.join(missing)}"
        )
    experiments = [
        r[0]
        for r in con.execute(
            f"select distinct experiment_id from {spec.relation} order by 1"
        ).fetchall()
    ]
    experiment_id = spec.experiment_id
    if experiment_id is None:
        if len(experiments) != 1:
            raise ConfigError(
                f"uplift spec {spec.name!r}: {spec.relation} holds experiments "
                f"{experiments or 'none'}; name one with experiment_id"
            )
        experiment_id = experiments[0]
    elif experiment_id not in experiments:
        raise InputDataError(
            f"uplift spec {spec.name!r}: experiment {experiment_id!r} has no example in "
            f"{spec.relation} (experiments there: {experiments or 'none'}); its outcome window "
            "may not have ended by the scoring cutoff (dbt warns which)"
        )
    excluded = set(NOT_FEATURES) | set(needed) | set(spec.exclude_columns)
    features = tuple(c for c, t in columns.items() if c not in excluded and is_feature_type(t))
    frame = con.execute(
        f"select * from {spec.relation} where experiment_id = ? order by customer_id",
        [experiment_id],
    ).df()
    for column in (spec.arm, *spec.outcome_columns):
        n_null = int(frame[column].isna().sum())
        if n_null:
            raise InputDataError(
                f"experiment {experiment_id!r}: {n_null:,} of {len(frame):,} rows have no "
                f"{column}; every assignment needs its arm and outcomes"
            )
    n_null = int(frame[list(features)].isna().any(axis=1).sum())
    if n_null:
        raise InputDataError(
            f"experiment {experiment_id!r}: {n_null:,} rows have missing features; impute them "
            "in SQL (the feature marts fill every feature)"
        )
    frame[spec.arm] = frame[spec.arm].astype(str)
    arms = sorted(frame[spec.arm].unique())
    if len(arms) < 2:
        raise InputDataError(
            f"experiment {experiment_id!r} has one arm ({arms[0] if arms else 'none'}): "
            "an uplift model compares a treated arm with the control"
        )
    discounts: dict[str, float | None] = {}
    if "discount_pct" in frame:
        for a in arms:
            values = frame.loc[frame[spec.arm] == a, "discount_pct"].dropna().unique()
            discounts[a] = float(values[0]) if len(values) == 1 else None
    return ExperimentData(experiment_id, frame, features, discounts)


# ------------------------------------------------------------------------------- evaluation


def _arm_rows(arm: np.ndarray, control: str, treated: str) -> np.ndarray:
    return (arm == control) | (arm == treated)


def arm_metrics(
    y: np.ndarray, arm: np.ndarray, cate: Mapping[str, np.ndarray], control: str
) -> dict[str, dict[str, float]]:
    """Per treated arm on rows of that arm and the control: Qini coefficient, AUUC (binary
    outcomes only: its perfect curve needs 0/1), uplift at 10/20/30 %."""
    out = {}
    binary = bool(np.isin(y, (0.0, 1.0)).all())
    for a, score in cate.items():
        rows = _arm_rows(arm, control, a)
        t = (arm[rows] == a).astype(int)
        out[a] = {
            "treated": int(t.sum()),
            "control": int((1 - t).sum()),
            "qini_coefficient": float(qini_auc_score(y[rows], score[rows], t)),
            "auuc": float(uplift_auc_score(y[rows], score[rows], t)) if binary else None,
            **{
                f"uplift_at_{k}": float(uplift_at_k(y[rows], score[rows], t, k=k / 100))
                for k in (10, 20, 30)
            },
        }
    return out


def _cate(model_set, X: np.ndarray) -> dict[str, np.ndarray]:
    predicted = model_set.predict(X)
    return {a: predicted[f"cate__{a}"] for a in model_set.treated_arms}


def _estimator(spec: UpliftSpec, task: str, role: str):
    """The package's base estimator for a part (boosted trees stop early on a validation share)."""
    return default_estimator(spec.base, task, role=role, random_state=spec.random_state)


def _fit_purchase(learner: str, X, arm, y, spec: UpliftSpec, feature_names):
    common = {
        "control_arm": spec.control_arm,
        "outcome": spec.purchase,
        "outcome_type": "binary",
        "base": spec.base,
        "feature_names": feature_names,
        "min_rows_per_arm": max(20, spec.min_rows_per_arm // spec.selection_folds),
        "random_state": spec.random_state,
    }
    if learner == "t_learner":
        return fit_t_learner(X, arm, y, estimator=_estimator(spec, "classifier", "mu"), **common)
    if learner == "class_transformation":
        common.pop("outcome_type")
        return fit_class_transformation(
            X, arm, y, estimator=_estimator(spec, "classifier", "ct"), **common
        )
    return fit_dr_learner(
        X,
        arm,
        y,
        outcome_estimator=_estimator(spec, "classifier", "mu"),
        effect_estimator=_estimator(spec, "regressor", "tau"),
        n_folds=spec.cross_fit_folds,
        **common,
    )


def choose_learner(
    X: np.ndarray, arm: np.ndarray, y: np.ndarray, spec: UpliftSpec, feature_names
) -> tuple[str, dict[str, float]]:
    """The learner with the best mean Qini coefficient (over treated arms and folds) in
    `selection_folds`-fold cross-validation on the training share (stratified by arm x y).

    The (fold, learner) fits are independent: they run two at a time in threads, each with one
    OpenMP/BLAS thread (the fits release the GIL; one thread each wastes less than two threads
    on one small fit). The scores do not depend on the order."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    if len(spec.learners) == 1:
        return spec.learners[0], {}
    folds = list(stratified_kfold(arm, y, n_splits=spec.selection_folds, seed=spec.random_state))

    def score(job: tuple[str, np.ndarray, np.ndarray]) -> float:
        name, train, valid = job
        fitted = _fit_purchase(name, X[train], arm[train], y[train], spec, feature_names)
        per_arm = arm_metrics(y[valid], arm[valid], _cate(fitted, X[valid]), spec.control_arm)
        return float(np.mean([m["qini_coefficient"] for m in per_arm.values()]))

    jobs = [(name, train, valid) for train, valid in folds for name in spec.learners]
    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(score, jobs))
    scores: dict[str, list[float]] = {name: [] for name in spec.learners}
    for (name, _, _), value in zip(jobs, results, strict=True):
        scores[name].append(value)
    means = {name: float(np.mean(v)) for name, v in scores.items()}
    return max(means, key=means.get), means


@dataclass(frozen=True)
class UpliftEvaluation:
    metrics: list[dict[str, Any]] = field(default_factory=list)
    bins: list[dict[str, Any]] = field(default_factory=list)
    curves: list[dict[str, Any]] = field(default_factory=list)


def _finite(value) -> float | None:
    """A float, or None (SQL null) for the NaN of an empty bin."""
    value = float(value)
    return value if np.isfinite(value) else None


def _curve_rows(y, score, t, *, arm: str, outcome: str, max_points: int = 100) -> list[dict]:
    x, q = qini_curve(y, score, t)
    keep = np.unique(np.linspace(0, len(x) - 1, min(max_points, len(x))).round().astype(int))
    return [
        {
            "split": "test",
            "curve": f"qini:{outcome}:{arm}",
            "point": int(i),
            "x": float(x[j]),
            "y": float(q[j]),
            "threshold": None,
        }
        for i, j in enumerate(keep)
    ]


def evaluate(
    cate: Mapping[str, np.ndarray],
    y: np.ndarray,
    arm: np.ndarray,
    *,
    control: str,
    outcome: str,
    oracle: Mapping[str, np.ndarray] | None = None,
) -> UpliftEvaluation:
    """Held-out metrics, per-decile observed uplift with 95 % intervals and Qini curve points
    for each treated arm; `oracle` (true CATE per arm, same rows) adds the oracle's Qini."""
    metrics, bins, curves = [], [], []
    per_arm = arm_metrics(y, arm, cate, control)
    oracle_q = arm_metrics(y, arm, oracle, control) if oracle else {}
    for a, m in per_arm.items():
        rows = _arm_rows(arm, control, a)
        t = (arm[rows] == a).astype(int)
        metrics.append(
            {
                "arm": a,
                "outcome": outcome,
                "split": "test",
                **m,
                "oracle_qini_coefficient": oracle_q.get(a, {}).get("qini_coefficient"),
            }
        )
        table = uplift_by_percentile(y[rows], cate[a][rows], t, bins=10)
        for i, r in enumerate(table.to_dict("records")):
            bins.append(
                {
                    "arm": a,
                    "outcome": outcome,
                    "split": "test",
                    "bin": i + 1,
                    "treated": int(r["n_treatment"]),
                    "control": int(r["n_control"]),
                    "mean_treated": _finite(r["response_treatment"]),
                    "mean_control": _finite(r["response_control"]),
                    "uplift": _finite(r["uplift"]),
                    "ci_lower": _finite(r["ci_low"]),
                    "ci_upper": _finite(r["ci_high"]),
                }
            )
        curves += _curve_rows(y[rows], cate[a][rows], t, arm=a, outcome=outcome)
    return UpliftEvaluation(metrics, bins, curves)


def _oracle_cate(con, experiment_id: str, customer_ids: np.ndarray, arms) -> dict | None:
    """True purchase-probability effects per treated arm (generated warehouses only)."""
    if not relation_exists(con, ORACLE_RELATION):
        return None
    frame = con.execute(
        f"select customer_id, arm, effect from {ORACLE_RELATION} where experiment_id = ?",
        [experiment_id],
    ).df()
    if frame.empty:
        return None
    wide = frame.pivot(index="customer_id", columns="arm", values="effect")
    out = {}
    for a in arms:
        if a not in wide:
            return None
        out[a] = wide[a].reindex(customer_ids).to_numpy(dtype=float)
        if np.isnan(out[a]).any():
            return None
    return out


# ------------------------------------------------------------------------- policy value


def _margin_rate(frame: pd.DataFrame, spec: UpliftSpec) -> float | None:
    """The gross-margin rate fct_experiment_examples used: margin / revenue on the control
    arm's purchasers (no discount there, so margin = rate x revenue)."""
    if "margin" not in frame or spec.revenue is None:
        return None
    control = frame[(frame[spec.arm] == spec.control_arm) & (frame[spec.revenue] > 0)]
    control = control[control["margin"].notna()]
    if control.empty:
        return None
    return float((control["margin"] / control[spec.revenue]).median())


def held_out_policy_value(
    predicted: Mapping[str, np.ndarray],
    held_out: pd.DataFrame,
    spec: UpliftSpec,
    discounts: Mapping[str, float | None],
) -> dict[str, Any] | None:
    """What the `profit` offer policy (each customer's arm with the highest expected margin
    effect, if positive; no contact cost) would have earned on the held-out share, estimated
    from the randomised assignment: mean over rows of 1{arm = policy(x)} margin / P(arm) minus
    the same for "nobody" (everyone on the control), with a normal 95 % interval. A value at or
    below 0 says the model's offers are not worth more than no offer. None without margins and
    discounts."""
    rate = _margin_rate(held_out, spec)
    if rate is None or any(discounts.get(a) is None for a in discounts):
        return None
    control = spec.control_arm
    arms = [a for a in discounts if a != control]
    factor = {a: (rate - discounts[a] / 100) / (1 - discounts[a] / 100) for a in discounts}
    base = predicted[f"outcome__{control}"] * factor[control]
    effects = np.column_stack([predicted[f"outcome__{a}"] * factor[a] - base for a in arms])
    choice = np.where(
        effects.max(axis=1) > 0, np.array(arms, dtype=object)[effects.argmax(1)], control
    )
    arm = held_out[spec.arm].to_numpy(dtype=str)
    margin = held_out["margin"].to_numpy(dtype=float)
    # P(arm) of each row: the arm's share of the held-out rows (a randomised experiment).
    _, index, counts = np.unique(arm, return_inverse=True, return_counts=True)
    p_arm = (counts / len(arm))[index]
    p_control = float((arm == control).mean())
    terms = np.where(arm == choice, margin / p_arm, 0.0) - np.where(
        arm == control, margin / p_control, 0.0
    )
    mean, se = float(terms.mean()), float(terms.std(ddof=1) / np.sqrt(len(terms)))
    return {
        "incremental_margin_per_customer": mean,
        "ci_lower": mean - 1.96 * se,
        "ci_upper": mean + 1.96 * se,
        "offered_share": float((choice != control).mean()),
        "rows": len(terms),
        "margin_rate": rate,
    }


# --------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainedUplift:
    """Everything `register_model_set` writes: the model set row, its parts' ONNX bytes and
    the held-out evaluation."""

    model_set_id: str
    spec: UpliftSpec
    experiment_id: str
    learner: str
    arms: Mapping[str, float | None]
    feature_names: tuple[str, ...]
    parts: Mapping[str, dict[str, Any]]
    evaluation: UpliftEvaluation
    selection: Mapping[str, float]
    trained_at: dt.datetime
    details: Mapping[str, Any]


def _export(model_set, X_sample: np.ndarray, prefix: str, metadata: Mapping[str, str]) -> dict:
    exported = export_parts(model_set, X_sample, metadata=metadata)
    out = {}
    for part, onnx_bytes in exported.items():
        role, arm = part.split("__", 1)
        estimator = model_set.parts[part]
        out[f"{prefix}{part}"] = {
            "role": f"{prefix}{role}",
            "arm": arm,
            "algorithm": type(getattr(estimator, "steps", [[None, estimator]])[-1][1]).__name__,
            "output_kind": "probability" if role in ("mu", "purchase") else "value",
            "onnx": onnx_bytes,
        }
    return out


def train_uplift(con, spec: UpliftSpec) -> TrainedUplift:
    """Fit, choose, evaluate and export one uplift model set (nothing written)."""
    data = read_experiment(con, spec)
    frame = data.frame
    arm = frame[spec.arm].to_numpy(dtype=str)
    y = frame[spec.purchase].to_numpy(dtype=float)
    train, test = stratified_split(arm, y, test_share=spec.test_share, seed=spec.random_state)
    X = data.X()
    names = data.feature_names
    learner, selection = choose_learner(X[train], arm[train], y[train], spec, names)
    purchase_set = _fit_purchase(learner, X[train], arm[train], y[train], spec, names)
    logger.info("uplift %s: learner %s (cross-validated Qini %s)", spec.name, learner, selection)
    cate = _cate(purchase_set, X[test])
    oracle = _oracle_cate(
        con, data.experiment_id, frame["customer_id"].to_numpy()[test], purchase_set.treated_arms
    )
    evaluation = evaluate(
        cate, y[test], arm[test], control=spec.control_arm, outcome=spec.purchase, oracle=oracle
    )
    trained_at = _now()
    model_set_id = f"{spec.offer_family}-{trained_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    # output_kind value: every part has one output (P(class 1) or a prediction), which the
    # scoring core returns as it is (scoring._core).
    metadata = {
        "model_set_id": model_set_id,
        "offer_family": spec.offer_family,
        "output_kind": "value",
    }
    sample = X[test][:2000]
    parts = _export(purchase_set, sample, "purchase_", metadata)
    details: dict[str, Any] = {
        "purchase": {"learner": learner, **dict(purchase_set.details)},
        "rows": {"train": len(train), "test": len(test)},
    }
    if spec.revenue:
        revenue = frame[spec.revenue].to_numpy(dtype=float)
        revenue_set = fit_two_part(
            X[train],
            arm[train],
            revenue[train],
            control_arm=spec.control_arm,
            purchase=y[train],
            outcome=spec.revenue,
            purchase_estimator=_estimator(spec, "classifier", "purchase"),
            revenue_estimator=_estimator(spec, "regressor", "revenue"),
            feature_names=names,
            min_rows_per_arm=spec.min_rows_per_arm,
            random_state=spec.random_state,
        )
        revenue_eval = evaluate(
            _cate(revenue_set, X[test]),
            revenue[test],
            arm[test],
            control=spec.control_arm,
            outcome=spec.revenue,
        )
        evaluation = UpliftEvaluation(
            evaluation.metrics + revenue_eval.metrics,
            evaluation.bins + revenue_eval.bins,
            evaluation.curves + revenue_eval.curves,
        )
        parts.update(_export(revenue_set, sample, "revenue_", metadata))
        details["revenue"] = {"learner": "two_part"}
        value = held_out_policy_value(
            revenue_set.predict(X[test]), frame.iloc[test], spec, data.discounts
        )
        if value is not None:
            details["held_out_policy_value"] = value
    arms = {a: data.discounts.get(a) for a in purchase_set.arms}
    return TrainedUplift(
        model_set_id=model_set_id,
        spec=spec,
        experiment_id=data.experiment_id,
        learner=learner,
        arms=arms,
        feature_names=names,
        parts=parts,
        evaluation=evaluation,
        selection=selection,
        trained_at=trained_at,
        details=details,
    )


# --------------------------------------------------------------------------------- registry


def current_uplift_alias(con, offer_family: str, alias: str = "champion") -> str | None:
    row = con.execute(
        f"select model_set_id from {ml_table('uplift_aliases')} "
        "where offer_family = ? and alias = ?",
        [offer_family, alias],
    ).fetchone()
    return row[0] if row else None


def _set_uplift_alias(con, offer_family: str, alias: str, model_set_id: str, at) -> None:
    con.execute(
        f"delete from {ml_table('uplift_aliases')} where offer_family = ? and alias = ?",
        [offer_family, alias],
    )
    con.execute(
        f"insert into {ml_table('uplift_aliases')} (offer_family, alias, model_set_id, updated_at) "
        "values (?, ?, ?, ?)",
        [offer_family, alias, model_set_id, at],
    )


def register_model_set(con, trained: TrainedUplift, *, promote: bool | None = None) -> bool:
    """Insert the model set, its parts (ONNX bytes and sha256) and evaluation rows, make it the
    challenger of its offer family, and the champion when `promote` is true (None: when the
    family has no champion yet). One transaction: a failure leaves nothing behind. Returns
    whether it was promoted."""
    require_ml_tables(con)
    spec = trained.spec
    family = spec.offer_family
    at = _now()
    value = trained.details.get("held_out_policy_value") or {}
    set_row = {
        "model_set_id": trained.model_set_id,
        "spec_name": spec.name,
        "offer_family": family,
        "experiment_id": trained.experiment_id,
        "learner": trained.learner,
        "outcomes": json.dumps(list(spec.outcome_columns)),
        "control_arm": spec.control_arm,
        "arms": json.dumps(dict(trained.arms)),
        "trained_at": trained.trained_at,
        "training_relation": spec.relation,
        "feature_names": json.dumps(list(trained.feature_names)),
        "feature_hash": feature_hash(trained.feature_names),
        "hyperparameters": json.dumps({"base": spec.base, **dict(trained.details)}, default=str),
        "evaluation": json.dumps(
            {
                "selection_qini": dict(trained.selection),
                "metrics": trained.evaluation.metrics,
                "held_out_policy_value": trained.details.get("held_out_policy_value"),
            },
            default=str,
        ),
        "library_versions": json.dumps(library_versions()),
        "held_out_policy_value": value.get("incremental_margin_per_customer"),
        "held_out_policy_value_ci_lower": value.get("ci_lower"),
        "held_out_policy_value_ci_upper": value.get("ci_upper"),
    }
    part_rows = [
        {
            "model_set_id": trained.model_set_id,
            "part": part,
            "role": p["role"],
            "arm": p["arm"],
            "model_id": f"{trained.model_set_id}:{part}",
            "algorithm": p["algorithm"],
            "output_kind": p["output_kind"],
            "onnx_model": p["onnx"],
            "onnx_sha256": sha256_hex(p["onnx"]),
        }
        for part, p in trained.parts.items()
    ]
    common = {"model_set_id": trained.model_set_id, "offer_family": family}
    with transaction(con):
        if current_uplift_alias(con, family) is None and promote is None:
            promote = True
        _insert(con, "uplift_model_sets", [set_row])
        _insert(con, "uplift_model_parts", part_rows)
        _insert(
            con,
            "uplift_metrics",
            [{**common, **m, "evaluated_at": at} for m in trained.evaluation.metrics],
        )
        _insert(con, "uplift_bins", [{**common, **b} for b in trained.evaluation.bins])
        _insert(
            con,
            "curve_points",
            [
                {"model_id": trained.model_set_id, "product_group": family, **c}
                for c in trained.evaluation.curves
            ],
        )
        _set_uplift_alias(con, family, "challenger", trained.model_set_id, at)
        if promote:
            _set_uplift_alias(con, family, "champion", trained.model_set_id, at)
    return bool(promote)


def train_and_register(
    settings, specs: Sequence[UpliftSpec], *, promote: bool | None = None
) -> list[TrainedUplift]:
    """Train every spec (reading with a read-only connection), then register each set."""
    trained = []
    with closing(connect(settings.warehouse, read_only=True, threads=settings.threads)) as con:
        for spec in specs:
            trained.append(train_uplift(con, spec))
    with closing(connect(settings.warehouse)) as con:
        for t in trained:
            promoted = register_model_set(con, t, promote=promote)
            logger.info(
                "uplift %s: registered %s (%s)%s",
                t.spec.name,
                t.model_set_id,
                t.learner,
                ", champion" if promoted else "",
            )
    return trained
