"""Liveness, readiness (a model is loaded and the database answers) and Prometheus metrics."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import APIRouter
from sqlalchemy.engine import Engine
from starlette.responses import Response

from serving.deps import ServicesDep
from serving.responses import OrjsonResponse, iso_utc
from serving.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="the process is up")
async def healthz() -> Response:
    return OrjsonResponse({"status": "ok"})


#: seconds /readyz waits for the database's answer before calling it unreachable
DB_CHECK_SECONDS = 2.0


def _ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


async def database_error(engine: Engine) -> str | None:
    """None when the database answers a trivial query within :data:`DB_CHECK_SECONDS`, else why not (the
    error's kind only: its text may name hosts and users)."""
    try:
        await asyncio.wait_for(asyncio.to_thread(_ping, engine), DB_CHECK_SECONDS)
    except TimeoutError:
        return f"no answer within {DB_CHECK_SECONDS:g} s"
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
    return None


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="ready only with a model loaded and the database answering; says which model version is served",
    responses={503: {"model": Readiness, "description": "no model loaded, or the database does not answer"}},
)
async def readyz(services: ServicesDep) -> Response:
    holder = services.holder
    db_error = await database_error(services.engine)
    current, shadow = holder.current, holder.shadow
    mp = services.marketplace
    ready = current is not None and db_error is None
    shops = await asyncio.to_thread(current.runtime.online_shops) if current is not None else 0
    body = {
        "ready": ready,
        "database_error": db_error,
        "model": current.describe() if current else None,
        "shadow": shadow.describe() if shadow else None,
        "last_error": holder.last_error,
        "marketplace_shops": shops,
        "snapshot_at": iso_utc(mp.snapshot_at) if mp is not None else None,
        "inputs": list(current.runtime.inputs) if current else [],
        "features": current.runtime.feature_names if current and current.runtime.inputs == ("rows",) else None,
    }
    return OrjsonResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
