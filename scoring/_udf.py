"""DuckDB scalar functions over Arrow: load a registry model once, then score feature arrays.

A UDF cannot query the connection that is running it, so the ONNX bytes are passed in once
(``propensity_load_model``) and every later call names the model by id (``propensity_score``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import pyarrow as pa

from scoring._core import DEFAULT_INTRA_OP_THREADS, load_model, score_arrow
from scoring._errors import ModelIntegrityError

logger = logging.getLogger(__name__)

LOAD_FUNCTION = "propensity_load_model"
SCORE_FUNCTION = "propensity_score"


def _as_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One array without copying when DuckDB hands over a single chunk (the usual case)."""
    if isinstance(values, pa.ChunkedArray):
        return values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()
    return values


def register_udfs(conn: Any, *, intra_op_threads: int = DEFAULT_INTRA_OP_THREADS) -> None:
    """Register ``propensity_load_model`` and ``propensity_score`` on a DuckDB connection.

    - ``propensity_load_model(model_id VARCHAR, onnx_model BLOB, onnx_sha256 VARCHAR) -> VARCHAR``
      verifies the sha256, caches an onnxruntime session and returns the model's description as
      JSON (model_id, sha256, product_group, feature_names, feature_hash). A mismatch raises
      `ModelIntegrityError` naming the model.
    - ``propensity_score(model_id VARCHAR, features FLOAT[]) -> FLOAT`` scores one feature vector
      per row (vectorised over DuckDB's chunks) with a model loaded before in this process.

    Close the connection when done: a connection holding Python UDFs keeps Python objects alive.
    """

    def load(model_ids, onnx_models, sha256s) -> pa.Array:
        ids = _as_array(model_ids).to_pylist()
        blobs = _as_array(onnx_models)
        hashes = _as_array(sha256s).to_pylist()
        out = []
        for i, model_id in enumerate(ids):
            if model_id is None:
                raise ModelIntegrityError("propensity_load_model: a registry row has no model_id")
            blob = blobs[i].as_buffer()
            model = load_model(
                blob if blob is not None else None,
                hashes[i],
                model_id=model_id,
                intra_op_threads=intra_op_threads,
            )
            out.append(json.dumps(model.describe()))
        return pa.array(out, type=pa.string())

    def score(model_ids, features) -> pa.Array:
        return score_arrow(_as_array(model_ids), _as_array(features))

    for name in (LOAD_FUNCTION, SCORE_FUNCTION):
        with contextlib.suppress(Exception):  # not registered yet on this connection
            conn.remove_function(name)
    conn.create_function(
        LOAD_FUNCTION,
        load,
        ["VARCHAR", "BLOB", "VARCHAR"],
        "VARCHAR",
        type="arrow",
        null_handling="special",
        side_effects=True,
    )
    conn.create_function(
        SCORE_FUNCTION,
        score,
        ["VARCHAR", "FLOAT[]"],
        "FLOAT",
        type="arrow",
        null_handling="special",
        side_effects=False,
    )
    logger.debug("registered %s and %s", LOAD_FUNCTION, SCORE_FUNCTION)
