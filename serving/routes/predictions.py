"""``GET /v1/predictions``: the prediction log, for reviewers."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from serving.deps import ReviewerKey, ServicesDep
from serving.responses import OrjsonResponse, iso_utc
from serving.schemas import ErrorBody, PredictionPage, Text

router = APIRouter(prefix="/v1", tags=["predictions"])


@router.get(
    "/predictions",
    response_model=PredictionPage,
    summary="logged scores, newest first (reviewer or admin)",
    responses={
        400: {"model": ErrorBody},
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        422: {"model": ErrorBody},
    },
)
async def list_predictions(
    services: ServicesDep,
    key: ReviewerKey,
    shop_id: Annotated[Text | None, Query(min_length=1, max_length=64)] = None,
    shadow: Annotated[bool | None, Query(description="only shadow (true) or only served (false) scores")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    rows = await asyncio.to_thread(services.log.query, shop_id, limit, before_id, shadow)
    body = {
        "predictions": [{**asdict(r), "logged_at": iso_utc(r.logged_at)} for r in rows],
        "next_before_id": rows[-1].id if len(rows) == limit else None,
    }
    return OrjsonResponse(body)
