"""Reason codes: the top features pushing each customer's score up, per product group, written by
the dbt Python model ``fct_score_reasons`` in one batched pass per group (docs/explaining.md)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from models_py.explain._trees import (
    ExplainError,
    build_explainer,
    parse_tree_ensemble,
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


def feature_labels(feature_names) -> pa.Table:
    """(feature_name, label_text, value_kind) from the feature catalogue; a feature outside the
    catalogue (a bring-your-own column) is labelled by its name."""
    from models_py.catalogue import load_catalogue

    catalogue = {f.name: f for f in load_catalogue()}
    names = sorted(set(feature_names))
    return pa.table(
        {
            "feature_name": names,
            "label_text": [
                label_text(catalogue[n].description, n) if n in catalogue else n.replace("_", " ")
                for n in names
            ],
            "value_kind": [_value_kind(n) for n in names],
        },
        schema=LABELS_SCHEMA,
    )


def _batches(reader) -> Iterator[pa.RecordBatch]:
    if isinstance(reader, pa.Table):
        yield from reader.to_batches(BATCH_ROWS)
    else:
        yield from reader


def explain_group(
    features_rel,
    *,
    model,
    onnx_bytes: bytes,
    product_group: str,
    as_of,
    method: str = "auto",
    rows_for_covers: int = COVER_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Reason rows of one group: `features_rel` (a DuckDB relation with customer_id and the
    model's feature columns) explained with the champion `model` (a `scoring.ScoringModel`
    verified from `onnx_bytes`)."""
    from scoring._arrow import columns_to_matrix

    names = list(model.feature_names)
    ens = parse_tree_ensemble(onnx_bytes, model_id=model.model_id, n_features=len(names))
    total = features_rel.aggregate("count(*)").fetchall()[0][0]
    sample = features_rel
    if total > rows_for_covers:
        sample = features_rel.order("hash(customer_id)").limit(rows_for_covers)
    background = columns_to_matrix(_read(sample), names, what=f"model {model.model_id!r}")
    exact = method == "tree_shap" or (
        method == "auto" and total <= EXACT_MAX_ROWS and _has_shap(product_group)
    )
    explainer = None if exact else build_explainer(ens, background)
    for batch in _batches(features_rel.arrow()):
        matrix = columns_to_matrix(batch, names, what=f"model {model.model_id!r}")
        contributions = (
            tree_shap_values(ens, background, matrix) if exact else explainer.contributions(matrix)
        )
        row, rank, feature, value = top_reasons(contributions)
        ids = batch.column("customer_id").to_numpy(zero_copy_only=False)
        n = row.size
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(ids[row], pa.int64()),
                pa.array(np.full(n, product_group, dtype=object), pa.string()),
                pa.array([as_of] * n, pa.date32()),
                pa.array(np.full(n, model.model_id, dtype=object), pa.string()),
                pa.array(rank, pa.int32()),
                pa.array(np.asarray(names, dtype=object)[feature], pa.string()),
                pa.array(matrix[row, feature].astype(np.float64), pa.float64()),
                pa.array(value, pa.float64()),
                pa.array(np.full(n, ens.units, dtype=object), pa.string()),
                pa.array(np.full(n, "tree_shap" if exact else "saabas", dtype=object), pa.string()),
            ],
            schema=SCHEMA,
        )


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


def score_reasons(
    scores_rel, features_rel, registry_rel, *, method: str = "auto"
) -> tuple[pa.Table, pa.Table]:
    """Reasons of every (customer, group) scored at the latest cutoff of `scores_rel`, and the
    labels of the features they name. Groups whose champion is not a tree ensemble get none (a
    warning says so).

    Raises
    ------
    ConfigError
        An unknown `method`.
    """
    from models_py._errors import ConfigError
    from scoring import load_model

    if method not in METHODS:
        raise ConfigError(
            f"score_reasons_method {method!r} is not one of {', '.join(METHODS)} "
            "(dbt var score_reasons_method; docs/explaining.md)"
        )
    latest = scores_rel.aggregate("max(as_of_date)").fetchall()[0][0]
    if latest is None:
        return SCHEMA.empty_table(), LABELS_SCHEMA.empty_table()
    champions = scores_rel.filter(f"as_of_date = DATE '{latest.isoformat()}'").aggregate(
        "product_group, any_value(model_id)", "product_group"
    )
    batches: list[pa.RecordBatch] = []
    named: set[str] = set()
    for group, model_id in sorted(champions.fetchall()):
        onnx_bytes, sha = (
            registry_rel.filter(f"model_id = {_sql_string(model_id)}")
            .project("onnx_model, onnx_sha256")
            .fetchall()[0]
        )
        model = load_model(onnx_bytes, sha, model_id=model_id, register=False)  # sha256 check
        columns = ", ".join(
            ["customer_id"] + [f'"{n.replace(chr(34), chr(34) * 2)}"' for n in model.feature_names]
        )
        rel = features_rel.filter(
            f"product_group = {_sql_string(group)} and as_of_date = DATE '{latest.isoformat()}'"
        ).project(columns)
        try:
            produced = list(
                explain_group(
                    rel,
                    model=model,
                    onnx_bytes=bytes(onnx_bytes),
                    product_group=group,
                    as_of=latest,
                    method=method,
                )
            )
        except ExplainError as exc:
            logger.warning("fct_score_reasons: no reasons for %s: %s", group, exc)
            continue
        batches += produced
        named |= set(model.feature_names)
    table = pa.Table.from_batches(batches, schema=SCHEMA) if batches else SCHEMA.empty_table()
    return table, feature_labels(named) if named else LABELS_SCHEMA.empty_table()
