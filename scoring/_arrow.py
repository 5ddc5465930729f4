"""Arrow list arrays of features -> a float32 matrix, without a Python loop over rows.

A feature vector arrives as one Arrow list per row (DuckDB `FLOAT[n]` / `FLOAT[]`, Spark
`array<float>`). The values of all rows sit in one contiguous child buffer, so the matrix is that
buffer reshaped to (rows, n_features): zero-copy for float32 values without nulls, one vectorised
cast otherwise. Offsets are checked (every row must hold exactly n_features values) and nulls are
refused with the row and the feature they are in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scoring._errors import FeatureError

FeatureInput = pa.Array | pa.ChunkedArray | np.ndarray


def _feature_label(position: int, feature_names: Sequence[str] | None) -> str:
    if feature_names is not None and 0 <= position < len(feature_names):
        return f"feature {position} ({feature_names[position]!r})"
    return f"feature {position}"


def _single_array(features: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(features, pa.ChunkedArray):
        if features.num_chunks == 1:
            return features.chunk(0)
        if features.num_chunks == 0:
            return pa.array([], type=features.type)
        return features.combine_chunks()
    return features


def features_to_matrix(
    features: FeatureInput,
    *,
    n_features: int | None = None,
    feature_names: Sequence[str] | None = None,
    what: str = "features",
) -> np.ndarray:
    """A C-contiguous float32 matrix (rows, n_features) from Arrow lists or a 2-D array.

    Parameters
    ----------
    features : pyarrow Array or ChunkedArray of list / large_list / fixed_size_list of numbers, or
        a 2-D numpy array
        One feature vector per row. Sliced arrays (non-zero offset) and several chunks are handled.
    n_features : int, optional
        Required vector length; inferred from the data when omitted.
    feature_names : sequence of str, optional
        Used only to name the feature in error messages.
    what : str
        What the features are for (e.g. ``"model m1"``), used in error messages.

    Raises
    ------
    FeatureError
        A null vector, a null value, a vector of the wrong length or a non-numeric value type.
    """
    if n_features is None and feature_names is not None:
        n_features = len(feature_names)
    if isinstance(features, np.ndarray):
        return _numpy_matrix(features, n_features=n_features, what=what)
    arr = _single_array(features)
    typ = arr.type
    rows = len(arr)
    if not (
        pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)
    ):
        raise FeatureError(f"{what}: expected a list of numbers per row, got Arrow type {typ}")
    if not (pa.types.is_floating(typ.value_type) or pa.types.is_integer(typ.value_type)):
        raise FeatureError(
            f"{what}: feature values must be numeric, got {typ.value_type}; cast the columns to "
            "FLOAT/DOUBLE before scoring"
        )
    if arr.null_count:
        first = pc.index(arr.is_null(), True).as_py()
        raise FeatureError(f"{what}: row {first} has a null feature vector ({arr.null_count} rows)")
    if pa.types.is_fixed_size_list(typ):
        width = typ.list_size
        if n_features is not None and width != n_features:
            raise FeatureError(
                f"{what}: feature vectors have {width} values, the model expects {n_features}"
            )
        values = arr.flatten()  # honours the array offset
    else:
        offsets = arr.offsets.to_numpy()  # sliced with the array: rows + 1 entries
        lengths = np.diff(offsets)
        width = int(lengths[0]) if rows else (n_features or 0)
        expected = width if n_features is None else n_features
        bad = np.flatnonzero(lengths != expected)
        if bad.size:
            row = int(bad[0])
            raise FeatureError(
                f"{what}: row {row} has {int(lengths[row])} feature values, expected {expected} "
                f"({bad.size} rows have the wrong length)"
            )
        width = expected
        values = arr.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0])) if rows else None
    if rows == 0:
        return np.empty((0, width), dtype=np.float32)
    if values.null_count:
        position = pc.index(values.is_null(), True).as_py()
        row, col = divmod(position, width)
        raise FeatureError(
            f"{what}: row {row} has a null value in {_feature_label(col, feature_names)} "
            f"({values.null_count} null values in this batch); fill missing values in the "
            "feature table (e.g. coalesce to 0 or a cap) before scoring"
        )
    if values.type != pa.float32():
        values = values.cast(pa.float32())
    flat = values.to_numpy(zero_copy_only=True)
    return flat.reshape(rows, width)


def _numpy_matrix(features: np.ndarray, *, n_features: int | None, what: str) -> np.ndarray:
    if features.ndim != 2:
        raise FeatureError(f"{what}: expected a 2-D matrix, got shape {features.shape}")
    if n_features is not None and features.shape[1] != n_features:
        raise FeatureError(
            f"{what}: the matrix has {features.shape[1]} columns, the model expects {n_features}"
        )
    if not (
        np.issubdtype(features.dtype, np.floating) or np.issubdtype(features.dtype, np.integer)
    ):
        raise FeatureError(f"{what}: feature values must be numeric, got dtype {features.dtype}")
    return np.ascontiguousarray(features, dtype=np.float32)


def columns_to_matrix(
    batch: pa.RecordBatch | pa.Table, columns: Sequence[str], *, what: str = "features"
) -> np.ndarray:
    """A float32 matrix from numeric columns of a batch, one vectorised copy per column."""
    missing = [c for c in columns if c not in batch.schema.names]
    if missing:
        raise FeatureError(
            f"{what}: the input has no column {missing[0]!r} ({len(missing)} missing)"
        )
    out = np.empty((batch.num_rows, len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        col = batch.column(name)
        if not (
            pa.types.is_floating(col.type)
            or pa.types.is_integer(col.type)
            or pa.types.is_boolean(col.type)
            or pa.types.is_decimal(col.type)
        ):
            raise FeatureError(f"{what}: column {name!r} has type {col.type}, expected a number")
        if col.null_count:
            raise FeatureError(
                f"{what}: column {name!r} has {col.null_count} null values; fill missing values "
                "in the feature table before scoring"
            )
        out[:, j] = col.cast(pa.float32()).to_numpy(zero_copy_only=False)
    return out
