"""Load verified ONNX models and score Arrow batches with onnxruntime (engine-agnostic).

The same functions serve the DuckDB UDFs (`scoring.dbt_plugin`), a dbt Python model streaming
record batches, and a Spark ``mapInArrow`` function: Arrow in, Arrow (or float32 numpy) out.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scoring import _cache
from scoring._arrow import FeatureInput, _single_array, columns_to_matrix, features_to_matrix
from scoring._errors import FeatureError, ModelIntegrityError

logger = logging.getLogger(__name__)

#: Intra-op threads per session. DuckDB already calls a UDF from each of its threads on
#: 2,048-row chunks, so one thread per call avoids oversubscription (docs/scoring.md measures it).
DEFAULT_INTRA_OP_THREADS = 1
PROBABILITIES_OUTPUT = "probabilities"


@dataclass(frozen=True, eq=False)
class ScoringModel:
    """A verified ONNX classifier ready to score.

    Attributes
    ----------
    model_id : str
        Registry id (``ml.model_registry.model_id``).
    sha256 : str
        Hex digest of the ONNX bytes, verified against the registry at load time.
    feature_names : tuple of str
        Input column order (ONNX metadata ``feature_names``).
    metadata : dict
        All ONNX metadata_props.
    """

    model_id: str
    sha256: str
    feature_names: tuple[str, ...]
    metadata: Mapping[str, str] = field(repr=False)
    session: Any = field(repr=False)
    input_name: str = "features"
    output_name: str = PROBABILITIES_OUTPUT
    #: 'probability': P(class 1) from a (n, 2) probabilities output (classifiers);
    #: 'value': the (n, 1) or (n,) output of a regressor (e.g. an uplift model's CATE part).
    output_kind: str = "probability"

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def describe(self) -> dict[str, Any]:
        """What SQL needs to call the model: id, hash, product group, feature names."""
        return {
            "model_id": self.model_id,
            "sha256": self.sha256,
            "product_group": self.metadata.get("product_group"),
            "spec_name": self.metadata.get("spec_name"),
            "feature_names": list(self.feature_names),
            "feature_hash": self.metadata.get("feature_hash"),
        }


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def _parse_feature_names(meta: Mapping[str, str], label: str) -> tuple[str, ...]:
    raw = meta.get("feature_names")
    if raw is None:
        raise ModelIntegrityError(
            f"model {label}: the ONNX metadata has no 'feature_names'; re-export it with "
            "models_py (export_onnx writes the feature list and its hash)"
        )
    try:
        names = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelIntegrityError(
            f"model {label}: ONNX metadata 'feature_names' is not a JSON list ({exc})"
        ) from exc
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ModelIntegrityError(
            f"model {label}: ONNX metadata 'feature_names' must be a non-empty list of strings"
        )
    expected_hash = meta.get("feature_hash")
    if expected_hash and expected_hash != sha256_hex(json.dumps(names).encode("utf-8")):
        raise ModelIntegrityError(
            f"model {label}: ONNX metadata 'feature_hash' does not match its 'feature_names'"
        )
    if len(set(names)) != len(names):
        raise ModelIntegrityError(f"model {label}: 'feature_names' holds duplicate names")
    return tuple(names)


def load_model(
    onnx_bytes: bytes | bytearray | memoryview,
    expected_sha256: str,
    *,
    model_id: str | None = None,
    intra_op_threads: int = DEFAULT_INTRA_OP_THREADS,
    register: bool = True,
) -> ScoringModel:
    """Verify ONNX bytes against their registered sha256 and prepare them for scoring.

    Parameters
    ----------
    onnx_bytes : bytes
        The serialized ONNX model (``ml.model_registry.onnx_model``).
    expected_sha256 : str
        The registered hex digest (``ml.model_registry.onnx_sha256``).
    model_id : str, optional
        The registry id; defaults to the ``model_id`` metadata entry. When both exist they must
        agree.
    intra_op_threads : int
        onnxruntime intra-op threads of the session.
    register : bool
        Make the model findable by id for `score_arrow` and the SQL UDF.

    Returns
    -------
    ScoringModel

    Raises
    ------
    ModelIntegrityError
        The hash differs (the stored bytes were changed after registration), the bytes are not a
        model onnxruntime can run, or the metadata lacks a usable feature list.
    """
    label = repr(model_id) if model_id else "(no model_id)"
    if onnx_bytes is None or expected_sha256 is None:
        raise ModelIntegrityError(
            f"model {label}: the registry row has no ONNX bytes or no sha256; re-register it"
        )
    data = bytes(onnx_bytes)
    actual = sha256_hex(data)
    if actual != str(expected_sha256).strip().lower():
        raise ModelIntegrityError(
            f"model {label}: the ONNX bytes have sha256 {actual[:16]}... but the registry "
            f"records {str(expected_sha256)[:16]}...; the stored model was modified after it was "
            "registered. Scoring refuses it: restore the model or re-register it "
            "(`propensity train`), then re-run."
        )
    try:
        session = _cache.get_session(actual, data, intra_op_threads=intra_op_threads)
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph / ... types
        raise ModelIntegrityError(
            f"model {label}: onnxruntime cannot load the ONNX bytes ({exc})"
        ) from exc
    meta = dict(session.get_modelmeta().custom_metadata_map)
    meta_id = meta.get("model_id")
    if model_id and meta_id and meta_id != model_id:
        raise ModelIntegrityError(
            f"model {label}: the ONNX metadata names model {meta_id!r}; the registry row holds "
            "another model's bytes"
        )
    model_id = model_id or meta_id
    if not model_id:
        raise ModelIntegrityError("an ONNX model without model_id metadata needs model_id=...")
    label = repr(model_id)
    names = _parse_feature_names(meta, label)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelIntegrityError(
            f"model {label}: expected one input tensor, found {[i.name for i in inputs]}"
        )
    width = inputs[0].shape[1] if len(inputs[0].shape) == 2 else None
    if isinstance(width, int) and width != len(names):
        raise ModelIntegrityError(
            f"model {label}: the input takes {width} features, the metadata lists {len(names)}"
        )
    outputs = [o.name for o in session.get_outputs()]
    kind = "probability"
    if PROBABILITIES_OUTPUT in outputs:
        output = PROBABILITIES_OUTPUT
    elif len(outputs) == 2:
        output = outputs[1]
    elif len(outputs) == 1 and meta.get("output_kind") == "value":
        # A regressor (skl2onnx names its output 'variable'), declared by the exporter.
        output, kind = outputs[0], "value"
    else:
        raise ModelIntegrityError(
            f"model {label}: no 'probabilities' output (outputs: {outputs}); export with zipmap "
            "off (a regressor needs metadata output_kind=value)"
        )
    model = ScoringModel(
        model_id=model_id,
        sha256=actual,
        feature_names=names,
        metadata=meta,
        session=session,
        input_name=inputs[0].name,
        output_name=output,
        output_kind=kind,
    )
    if register:
        _cache.remember_model(model)
    logger.info("loaded model %s (%d features, sha256 %s)", model_id, len(names), actual[:12])
    return model


def get_model(model_id: str) -> ScoringModel:
    """The model loaded under `model_id` in this process.

    Raises
    ------
    FeatureError
        When no model with that id was loaded (call `load_model` first).
    """
    model = _cache.loaded_model(model_id)
    if model is None:
        loaded = ", ".join(_cache.loaded_model_ids()) or "none"
        raise FeatureError(
            f"model {model_id!r} is not loaded in this process (loaded: {loaded}); call "
            "propensity_load_model(model_id, onnx_model, onnx_sha256) / scoring.load_model first"
        )
    return model


def score_batch(model: ScoringModel, features: FeatureInput) -> np.ndarray:
    """Positive-class probabilities (float32, one per row) for one batch; a regressor's
    predictions for a model with ``output_kind`` 'value'.

    Parameters
    ----------
    model : ScoringModel
    features : pyarrow list / fixed_size_list array (or ChunkedArray), or 2-D numpy array
        One vector per row, in the order of ``model.feature_names``.
    """
    matrix = features_to_matrix(
        features,
        n_features=model.n_features,
        feature_names=model.feature_names,
        what=f"model {model.model_id!r}",
    )
    return _run(model, matrix)


def _run(model: ScoringModel, matrix: np.ndarray) -> np.ndarray:
    if matrix.shape[0] == 0:
        return np.empty(0, dtype=np.float32)
    out = model.session.run([model.output_name], {model.input_name: matrix})[0]
    if model.output_kind == "value":
        return np.ascontiguousarray(np.reshape(out, (matrix.shape[0],)), dtype=np.float32)
    return np.ascontiguousarray(out[:, 1], dtype=np.float32)


def score_arrow(
    model_ids: pa.Array | pa.ChunkedArray,
    features: pa.Array | pa.ChunkedArray,
    *,
    models: Mapping[str, ScoringModel] | None = None,
) -> pa.Array:
    """Score a batch whose rows may belong to different models; returns float32 scores.

    Rows are grouped by model id (one onnxruntime call per distinct model) and the scores put
    back in row order.

    Parameters
    ----------
    model_ids : pyarrow string array
        The model of each row; every id must be loaded (`load_model`) or given in `models`.
    features : pyarrow list array
        One feature vector per row.
    models : mapping, optional
        Models by id; defaults to the models loaded in this process.
    """
    ids = _single_array(model_ids)
    feats = _single_array(features)  # no copy of a single chunk
    if len(ids) != len(feats):
        raise FeatureError(f"{len(ids)} model ids for {len(feats)} feature vectors")
    if len(ids) == 0:
        return pa.array([], type=pa.float32())
    if ids.null_count:
        raise FeatureError(f"{ids.null_count} rows have a null model id")

    def lookup(model_id: str) -> ScoringModel:
        if models is not None:
            if model_id not in models:
                raise FeatureError(f"model {model_id!r} is not among the given models")
            return models[model_id]
        return get_model(model_id)

    encoded = pc.dictionary_encode(ids)
    dictionary = encoded.dictionary.to_pylist()
    if len(dictionary) == 1:
        return pa.array(score_batch(lookup(dictionary[0]), feats), type=pa.float32())
    codes = encoded.indices.to_numpy()
    out = np.empty(len(ids), dtype=np.float32)
    for code, model_id in enumerate(dictionary):
        rows = np.flatnonzero(codes == code)
        out[rows] = score_batch(lookup(model_id), feats.take(pa.array(rows)))
    return pa.array(out, type=pa.float32())


def score_record_batches(
    batches: Iterable[pa.RecordBatch] | pa.RecordBatchReader,
    model: ScoringModel | Mapping[str, ScoringModel],
    *,
    features_column: str | None = None,
    model_id_column: str | None = None,
    keep: Sequence[str] | None = None,
    score_column: str = "score",
) -> Iterator[pa.RecordBatch]:
    """Stream record batches through a model: each input batch yields one scored batch.

    Memory stays bounded by the batch size; nothing is collected. The same generator is the body
    of a dbt Python model (DuckDB record batch reader in, reader out) and of a Spark
    ``mapInArrow`` function.

    Parameters
    ----------
    batches : iterable of pyarrow.RecordBatch or a RecordBatchReader
    model : ScoringModel or mapping of model id -> ScoringModel
        One model for every row, or several chosen per row by `model_id_column`.
    features_column : str, optional
        A list column holding each row's feature vector. When omitted, the model's
        ``feature_names`` are read as individual numeric columns (one model only).
    model_id_column : str, optional
        Column naming each row's model; required when `model` is a mapping.
    keep : sequence of str, optional
        Columns copied to the output; default every column that is not a feature.
    score_column : str
        Name of the float32 score column appended to the output.
    """
    several = not isinstance(model, ScoringModel)
    if several and model_id_column is None:
        raise FeatureError("score_record_batches: several models need model_id_column=...")
    if several and features_column is None:
        raise FeatureError("score_record_batches: several models need a features_column list")
    for batch in batches:
        if isinstance(batch, pa.Table):
            yield from score_record_batches(
                batch.to_batches(),
                model,
                features_column=features_column,
                model_id_column=model_id_column,
                keep=keep,
                score_column=score_column,
            )
            continue
        if several:
            scores = score_arrow(
                batch.column(model_id_column), batch.column(features_column), models=model
            )
        elif features_column is not None:
            scores = pa.array(score_batch(model, batch.column(features_column)), pa.float32())
        else:
            matrix = columns_to_matrix(batch, model.feature_names, what=f"model {model.model_id!r}")
            scores = pa.array(_run(model, matrix), pa.float32())
        if keep is None:
            dropped = {features_column} if features_column else set(model.feature_names)
            names = [n for n in batch.schema.names if n not in dropped]
        else:
            names = list(keep)
        columns = [batch.column(n) for n in names]
        yield pa.RecordBatch.from_arrays([*columns, scores], names=[*names, score_column])
