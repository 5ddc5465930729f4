"""Per-process caches: onnxruntime sessions by ONNX sha256, loaded models by model id.

Creating an `InferenceSession` parses and optimises the graph (tens of milliseconds for a
100-tree model), so a process creates it once per distinct ONNX payload and number of threads.
Sessions are thread-safe for `run`, so one session serves every DuckDB thread calling the UDF.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnxruntime as ort

    from scoring._core import ScoringModel

logger = logging.getLogger(__name__)

#: Sessions kept per process; the oldest is dropped first (a warehouse has one champion per group).
MAX_SESSIONS = 64

_lock = threading.RLock()
_sessions: OrderedDict[tuple[str, int], ort.InferenceSession] = OrderedDict()
_models: dict[str, ScoringModel] = {}


def get_session(sha256: str, onnx_bytes: bytes, *, intra_op_threads: int) -> ort.InferenceSession:
    """The cached session for these bytes (verified by the caller), created on first use."""
    import onnxruntime as ort

    key = (sha256, intra_op_threads)
    with _lock:
        session = _sessions.get(key)
        if session is not None:
            _sessions.move_to_end(key)
            return session
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    # Idle worker threads must sleep, not spin: a spinning intra-op thread holds a core that
    # DuckDB's other threads (or another job) need (measurements: docs/scoring.md, Performance).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    session = ort.InferenceSession(
        onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
    )
    with _lock:
        session = _sessions.setdefault(key, session)
        while len(_sessions) > MAX_SESSIONS:
            dropped, _ = _sessions.popitem(last=False)
            logger.debug("dropped onnxruntime session %s from the cache", dropped[0][:12])
    logger.debug("created onnxruntime session %s (%d threads)", sha256[:12], intra_op_threads)
    return session


def remember_model(model: ScoringModel) -> None:
    """Make `model` findable by its id (what the SQL UDF receives with every batch)."""
    with _lock:
        _models[model.model_id] = model


def loaded_model(model_id: str) -> ScoringModel | None:
    """The model loaded under `model_id` in this process, or None."""
    with _lock:
        return _models.get(model_id)


def loaded_model_ids() -> list[str]:
    with _lock:
        return sorted(_models)


def clear() -> None:
    """Forget every session and model (tests; a long-lived process after a registry change)."""
    with _lock:
        _sessions.clear()
        _models.clear()
