"""Reason codes: the top features pushing each customer's score up, per product group, written by
the dbt Python model ``fct_score_reasons`` in one batched pass per group (docs/explaining.md)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from models_py.explain._trees import (
    ExplainError,
    TreeEnsemble,
    build_explainer,
    parse_tree_ensemble,
    require_shap,
    tree_shap_values,
)

logger = logging.getLogger(__name__)

#: Reasons kept per (customer, group): the features with the largest positive contributions.
TOP_K = 3
#: Rows whose leaf counts give the node covers (a uniform sample of the rows explained).
COVER_ROWS = 20_000
#: Methods: exact path-dependent TreeSHAP (``shap``), Saabas path attributions (onnxruntime),
#: or 'auto': exact up to `EXACT_MAX_ROWS` rows per group, Saabas above (docs/explaining.md).
METHODS = ("auto", "tree_shap", "saabas")
EXACT_MAX_ROWS = 10_000
BATCH_ROWS = 100_000

SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("product_group", pa.string()),
        ("as_of_date", pa.date32()),
        ("model_id", pa.string()),
        ("reason_rank", pa.int32()),
        ("feature_name", pa.string()),
        ("feature_value", pa.float64()),
        ("contribution", pa.float64()),
        ("contribution_units", pa.string()),
        ("method", pa.string()),
    ]
)
#: The stream `score_reasons` returns: the reason rows and their feature's label and kind
#: (fct_score_reasons formats the value by kind in SQL). Text columns are dictionary-encoded (a
#: batch's few distinct strings and an index per row: DuckDB reads them as VARCHAR).
_TEXT = pa.dictionary(pa.int32(), pa.string())
ROWS_SCHEMA = pa.schema(
    [
        pa.field(f.name, _TEXT) if f.type == pa.string() else f
        for f in [*SCHEMA, pa.field("label_text", pa.string()), pa.field("value_kind", pa.string())]
    ]
)
LABELS_SCHEMA = pa.schema(
    [("feature_name", pa.string()), ("label_text", pa.string()), ("value_kind", pa.string())]
)


def _sql_string(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def top_reasons(contributions: np.ndarray, k: int = TOP_K) -> tuple[np.ndarray, ...]:
    """(row, rank, feature, contribution) of the k largest positive contributions of each row,
    rank 1 first; rows with fewer positive contributions get fewer reasons."""
    rows, width = contributions.shape
    k = min(k, width)
    if rows == 0 or k == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, np.zeros(0)
    part = np.argpartition(-contributions, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(contributions, part, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    features = np.take_along_axis(part, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    row = np.repeat(np.arange(rows), k).reshape(rows, k)
    rank = np.tile(np.arange(1, k + 1), (rows, 1))
    keep = values > 0
    return row[keep], rank[keep], features[keep], values[keep].astype(np.float64)


def _value_kind(name: str) -> str:
    if name.startswith(("is_", "has_")):
        return "flag"
    if "rate" in name:
        return "rate"
    if any(w in name for w in ("spend", "amount", "value")):
        return "money"
    return "number"


#: Features whose catalogue description is a formula, not words: their label, by name pattern.
_LABELS = (
    (re.compile(r"email_(open|click)_rate_(\d+)d"), r"Email \1 rate in the last \2 days"),
    (re.compile(r"avg_order_value"), "Average order value"),
    (re.compile(r"spend_total"), "Net spend of all orders"),
    (re.compile(r"is_unsubscribed"), "Unsubscribed from emails"),
    (re.compile(r"rfm_segment_code"), "RFM segment (code)"),
    (re.compile(r"is_email_opt_in"), "Opted in to emails"),
    (re.compile(r"is_vip"), "VIP customer"),
)


def label_text(description: str, name: str = "") -> str:
    """A feature's label prefix: its catalogue description without parentheses, code quotes,
    'before T' and any clause after the first ';' / ', capped' / sentence end ("Days from the
    last X's date to T" reads "Days since the last X")."""
    for pattern, label in _LABELS:
        if pattern.fullmatch(name):
            return pattern.sub(label, name)
    text = re.sub(r"\s*\([^)]*\)", "", description).replace("`", "")
    text = re.split(r";|, capped|\.\s|\.$", text)[0].strip()
    text = re.sub(r"^Days from the (.*?)(?:'s date)? to T$", r"Days since the \1", text)
    text = re.sub(r",? before T$", "", text)
    return text[:1].upper() + text[1:]


def _label_texts(names) -> list[str]:
    from models_py.catalogue import load_catalogue

    catalogue = {f.name: f for f in load_catalogue()}
    return [
        label_text(catalogue[n].description, n) if n in catalogue else n.replace("_", " ")
        for n in names
    ]


def feature_labels(feature_names) -> pa.Table:
    """(feature_name, label_text, value_kind) from the feature catalogue; a feature outside the
    catalogue (a bring-your-own column) is labelled by its name."""
    names = sorted(set(feature_names))
    return pa.table(
        {
            "feature_name": names,
            "label_text": _label_texts(names),
            "value_kind": [_value_kind(n) for n in names],
        },
        schema=LABELS_SCHEMA,
    )


@dataclass(frozen=True)
class _GroupPlan:
    """What explaining one group needs, settled before the first reason is written: a group
    that cannot be explained is known (and skipped with a warning) before the stream starts."""

    product_group: str
    model_id: str
    names: tuple[str, ...]
    labels: pa.Array  # label_text per feature, in `names` order (feature_labels' words)
    kinds: pa.Array  # value_kind per feature
    ens: TreeEnsemble
    exact: bool
    background: np.ndarray
    sql: str  # customer_id and the model's features, of this group at the latest cutoff


def _plan_group(
    features_rel,
    *,
    rows: int,
    covers_rel,
    covers_rows: int,
    model,
    onnx_bytes: bytes,
    product_group: str,
    method: str,
    rows_for_covers: int = COVER_ROWS,
) -> _GroupPlan:
    """The plan of one group: `features_rel` (a DuckDB relation with customer_id and the model's
    feature columns) explained with the champion `model` (a `scoring.ScoringModel` verified from
    `onnx_bytes`), node covers counted on (a sample of) `covers_rel`, every scored row of the
    group: a customer's reasons do not depend on which other customers are explained. `rows` and
    `covers_rows` are their sizes (counted once for every group, from the scores).

    Raises
    ------
    ExplainError
        The champion is not a tree ensemble this module reads, or exact TreeSHAP was asked for
        without ``shap``.
    """
    from scoring._arrow import columns_to_matrix

    names = tuple(model.feature_names)
    ens = parse_tree_ensemble(onnx_bytes, model_id=model.model_id, n_features=len(names))
    sample = covers_rel
    if covers_rows > rows_for_covers:
        sample = covers_rel.order("hash(customer_id)").limit(rows_for_covers)
    background = columns_to_matrix(_read(sample), list(names), what=f"model {model.model_id!r}")
    exact = method == "tree_shap" or (
        method == "auto" and rows <= EXACT_MAX_ROWS and _has_shap(product_group)
    )
    if exact:
        require_shap()
    return _GroupPlan(
        product_group=product_group,
        model_id=model.model_id,
        names=names,
        labels=pa.array(_label_texts(names), pa.string()),
        kinds=pa.array([_value_kind(n) for n in names], pa.string()),
        ens=ens,
        exact=exact,
        background=background,
        sql=features_rel.sql_query(),
    )


def _explain_batches(plan: _GroupPlan, batches, as_of) -> Iterator[pa.RecordBatch]:
    """Reason rows (`ROWS_SCHEMA`) of one group's feature batches, batch by batch."""
    from scoring._arrow import columns_to_matrix

    explainer = None if plan.exact else build_explainer(plan.ens, plan.background)
    names = pa.array(plan.names, pa.string())
    method = "tree_shap" if plan.exact else "saabas"
    for batch in batches:
        matrix = columns_to_matrix(batch, list(plan.names), what=f"model {plan.model_id!r}")
        contributions = (
            tree_shap_values(plan.ens, plan.background, matrix)
            if plan.exact
            else explainer.contributions(matrix)
        )
        row, rank, feature, value = top_reasons(contributions)
        ids = batch.column("customer_id").to_numpy(zero_copy_only=False)
        n = row.size
        index = feature.astype(np.int32)
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(ids[row], pa.int64()),
                _constant(plan.product_group, n),
                pa.array(np.full(n, np.datetime64(as_of, "D")), pa.date32()),
                _constant(plan.model_id, n),
                pa.array(rank, pa.int32()),
                pa.DictionaryArray.from_arrays(index, names),
                pa.array(matrix[row, feature].astype(np.float64), pa.float64()),
                pa.array(value, pa.float64()),
                _constant(plan.ens.units, n),
                _constant(method, n),
                pa.DictionaryArray.from_arrays(index, plan.labels),
                pa.DictionaryArray.from_arrays(index, plan.kinds),
            ],
            schema=ROWS_SCHEMA,
        )


def _constant(text: str, n: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([text]))


def _has_shap(product_group: str) -> bool:
    """Whether exact TreeSHAP is available (the optional `explain` extra installs ``shap``)."""
    try:
        import shap  # noqa: F401
    except ImportError:
        logger.warning(
            "fct_score_reasons: %s explained by Saabas path attributions: exact TreeSHAP needs "
            "shap (pip install 'propensity[explain]')",
            product_group,
        )
        return False
    return True


def _read(rel) -> pa.Table:
    out = rel.arrow()
    return out if isinstance(out, pa.Table) else out.read_all()


def _decile_cap(value) -> int:
    from models_py._errors import ConfigError

    text = str(10 if value is None or value == "" else value).strip()
    if not text.isdigit() or not 0 <= int(text) <= 10:
        raise ConfigError(
            f"score_reasons_max_decile '{value}' is not a whole number from 0 to 10 "
            "(docs/explaining.md)"
        )
    return int(text)


def score_reasons(
    scores_rel,
    features_rel,
    registry_rel,
    *,
    connection,
    method: str = "auto",
    max_decile=10,
) -> pa.RecordBatchReader:
    """Reasons of every (customer, group) scored at the latest cutoff of `scores_rel` in a decile
    up to `max_decile` (10: everyone; 2: the top 20% of each group; 0: nobody), as a stream of
    `ROWS_SCHEMA` batches (the reason rows and their features' labels), explained while the
    caller reads it: memory holds one batch of one group, not every reason (about 3 rows per
    score row: 300M at 10M customers). Groups whose champion is not a tree ensemble get none (a
    warning says so, before the first batch).

    The relations belong to `connection`; the stream reads each group's features through a
    cursor of its own (closed when the stream ends), so `connection` is free to write the
    reasons as they come.

    Raises
    ------
    ConfigError
        An unknown `method`, a `max_decile` outside 0..10.
    """
    from models_py._errors import ConfigError
    from scoring import load_model

    if method not in METHODS:
        raise ConfigError(
            f"score_reasons_method {method!r} is not one of {', '.join(METHODS)} "
            "(dbt var score_reasons_method; docs/explaining.md)"
        )
    max_decile = _decile_cap(max_decile)
    latest = scores_rel.aggregate("max(as_of_date)").fetchall()[0][0]
    if latest is None or max_decile == 0:
        return pa.RecordBatchReader.from_batches(ROWS_SCHEMA, iter(()))
    # One pass over the scores for every group's champion and sizes (the features are a view
    # joining the feature marts: each read of it is a join, so it is read once per group).
    champions = scores_rel.filter(f"as_of_date = DATE '{latest.isoformat()}'").aggregate(
        "product_group, any_value(model_id), count(*), "
        f"count(*) filter (where decile <= {max_decile})",
        "product_group",
    )
    plans: list[_GroupPlan] = []
    for group, model_id, scored, explained_rows in sorted(champions.fetchall()):
        onnx_bytes, sha = (
            registry_rel.filter(f"model_id = {_sql_string(model_id)}")
            .project("onnx_model, onnx_sha256")
            .fetchall()[0]
        )
        model = load_model(onnx_bytes, sha, model_id=model_id, register=False)  # sha256 check
        columns = ", ".join(
            ["customer_id"] + [f'"{n.replace(chr(34), chr(34) * 2)}"' for n in model.feature_names]
        )
        in_group = (
            f"product_group = {_sql_string(group)} and as_of_date = DATE '{latest.isoformat()}'"
        )
        covers = features_rel.filter(in_group)
        explained = covers
        if max_decile < 10:
            top = scores_rel.filter(f"{in_group} and decile <= {max_decile}").project("customer_id")
            explained = covers.join(top, "customer_id", how="semi")
        try:
            plans.append(
                _plan_group(
                    explained.project(columns),
                    rows=explained_rows,
                    covers_rel=covers.project(columns),
                    covers_rows=scored,
                    model=model,
                    onnx_bytes=bytes(onnx_bytes),
                    product_group=group,
                    method=method,
                )
            )
        except ExplainError as exc:
            logger.warning("fct_score_reasons: no reasons for %s: %s", group, exc)

    def stream() -> Iterator[pa.RecordBatch]:
        cursor = connection.cursor()
        try:
            for plan in plans:
                reader = cursor.query(plan.sql).to_arrow_reader(BATCH_ROWS)
                yield from _explain_batches(plan, reader, latest)
        finally:
            cursor.close()

    return pa.RecordBatchReader.from_batches(ROWS_SCHEMA, stream())
