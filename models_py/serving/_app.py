"""The score lookup service: a FastAPI app over the newest serving snapshot (docs/serving.md).

Every path operation needs the API key (header ``X-API-Key``); the OpenAPI docs (``/docs``,
``/openapi.json``) do not. Endpoints are plain functions (FastAPI runs them in its thread pool):
DuckDB and onnxruntime calls block, and each thread reads through its own snapshot cursor.
No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at
runtime, and those naming objects local to `create_app` cannot be resolved from strings.
"""

import contextlib
import datetime as dt
import hmac
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import duckdb
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field

from models_py._errors import ConfigError
from models_py.serving._snapshot import (
    Snapshot,
    SnapshotStore,
    SnapshotUnavailableError,
)

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
#: Shortest API key accepted: a guessable key is no protection for customer data.
MIN_KEY_LENGTH = 16
MAX_PAGE = 1000
#: Feature values beyond float32's range would become infinities in the model.
_FLOAT32_MAX = 3.4e38


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    """What the service needs: the snapshot directory and the API key (from the CLI)."""

    serving_dir: Path
    api_key: str

    def __post_init__(self) -> None:
        if not self.api_key or not self.api_key.strip():
            raise ConfigError(
                "no API key: set PROPENSITY_API_KEY to a secret of at least "
                f'{MIN_KEY_LENGTH} characters (e.g. `python -c "import secrets; '
                'print(secrets.token_urlsafe(32))"`). The service serves customer scores and '
                "does not start without one."
            )
        if len(self.api_key) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"PROPENSITY_API_KEY is {len(self.api_key)} characters long; use at least "
                f'{MIN_KEY_LENGTH} (e.g. `python -c "import secrets; '
                'print(secrets.token_urlsafe(32))"`). The service did not start.'
            )


# ------------------------------------------------------------------------------ response models


class Reason(BaseModel):
    rank: int = Field(description="1 = the feature pushing the score up the most")
    feature: str
    label: str = Field(description="The feature and its value in plain words")
    value: float | None
    contribution: float = Field(description="SHAP value in log-odds of the base estimator")


class GroupScore(BaseModel):
    product_group: str
    model_id: str
    score: float = Field(ge=0, le=1)
    decile: int = Field(ge=1, le=10, description="1 = the 10% highest scores of the group")
    reasons: list[Reason] | None = Field(
        default=None, description="Top features of the score; null when the snapshot has none"
    )


class CustomerPropensity(BaseModel):
    customer_id: int
    as_of_date: dt.date = Field(description="Scoring cutoff: features use events before it")
    best_group: str | None = Field(
        description="Highest-scoring group, `any` left out, ties to the first name "
        "(marts.dim_customer_propensity.best_product_group)"
    )
    groups: list[GroupScore]


class AudienceMember(BaseModel):
    customer_id: int
    score: float
    decile: int
    score_rank: int
    is_selected: bool
    is_holdout: bool
    exclusion_reason: str | None
    message_tier: str | None


class AudiencePage(BaseModel):
    campaign_id: str
    product_group: str
    as_of_date: dt.date
    selected_only: bool
    total: int = Field(description="Rows of the campaign matching selected_only")
    customers: list[AudienceMember]
    next_after: int | None = Field(
        description="Pass as `after` for the next page; null on the last page"
    )


class ScoreRequest(BaseModel):
    product_group: str = Field(examples=["wine"])
    features: dict[str, Any] | list[Any] = Field(
        description="Feature values by name, or a list in the order of the model's "
        "feature_names (GET /models)",
    )


class ScoreResponse(BaseModel):
    product_group: str
    model_id: str
    onnx_sha256: str
    score: float


class ModelInfo(BaseModel):
    product_group: str
    model_id: str
    onnx_sha256: str
    status: str
    feature_names: list[str] | None = None


class Health(BaseModel):
    status: str
    snapshot: str | None
    as_of_date: dt.date | None
    scored_at: dt.datetime | None
    last_order_date: dt.date | None
    published_at: dt.datetime | None
    snapshot_age_seconds: float | None
    customers: int | None
    reasons_available: bool
    models: list[ModelInfo]
    snapshot_error: str | None


# --------------------------------------------------------------------------------------- app


def _problem(status: int, detail: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail})


def create_app(settings: ServeSettings) -> FastAPI:
    """The service over `settings.serving_dir`, protected by `settings.api_key`."""
    store = SnapshotStore(settings.serving_dir)
    expected = settings.api_key.encode("utf-8")
    header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)

    async def require_key(key: Annotated[str | None, Depends(header)]) -> None:
        if key is None:
            raise HTTPException(
                401,
                f"missing API key: send it in the {API_KEY_HEADER} header",
                headers={"WWW-Authenticate": API_KEY_HEADER},
            )
        if not hmac.compare_digest(key.encode("utf-8"), expected):
            raise HTTPException(401, "wrong API key", headers={"WWW-Authenticate": API_KEY_HEADER})

    async def snapshot() -> Snapshot:
        return store.current()

    app = FastAPI(
        title="propensity score lookup",
        description="Propensity scores, deciles, reasons and audiences of the latest scoring "
        "cutoff, read from a read-only snapshot of the warehouse (docs/serving.md).",
        version="1",
        dependencies=[Depends(require_key)],
    )
    app.state.store = store
    with contextlib.suppress(SnapshotUnavailableError):
        store.current()  # open the snapshot now, not on the first request

    @app.exception_handler(SnapshotUnavailableError)
    def _unavailable(_: Request, exc: SnapshotUnavailableError) -> JSONResponse:
        return _problem(503, str(exc))

    @app.exception_handler(duckdb.Error)
    def _read_failed(_: Request, exc: duckdb.Error) -> JSONResponse:
        logger.warning("snapshot read failed: %s", exc)
        return _problem(
            503,
            f"the serving snapshot could not be read ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0]}); the service is up, retry the request (GET /health "
            "shows the snapshot in use)",
        )

    Snap = Annotated[Snapshot, Depends(snapshot)]

    @app.get("/customers/{customer_id}/propensity", response_model=CustomerPropensity)
    async def customer_propensity(
        customer_id: Annotated[int, PathParam(description="raw.customers.customer_id")],
        snap: Snap,
    ) -> Response:
        """Every product group's score and decile for one customer, the best group and (when
        the snapshot holds them) the reasons of each score."""
        # Scores and reasons are in memory (a binary search, no I/O): answered on the event
        # loop, without a thread hop or a query.
        rows = snap.customer_scores(customer_id)
        if not rows:
            raise HTTPException(
                404,
                f"customer {customer_id} has no scores at cutoff {snap.info['as_of_date']} "
                f"({snap.info['customers']:,} customers scored): not in raw.customers, or "
                "created after the cutoff",
            )
        reasons = (
            snap.customer_reasons(snap.customer_index(customer_id)) if snap.has_reasons else {}
        )
        groups = [
            {
                "product_group": g,
                "model_id": m,
                "score": s,
                "decile": d,
                "reasons": reasons.get(g, []) if snap.has_reasons else None,
            }
            for g, m, s, d in rows
        ]
        ranked = sorted(
            (r for r in rows if r[0] != "any"), key=lambda r: (-r[2], r[0])
        )  # dim_customer_propensity's rule
        body = {
            "customer_id": customer_id,
            "as_of_date": snap.info["as_of_date"].isoformat(),
            "best_group": ranked[0][0] if ranked else None,
            "groups": groups,
        }
        # Serialised here (the shape is CustomerPropensity's): validating it again per request
        # costs more than the look-up.
        return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")

    @app.get("/audiences/{campaign_id}", response_model=AudiencePage)
    def audience(
        campaign_id: str,
        snap: Snap,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        after: Annotated[
            int, Query(ge=0, description="score_rank of the last row of the previous page")
        ] = 0,
        selected_only: bool = True,
    ) -> dict:
        """A campaign's audience in score order, a page at a time (keyset paging on score_rank:
        stable while you page, within one snapshot)."""
        found = snap.query(
            "select product_group, scored_customers, selected_customers from campaigns "
            "where campaign_id = ?",
            [campaign_id],
        )
        if not found:
            known = [r[0] for r in snap.query("select campaign_id from campaigns order by 1")]
            raise HTTPException(
                404,
                f"campaign {campaign_id!r} is not in the snapshot of {snap.info['as_of_date']} "
                f"(campaigns: {', '.join(known) or 'none'}; `propensity campaigns set` adds one)",
            )
        group, scored, selected = found[0]
        rows = snap.query(
            "select customer_id, score, decile, score_rank, is_selected, is_holdout, "
            "exclusion_reason, message_tier from audiences "
            "where campaign_id = ? and score_rank > ? and (is_selected or not ?) "
            "order by score_rank limit ?",
            [campaign_id, after, selected_only, limit + 1],
        )
        more = len(rows) > limit
        rows = rows[:limit]
        keys = (
            "customer_id",
            "score",
            "decile",
            "score_rank",
            "is_selected",
            "is_holdout",
            "exclusion_reason",
            "message_tier",
        )
        return {
            "campaign_id": campaign_id,
            "product_group": group,
            "as_of_date": snap.info["as_of_date"],
            "selected_only": selected_only,
            "total": selected if selected_only else scored,
            "customers": [dict(zip(keys, r, strict=True)) for r in rows],
            "next_after": rows[-1][3] if more else None,
        }

    @app.get("/models", response_model=list[ModelInfo])
    def models(snap: Snap) -> list[dict]:
        """The champions of the snapshot with their feature names (the input of POST /score)."""
        out = []
        for group, model_id, sha, names in snap.query(
            "select product_group, model_id, onnx_sha256, feature_names from models order by 1"
        ):
            out.append(
                {
                    "product_group": group,
                    "model_id": model_id,
                    "onnx_sha256": sha,
                    "status": snap.model_status(group),
                    "feature_names": json.loads(names) if names else None,
                }
            )
        return out

    @app.post("/score", response_model=ScoreResponse)
    def score(body: ScoreRequest, snap: Snap) -> dict:
        """Score one feature vector with a group's champion: the ONNX bytes of the snapshot's
        registry copy, sha256-checked, run by the same `scoring` core as the warehouse."""
        from scoring import ModelIntegrityError, score_batch

        if body.product_group not in snap.champions:
            raise HTTPException(
                404,
                f"product group {body.product_group!r} has no champion in the snapshot of "
                f"{snap.info['as_of_date']} (groups: {', '.join(snap.champions) or 'none'})",
            )
        try:
            model = snap.model(body.product_group)
        except ModelIntegrityError as exc:
            raise HTTPException(
                503,
                f"the champion of {body.product_group!r} cannot be used: {exc}",
            ) from exc
        vector = _feature_vector(body.features, model.feature_names)
        import numpy as np

        value = float(score_batch(model, np.asarray([vector], dtype=np.float32))[0])
        return {
            "product_group": body.product_group,
            "model_id": model.model_id,
            "onnx_sha256": model.sha256,
            "score": value,
        }

    @app.get("/health", response_model=Health)
    def health() -> JSONResponse | dict:
        """The snapshot in use, its freshness, and the champions (model ids) it serves."""
        try:
            snap = store.current()
        except SnapshotUnavailableError as exc:
            body = Health(
                status="no snapshot",
                snapshot=None,
                as_of_date=None,
                scored_at=None,
                last_order_date=None,
                published_at=None,
                snapshot_age_seconds=None,
                customers=None,
                reasons_available=False,
                models=[],
                snapshot_error=str(exc),
            )
            return JSONResponse(status_code=503, content=body.model_dump(mode="json"))
        info = snap.info
        published = info["published_at"]
        age = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - published).total_seconds()
        return {
            "status": "ok" if store.error is None else "degraded",
            "snapshot": snap.path.name,
            "as_of_date": info["as_of_date"],
            "scored_at": info["scored_at"],
            "last_order_date": info["last_order_date"],
            "published_at": published,
            "snapshot_age_seconds": round(age, 1),
            "customers": info["customers"],
            "reasons_available": snap.has_reasons,
            "models": [{**c, "status": snap.model_status(g)} for g, c in snap.champions.items()],
            "snapshot_error": store.error,
        }

    return app


def _feature_vector(features: dict[str, Any] | list[Any], names: tuple[str, ...]) -> list[float]:
    """The model's input row from a request, or a 422 naming every bad feature."""
    errors: list[dict[str, Any]] = []

    def check(loc: list, name: str, value: Any) -> float | None:
        if isinstance(value, bool):
            return float(value)
        if not isinstance(value, int | float) or value is None:
            errors.append(
                {
                    "loc": loc,
                    "msg": f"feature {name!r} must be a number, got "
                    f"{type(value).__name__ if value is not None else 'null'} {value!r}",
                    "type": "feature_type",
                }
            )
            return None
        if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
            errors.append(
                {
                    "loc": loc,
                    "msg": f"feature {name!r} must be a finite float32 number, got {value!r}",
                    "type": "feature_range",
                }
            )
            return None
        return float(value)

    vector: list[float | None] = []
    if isinstance(features, dict):
        for name in names:
            if name not in features:
                errors.append(
                    {
                        "loc": ["body", "features", name],
                        "msg": f"feature {name!r} is missing (the model takes {len(names)} "
                        "features; GET /models lists them)",
                        "type": "feature_missing",
                    }
                )
                continue
            vector.append(check(["body", "features", name], name, features[name]))
        for name in features:
            if name not in names:
                errors.append(
                    {
                        "loc": ["body", "features", name],
                        "msg": f"feature {name!r} is not an input of the model",
                        "type": "feature_unknown",
                    }
                )
    else:
        if len(features) != len(names):
            where = (
                f"the first missing one is {names[len(features)]!r}"
                if len(features) < len(names)
                else f"the {len(features) - len(names)} extra values start at position {len(names)}"
            )
            raise HTTPException(
                422,
                [
                    {
                        "loc": ["body", "features"],
                        "msg": f"expected {len(names)} feature values in the order of the "
                        f"model's feature_names (GET /models), got {len(features)}: {where}",
                        "type": "feature_count",
                    }
                ],
            )
        for i, (name, value) in enumerate(zip(names, features, strict=True)):
            vector.append(check(["body", "features", i], name, value))
    if errors:
        raise HTTPException(422, errors)
    return vector  # type: ignore[return-value]
