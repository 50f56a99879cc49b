"""Liveness, readiness (a model is loaded) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from serving.deps import ServicesDep
from serving.responses import OrjsonResponse, iso_utc
from serving.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="the process is up")
async def healthz() -> Response:
    return OrjsonResponse({"status": "ok"})


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="ready only with a model loaded; says which version and whether it is a cached fallback",
    responses={503: {"model": Readiness, "description": "no model loaded"}},
)
async def readyz(services: ServicesDep) -> Response:
    holder = services.holder
    current, shadow = holder.current, holder.shadow
    mp = services.marketplace
    body = {
        "ready": current is not None,
        "model": current.describe() if current else None,
        "shadow": shadow.describe() if shadow else None,
        "last_error": holder.last_error,
        "marketplace_shops": len(current.runtime.index) if current else 0,
        "snapshot_at": iso_utc(mp.snapshot_at) if mp is not None else None,
        "inputs": list(current.runtime.inputs) if current else [],
        "features": current.runtime.feature_names if current and current.runtime.inputs == ("rows",) else None,
    }
    return OrjsonResponse(body, status_code=200 if current is not None else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
