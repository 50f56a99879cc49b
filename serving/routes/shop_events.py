"""``POST /v1/shops/{shop_id}/events``: new events of one shop refresh its online feature row.

An order, a complaint, a review, a new or edited listing arrives; the shop's stored history
(``features.online_store``) takes it and its feature row is recomputed with the champion's fitted
pipeline, in one write transaction, without rebuilding the marketplace. The next score by id reads
the new row. Types are strict (JSON's own: a number is no string), an event's ``shop_id`` (when given)
must be the path's, posting the same events again changes nothing, and an id reused with other
content is a 409.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.responses import Response

from marketplace.records import ComplaintItem, ListingEditItem, ListingItem, OrderItem, ReviewItem
from serving.deps import SCORING_ROLES, authorise
from serving.responses import OrjsonResponse
from serving.schemas import ErrorBody, Text, duplicate_key
from serving.services import Services

router = APIRouter(prefix="/v1", tags=["scoring"])

MAX_EVENTS = 10_000


class ShopEventsIn(BaseModel):
    """New events of one shop, in the data contract's shapes (``marketplace.records``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    orders: list[OrderItem] = Field(default_factory=list, max_length=MAX_EVENTS)
    complaints: list[ComplaintItem] = Field(default_factory=list, max_length=MAX_EVENTS)
    reviews: list[ReviewItem] = Field(default_factory=list, max_length=MAX_EVENTS)
    listings: list[ListingItem] = Field(
        default_factory=list, max_length=MAX_EVENTS, description="new listings, or a listing again (edited, delisted)"
    )
    listing_edits: list[ListingEditItem] = Field(default_factory=list, max_length=MAX_EVENTS)

    @model_validator(mode="after")
    def _some(self) -> ShopEventsIn:
        if not any((self.orders, self.complaints, self.reviews, self.listings, self.listing_edits)):
            raise ValueError("no events: give at least one of orders, complaints, reviews, listings, listing_edits")
        return self


class ShopEventsOut(BaseModel):
    shop_id: str
    added: dict[str, int]
    replaced: dict[str, int]
    unchanged: int
    as_of: str = Field(description="the as-of of the refreshed row: just after the newest event it holds")
    pipeline: str = Field(description="digest of the fitted feature pipeline the row was built with")
    model_name: str
    model_version: str


def parse_events(raw: bytes, shop_id: str) -> ShopEventsIn:
    repeated = duplicate_key(raw)
    if repeated is not None:
        msg = f"JSON decode error: duplicate key {repeated!r}"
        raise RequestValidationError([{"loc": ("body",), "msg": msg, "type": "json_invalid"}])
    try:
        body = ShopEventsIn.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        errors = [
            {"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise RequestValidationError(errors) from None
    wrong = [
        {"loc": ("body", kind, i, "shop_id"), "msg": f"must be the path's shop id {shop_id!r}", "type": "value_error"}
        for kind in ("orders", "complaints", "reviews", "listings")
        for i, e in enumerate(getattr(body, kind))
        if e.shop_id is not None and e.shop_id != shop_id
    ]
    if wrong:
        raise RequestValidationError(wrong)
    return body


@router.post(
    "/shops/{shop_id}/events",
    response_model=ShopEventsOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ShopEventsIn"}}},
        },
        "security": [{"APIKeyHeader": []}],
    },
    summary="ingest a shop's new events; its online feature row is recomputed (scorer or admin)",
    responses={
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        404: {"model": ErrorBody, "description": "the online store holds no history of this shop"},
        409: {"model": ErrorBody, "description": "an event id already in the history with other content"},
        422: {"model": ErrorBody},
        503: {"model": ErrorBody, "description": "no model loaded yet"},
    },
)
async def post_events(request: Request, shop_id: Annotated[Text, Path(min_length=1, max_length=64)]) -> Response:
    from features.online_store import refresh_shop

    services: Services = request.state.services
    authorise(services, request.headers.get("x-api-key"), SCORING_ROLES)
    served = services.holder.current
    if served is None:
        raise HTTPException(503, "no model loaded yet; see /readyz")
    runtime = served.runtime
    store, pipeline = runtime.store, runtime.model.pipeline
    if store is None or pipeline is None:
        raise HTTPException(503, "this service has no online feature store or its model no feature pipeline")
    body = parse_events(await request.body(), shop_id)
    events: dict[str, Any] = {
        kind: [e.model_dump(mode="json") for e in getattr(body, kind)]
        for kind in ("orders", "complaints", "reviews", "listings", "listing_edits")
        if getattr(body, kind)
    }
    result = await asyncio.to_thread(refresh_shop, store, pipeline, shop_id, events)
    services.metrics.online_refreshes.inc()
    return OrjsonResponse(
        {
            "shop_id": result.shop_id,
            "added": result.added,
            "replaced": result.replaced,
            "unchanged": result.unchanged,
            "as_of": result.as_of.isoformat(),
            "pipeline": result.pipeline,
            "model_name": served.name,
            "model_version": served.version,
        }
    )
