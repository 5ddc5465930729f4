"""The score lookup service (`propensity serve`) and the read-only snapshots it reads
(docs/serving.md). Needs the `serve` extra (FastAPI, uvicorn) to run the service; publishing a
snapshot needs only DuckDB."""

from __future__ import annotations

from models_py.serving._snapshot import (
    DEFAULT_KEEP,
    POINTER,
    SnapshotError,
    SnapshotReport,
    SnapshotUnavailableError,
    publish_snapshot,
)

__all__ = [
    "DEFAULT_KEEP",
    "POINTER",
    "SnapshotError",
    "SnapshotReport",
    "SnapshotUnavailableError",
    "create_app",
    "publish_snapshot",
    "serve",
]


def create_app(settings):
    """The FastAPI app (see `models_py.serving._app.create_app`)."""
    from models_py.serving._app import create_app as _create_app

    return _create_app(settings)


def serve(settings, *, host: str = "127.0.0.1", port: int = 8000, access_log: bool = False):
    """Run the service with uvicorn until interrupted (one process; see docs/serving.md)."""
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the install
        from models_py._errors import ConfigError

        raise ConfigError(
            "`propensity serve` needs FastAPI and uvicorn: pip install 'propensity[serve]'"
        ) from exc
    app = create_app(settings)
    uvicorn.run(app, host=host, port=port, access_log=access_log, log_level="info")
