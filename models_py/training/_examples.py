"""Training step 1, load: one target's examples from the warehouse as a float32 matrix.

Temporal specs read a stratified-by-cutoff subsample (at most ``max_training_rows`` train rows,
an equal quota per cutoff; ``max_evaluation_rows`` for the validation and for the test period).
With ``max_positive_share`` the train quota of a cutoff keeps its positives (up to that share of
the quota) and fills the rest with negatives; every train row then carries a weight that restores
its cutoff's label rate, so fitting, the search's fold AUCs and the reference distributions see
the population, not the sample. Validation and test rows are always a uniform sample: calibration,
thresholds and every reported metric are computed on unweighted rows.
Tables without a time axis (``validation: stratified_kfold``) hold out a stratified test share.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from models_py._errors import ConfigError, InputDataError
from models_py._warehouse import qualified, quote_ident
from models_py.training._algorithms import TREE_ALGORITHMS
from models_py.training._specs import ModelSpec, TrainingTarget

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True, kw_only=True)
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
    #: Sampling weights (float64, mean 1 within each cutoff); None: every row weighs 1.
    weight: np.ndarray | None = None

    def part(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mask = self.split == split
        return self.X[mask], self.y[mask], self.cutoff[mask]

    def weights(self, split: str) -> np.ndarray | None:
        """The sampling weights of one split's rows, or None when they are all 1."""
        if self.weight is None:
            return None
        w = self.weight[self.split == split]
        return None if bool(np.all(w == 1.0)) else w


@dataclass(frozen=True)
class Quota:
    """How many rows of one (cutoff, split) to read: `rows` in all, of which `positives` are
    positives when the sample is stratified on the label (None: a uniform sample)."""

    cutoff: Any
    split: str
    rows: int
    positives: int | None
    population: float  # rows of the cutoff and split in the population (the weights' sum)
    population_positives: float


def _stratified(quota: int, n: int, n_pos: int, share: float) -> int:
    """Positives to read from a cutoff with `n` rows, `n_pos` of them positive: all of them up
    to `share` of the quota, more when there are too few negatives to fill the rest."""
    n_neg = n - n_pos
    positives = min(n_pos, int(quota * share))
    return min(n_pos, max(positives, quota - n_neg))


def _split_quotas(con, target: TrainingTarget) -> tuple[list[Quota], dict[str, list[str]]]:
    """Per (cutoff, split): how many rows to read. Splits come from the split column or, without
    one, from the cutoffs (newest `test_cutoffs` = test, the `validation_cutoffs` before them =
    validation, the rest = train)."""
    spec = target.spec
    rel = qualified(spec.schema_name, spec.table_name)
    where, params = _group_filter(target)
    split_expr = f"cast({quote_ident(spec.split)} as varchar)" if spec.split else "null"
    weight = f"cast({quote_ident(spec.weight)} as double)" if spec.weight else "1.0"
    positive = f"cast({quote_ident(spec.label)} as integer) = 1"
    rows = con.execute(
        f"select {quote_ident(spec.cutoff)} as cutoff, {split_expr} as split, count(*) as n, "
        f"count(*) filter (where {positive}) as n_pos, sum({weight}) as w, "
        f"coalesce(sum({weight}) filter (where {positive}), 0) as w_pos, "
        f"min({weight}) as w_min, max({weight}) as w_max "
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
        assigned = [(r[0], r[1], r[2], r[3]) for r in rows]
        splits = {(r[0], r[1]): r[1] for r in rows}
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
        assigned = [(r[0], label[r[0]], r[2], r[3]) for r in rows]
        splits = {(r[0], r[1]): label[r[0]] for r in rows}
    by_split: dict[str, list[Any]] = {s: [] for s in SPLITS}
    for cutoff, split, _, _ in assigned:
        by_split[split].append(cutoff)
    if spec.weight:
        _check_weights(target, rows, splits)
    population = {(r[0], splits[(r[0], r[1])]): (r[4], r[5]) for r in rows}
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
    share = spec.max_positive_share
    quotas = []
    for c, s, n, n_pos in assigned:
        rows_ = max(1, caps[s] // len(set(by_split[s])))
        positives = (
            _stratified(rows_, n, n_pos, share) if share is not None and s == "train" else None
        )
        w, w_pos = population[(c, s)] if spec.weight else (n, n_pos)
        quotas.append(Quota(c, s, rows_, positives, float(w), float(w_pos)))
    cutoffs_by_split = {s: sorted({str(c) for c in by_split[s]}) for s in SPLITS}
    return quotas, cutoffs_by_split


def _check_weights(target: TrainingTarget, rows: list[tuple], splits: dict) -> None:
    """Weights must be positive, and equal within a validation or test cutoff: those periods
    are read as a uniform sample and every metric is computed on unweighted rows."""
    spec = target.spec
    for cutoff, split, _n, _n_pos, _w, _w_pos, w_min, w_max in rows:
        if w_min is None or w_min <= 0:
            raise InputDataError(
                f"{spec.relation}.{spec.weight} is null, zero or negative in some rows of "
                f"{target.product_group} at {cutoff}: sampling weights must be positive"
            )
        if splits[(cutoff, split)] != "train" and not np.isclose(w_min, w_max, rtol=1e-9):
            raise InputDataError(
                f"{spec.relation}.{spec.weight} varies ({w_min:g} .. {w_max:g}) within the "
                f"{splits[(cutoff, split)]} cutoff {cutoff} of {target.product_group}: "
                "validation and test periods must be uniform samples (one weight per cutoff), "
                "their metrics are computed on unweighted rows"
            )


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
    q = quote_ident
    feats = ", ".join(f"e.{q(c)}" for c in target.feature_names)
    split_expr = f"cast(e.{q(spec.split)} as varchar)" if spec.split else "null"
    oracle_join, oracle_cols = _oracle_join(target, [*spec.id_columns, spec.cutoff])
    where, params = _group_filter(target, "e")
    ids = ", ".join(f"e.{q(c)}" for c in spec.id_columns)
    src_ids = ", ".join(f"src.{q(c)}" for c in spec.id_columns)
    bare_ids = ", ".join(q(c) for c in spec.id_columns)
    join_split = "and s.split = src.__split" if spec.split else ""
    weight_col = f"cast(e.{q(spec.weight)} as double)" if spec.weight else "1.0"
    weight_col += " as __weight"
    # The few quota rows are bound as values: no Python object is registered, as registering
    # from the threads that load targets at once can fail inside DuckDB. A stratified quota
    # (`positives` not null) samples positives and negatives apart, each by the same hash.
    values = ", ".join("(?, ?, ?, cast(? as bigint))" for _ in quotas)
    sql = f"""
        with quotas (cutoff, split, quota, positives) as (
            values {values}
        ),
        src as (
            select {ids}, e.{q(spec.cutoff)} as __cutoff, {split_expr} as __split,
                cast(e.{q(spec.label)} as integer) as __label, {oracle_cols}, {weight_col},
                {feats}
            from {qualified(spec.schema_name, spec.table_name)} as e
            {oracle_join}
            {where}
        ),
        final as (
            select src.*, s.split as __assigned
            from src
            inner join quotas as s on src.__cutoff = s.cutoff {join_split}
            qualify row_number() over (
                partition by
                    src.__cutoff, s.split,
                    case when s.positives is not null then src.__label end
                order by hash({src_ids}, src.__cutoff, ?), {src_ids}
            ) <= case
                when s.positives is null then s.quota
                when src.__label = 1 then s.positives
                else s.quota - s.positives
            end
        )
        select * from final order by __cutoff, {bare_ids}
    """
    bound = [v for qu in quotas for v in (qu.cutoff, qu.split, qu.rows, qu.positives)]
    table = con.sql(sql, params=[*bound, *params, spec.random_state]).to_arrow_table()
    y = _labels(target, table)
    cutoff = table.column("__cutoff").to_numpy(zero_copy_only=False).astype("datetime64[D]")
    split = np.asarray(table.column("__assigned").to_pylist(), dtype=object)
    ex = _examples(target, table, y=y, cutoff=cutoff, split=split, cutoffs=cutoffs_by_split)
    table_weight = table.column("__weight").to_numpy(zero_copy_only=False) if spec.weight else None
    return replace(ex, weight=_sampling_weights(quotas, cutoff, split, y, table_weight))


def _sampling_weights(
    quotas: list[Quota],
    cutoff: np.ndarray,
    split: np.ndarray,
    y: np.ndarray,
    table_weight: np.ndarray | None = None,
) -> np.ndarray | None:
    """Per train row, the rows of the population it stands for, scaled to mean 1 within its
    cutoff: for a stratum s (cutoff, label) with population W_s (the weights' sum in the table,
    or its rows) of which the sample holds rows summing to S_s in table weight,
    ``w_i * W_s / S_s * n / W`` (w_i its table weight, else 1; n the cutoff's sampled rows, W
    its population). So a stratified cutoff (or a table sampled by label in SQL) gets back its
    label rate; a uniform sample of equally weighted rows keeps weight 1. None when no quota is
    stratified and the table has no weights."""
    if table_weight is None and all(qu.positives is None for qu in quotas):
        return None
    base = np.ones(len(y)) if table_weight is None else np.asarray(table_weight, np.float64)
    weight = np.ones(len(y), dtype=np.float64)
    for qu in quotas:
        if qu.split != "train":
            continue
        rows = (cutoff == np.datetime64(qu.cutoff, "D")) & (split == qu.split)
        if not rows.any():
            continue
        if qu.positives is None and base[rows].min() == base[rows].max():
            continue  # a uniform sample of rows that weigh the same: nothing to restore
        n = int(rows.sum())
        for label, population in (
            (1, qu.population_positives),
            (0, qu.population - qu.population_positives),
        ):
            sampled = rows & (y == label)
            if sampled.any():
                scale = population / base[sampled].sum() * n / qu.population
                weight[sampled] = base[sampled] * scale
    return None if bool(np.all(weight == 1.0)) else weight


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
