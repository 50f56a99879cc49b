"""Request and response bodies of the HTTP API (public shapes; no secret ever appears in a response)."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Request
from fastapi.routing import APIRoute
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from starlette.responses import Response

from core.db import MAX_ID, storable_text
from marketplace.records import ShopRecord

#: hard ceiling of the schema; the service's own limit is ``settings.max_batch`` (default 1,000)
HARD_MAX_BATCH = 100_000

EARLIEST_AS_OF = datetime(2000, 1, 1)
LATEST_AS_OF = datetime(2200, 1, 1)


def _storable(value: str) -> str:
    why = storable_text(value)
    if why is not None:
        raise ValueError(why)
    return value


#: the pattern of :data:`Text` in the published schema (what a generated request must match)
STORABLE_PATTERN = "^[^\\u0000]*$"
#: text that may reach the database: without what a database cannot store (NUL, lone surrogates), a 422
#: at the edge instead of a 500 from PostgreSQL (or a NUL SQLite stores silently)
Text = Annotated[str, AfterValidator(_storable), Field(json_schema_extra={"pattern": STORABLE_PATTERN})]
#: an id of a row of the service's database: within what every database's ``integer`` holds (2^31 - 1;
#: a larger one is a 422 here, not a 500 from PostgreSQL or an ``OverflowError`` from SQLite)
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
ShopId = Annotated[Text, StringConstraints(min_length=1, max_length=64)]


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return out


def loads_unique(raw: bytes | str) -> Any:
    """JSON text as Python data, refusing an object that names a key twice (JSON parsers keep the last
    one silently, so what a client meant is ambiguous): ``json.JSONDecodeError`` naming the key."""
    try:
        return json.loads(raw, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        raise json.JSONDecodeError(f"duplicate key {exc.args[0]!r}", text, 0) from None


def duplicate_key(raw: bytes | str) -> str | None:
    """The first key some object of the JSON text ``raw`` names twice; None when there is none or
    ``raw`` is no JSON at all (its parser then says what is wrong)."""
    try:
        json.loads(raw, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        return str(exc.args[0])
    except (ValueError, RecursionError):
        return None
    return None


class UniqueKeysRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_unique(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """A route whose JSON body is refused (422) when an object names a key twice."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def unique_keys(request: Request) -> Response:
            return await handler(UniqueKeysRequest(request.scope, request.receive))

        return unique_keys


Tier = Literal["low", "watch", "suspected"]


class ScoreOptions(BaseModel):
    """The options of a scoring request (``ScoreRequest`` without the shops)."""

    model_config = ConfigDict(extra="forbid")

    as_of: datetime | None = Field(
        default=None, description="records only: features use events strictly before this time (default: now, UTC)"
    )
    # strict: JSON's own types only ("yes" or 1 is no true, "3" no 3)
    route: bool = Field(
        default=False, strict=True, description="open or update a case for shops at or above the suspected tier"
    )
    top: int = Field(default=3, ge=1, le=10, strict=True, description="at most this many reasons per flagged shop")
    evidence: bool = Field(
        default=False,
        strict=True,
        description="shop_ids only: also return each reason structured (code, text, the evidence it cites: "
        "listing, review, complaint, linked shop, order) for watch and suspected shops, in `reason_details`",
    )

    @field_validator("as_of")
    @classmethod
    def _plausible(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return v
        naive = v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo is not None else v
        if not EARLIEST_AS_OF <= naive <= LATEST_AS_OF:
            raise ValueError(f"as_of must lie between {EARLIEST_AS_OF:%Y-%m-%d} and {LATEST_AS_OF:%Y-%m-%d}")
        return v


class FeatureRow(BaseModel):
    """One row of a feature table, for a model trained with ``dajia train --table``."""

    model_config = ConfigDict(extra="forbid")

    shop_id: ShopId = Field(description="the row's id, echoed in the result")
    features: dict[str, float | None] = Field(
        description="every feature the champion was trained on (names in /readyz), a number or null (missing)"
    )


class ScoreRequest(ScoreOptions):
    """Score shops given their ids (features from the service's marketplace), raw records, or (a model
    trained from a feature table) feature rows. ``/readyz`` says which the champion accepts."""

    # exactly one of the lists, and each not null when given: said in the schema too
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["shop_ids"]}, {"required": ["records"]}, {"required": ["rows"]}]},
    )

    # typed as lists (not "list | None") so the schema says "array, not null" and a bad item's error path
    # is plain (body.shop_ids[0]); absent means None (defaults are not validated)
    shop_ids: Annotated[list[ShopId], Field(min_length=1, max_length=HARD_MAX_BATCH)] = Field(
        default=None,  # type: ignore[arg-type]
        description="shops of the service's marketplace",
    )
    records: Annotated[list[ShopRecord], Field(min_length=1, max_length=HARD_MAX_BATCH)] = Field(
        default=None,  # type: ignore[arg-type]
        description="shops in the data-contract shape (marketplace.records.ShopRecord), scored inline",
    )
    rows: Annotated[list[FeatureRow], Field(min_length=1, max_length=HARD_MAX_BATCH)] = Field(
        default=None,  # type: ignore[arg-type]
        description="feature rows, for a champion trained from a feature table (dajia train --table)",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ScoreRequest:
        if sum(x is not None for x in (self.shop_ids, self.records, self.rows)) != 1:
            raise ValueError("give exactly one of shop_ids, records or rows")
        return self


class CaseRef(BaseModel):
    case_id: str
    status: str
    created: bool


class EvidenceRef(BaseModel):
    """One item a reason cites: ``kind`` (listing, review, complaint, linked_shop, order, listing_edit, shop),
    its ``id`` in the marketplace, and ``text`` (an excerpt; the words that drove a text score in «»).
    Further keys by kind: ``marked`` (those words), ``title_score``, ``brand``/``price``/``reference_price``/
    ``price_ratio``, ``counts`` (complaints per kind), ``identifier`` (the shared identifier's kind), …"""

    model_config = ConfigDict(extra="allow")

    kind: str
    id: str
    text: str


class ReasonDetail(BaseModel):
    code: str = Field(description="the feature behind the reason")
    text: str = Field(description="the reason in words (as in `reasons`)")
    evidence: list[EvidenceRef]


class OnlineFeatures(BaseModel):
    """What the online feature row a shop scored by id was (``features.online_store``)."""

    source: Literal["online"] = "online"
    status: Literal["fresh", "stale"] = Field(
        description="stale: last computed longer ago than settings.online_max_age_hours (scored, but say so)"
    )
    as_of: datetime = Field(description="the row's features use events strictly before this time")
    refreshed_at: datetime = Field(description="when the row was last computed (sweep or ingested events)")
    pipeline: str = Field(description="digest of the fitted feature pipeline the row was built for")


class ScoreResult(BaseModel):
    shop_id: str
    score: float = Field(ge=0.0, le=1.0, description="calibrated probability that the shop sells counterfeits")
    rank: int | None = Field(
        default=None,
        ge=1,
        description="position riskiest first among the response's `reference` shops (1 = riskiest; ties in score "
        "broken by shop id; a shop outside the reference ranks ahead of the reference shops sharing its score); "
        "null when the model has no reference",
    )
    percentile: float | None = Field(
        default=None,
        ge=0.0,
        le=100.0,
        description="share (0-100) of the reference shops ranked at or below this shop: 99.5 = riskier than "
        "99.5% of them; null when the model has no reference",
    )
    tier: Tier
    reasons: list[str] = Field(description="top reasons in words (only for watch and suspected shops)")
    reason_details: list[ReasonDetail] | None = Field(
        default=None, description="with `evidence: true` (shop_ids): the reasons structured, with the evidence cited"
    )
    model_name: str
    model_version: str
    request_id: str
    case: CaseRef | None = Field(default=None, description="the case opened or updated (route=true only)")
    features: OnlineFeatures | None = Field(
        default=None, description="shop_ids only: the online feature row scored (fresh or stale, as-of, pipeline)"
    )


class ModelRef(BaseModel):
    name: str
    version: str


class RankReference(BaseModel):
    source: Literal["marketplace", "training_population"] = Field(
        description="`marketplace`: the shops of the marketplace the service was started with, scored by this "
        "model as of its snapshot; `training_population`: the population sample the model's thresholds were "
        "placed on (no marketplace loaded)"
    )
    shops: int = Field(description="how many shops the reference holds")


class ScoreResponse(BaseModel):
    request_id: str
    model: ModelRef
    reference: RankReference | None = Field(
        default=None, description="what `rank` and `percentile` are measured in; null for a model without one"
    )
    results: list[ScoreResult]


class PredictionOut(BaseModel):
    id: int
    logged_at: datetime
    request_id: str
    key_id: str | None
    shop_id: str
    model_name: str
    model_version: str
    feature_digest: str
    score: float
    tier: str
    reasons: list[str]
    shadow: bool


class PredictionPage(BaseModel):
    predictions: list[PredictionOut]
    next_before_id: int | None = Field(description="pass as before_id for the next (older) page")


class Health(BaseModel):
    status: Literal["ok"]


class ServedOut(BaseModel):
    name: str
    version: str
    alias: str
    source: Literal["registry", "cache"]
    cached_fallback: bool
    loaded_at: datetime


class Readiness(BaseModel):
    ready: bool
    database_error: str | None = Field(description="None when the database answers, else why not")
    model: ServedOut | None
    shadow: ServedOut | None
    last_error: str | None
    marketplace_shops: int = Field(description="shops the online feature store holds rows of for the champion")
    snapshot_at: datetime | None
    inputs: list[Literal["shop_ids", "records", "rows"]] = Field(
        description="what POST /v1/scores accepts from the champion: shop_ids and records (a marketplace "
        "model), or rows (a model trained from a feature table); empty with no model loaded"
    )
    features: list[str] | None = Field(
        description="rows only: the feature names every row must give (numbers or null), in the model's order"
    )


class ErrorItem(BaseModel):
    path: str
    message: str


class ErrorBody(BaseModel):
    error: str
    message: str
    request_id: str
    errors: list[ErrorItem] | None = None
