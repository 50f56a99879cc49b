"""``POST /v1/scores``: the hot path for trust-and-safety systems."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from msgspec import UNSET, UnsetType
from pydantic import ValidationError
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.deps import SCORING_ROLES, authorise
from serving.errors import request_id_of
from serving.record_columns import RECORD_STRUCT, columns_of, key_problem, record_key_problem, text_keys
from serving.responses import OrjsonResponse
from serving.schemas import HARD_MAX_BATCH, ErrorBody, ScoreOptions, ScoreRequest, ScoreResponse, duplicate_key
from serving.scoring import InlineRecords, ScoreInput, check_batch, score_request, too_large
from serving.services import Services

router = APIRouter(prefix="/v1", tags=["scoring"])

#: the request body and security as FastAPI would have published them for a declared parameter
OPENAPI_EXTRA = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScoreRequest"}}},
    },
    "security": [{"APIKeyHeader": []}],
}


@router.post(
    "/scores",
    response_model=ScoreResponse,
    openapi_extra=OPENAPI_EXTRA,
    summary="score shops by id or from inline records",
    description=(
        "Give exactly one of `shop_ids` (shops of the marketplace the service was started with) or `records` "
        "(shops in the data-contract shape). At most `settings.max_batch` shops per request (default 1,000; "
        "more gets 422 naming the field). Each result carries the calibrated score, the tier, up to `top` "
        "reasons in words for watch and suspected shops, the model name and version and the request id. "
        "Every score is in the prediction log before the response is sent. With `route: true`, shops in the "
        "suspected tier open (or update) a case in the sanction workflow; repeating the call does not open a "
        "second case."
    ),
    responses={
        400: {"model": ErrorBody, "description": "the body is not JSON, or the request is refused"},
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        404: {"model": ErrorBody, "description": "unknown shop id"},
        413: {"model": ErrorBody, "description": "body larger than the limit"},
        422: {"model": ErrorBody, "description": "invalid field; `errors[].path` names each one"},
        503: {"model": ErrorBody, "description": "no model loaded yet (see /readyz)"},
    },
)
async def create_scores(request: Request) -> Response:
    # The hot path skips FastAPI's dependency solver and body handling (about a third of a request's CPU):
    # the key is checked from the header, the body parsed and validated in one pass by pydantic-core.
    # The OpenAPI operation still documents the body (ScoreRequest) and the API-key security.
    services: Services = request.state.services
    key = authorise(services, request.headers.get("x-api-key"), SCORING_ROLES)
    served = services.holder.current
    if served is None:
        raise HTTPException(503, "no model loaded yet; see /readyz")
    raw = await request.body()
    limit = services.settings.max_batch
    if len(raw) <= PARSE_ON_LOOP_BYTES:
        body = parse_score_request(raw, limit)
    else:  # a batch of records: parsing and checking it takes milliseconds, the loop keeps serving
        body = await asyncio.to_thread(parse_score_request, raw, limit)
    result = await score_request(services, served, key, body, request_id_of(request))
    return OrjsonResponse(result)


#: bodies up to this size are parsed on the event loop (a thread hop costs more than parsing them)
PARSE_ON_LOOP_BYTES = 64 * 1024


def parse_score_request(raw: bytes, max_batch: int) -> ScoreInput:
    """The body as ``InlineRecords`` when it holds records that pass the column-wise check, else as a
    ``ScoreRequest`` (errors: 422, each bad field's path under ``body``). More than ``max_batch``
    shops: 422 on the list."""
    inline = inline_records(raw, max_batch)
    if inline is not None:
        _refuse_key_problem(key_problem(inline.columns.columns))
        return inline
    body = validate_score_request(raw)
    check_batch(body, max_batch)
    if body.records is not None:
        _refuse_key_problem(record_key_problem(body.records))
    return body


def _refuse_key_problem(problem: tuple[str, str] | None) -> None:
    """Inline records are held to the key rules of files: a duplicate or dangling id is a 422."""
    if problem is not None:
        where, what = problem
        msg = f"{where}: {what}"
        raise RequestValidationError([{"loc": ("body", "records"), "msg": msg, "type": "key_error"}])


def inline_records(raw: bytes, max_batch: int) -> InlineRecords | None:
    """The fast path for a batch of records: the body decoded by msgspec in one pass, the records straight
    into typed structs (``serving.record_columns.RECORD_STRUCT``) and the options as raw JSON that
    ``ScoreOptions`` then validates (JSON mode, like ``ScoreRequest``), and the records checked column by
    column (``serving.record_columns.columns_of``) without a Python dict per record. None whenever anything is
    not plainly valid: the caller then validates the body as a ``ScoreRequest``, so every error and every
    accepted value is the model's."""
    if b'"records"' not in raw:
        return None
    try:
        body = _RECORDS_BODY.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # not JSON, a key that is no option, a field out of shape
        return None
    given = {name: getattr(body, name) for name in _OPTIONS}
    options_json = (
        b"{" + b",".join(orjson.dumps(k) + b":" + bytes(v) for k, v in given.items() if v is not UNSET) + b"}"
    )
    try:
        options = ScoreOptions.model_validate_json(options_json)
    except ValidationError:
        return None
    if len(body.records) > max_batch:
        raise too_large("records", len(body.records), max_batch)
    columns = columns_of(body.records)
    if columns is None:
        return None
    # a key the text gives twice (the decoder keeps one silently), or written "key" : with a space: the
    # slow path decides (it refuses a repeated key and names it)
    if text_keys(raw) != 1 + sum(v is not UNSET for v in given.values()) + columns.keys:
        return None
    return InlineRecords(raw, columns, options.as_of, options.route, options.top)


#: the options a body with records may hold besides them (``ScoreOptions``' fields), kept as raw JSON
_OPTIONS = tuple(ScoreOptions.model_fields)
#: a body with records: the records as typed structs (at most ``HARD_MAX_BATCH``), any other key refused
_RECORDS_BODY: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
    msgspec.defstruct(
        "records_body",
        [
            ("records", Annotated[list[RECORD_STRUCT], msgspec.Meta(min_length=1, max_length=HARD_MAX_BATCH)]),
            *[(name, msgspec.Raw | UnsetType, UNSET) for name in _OPTIONS],
        ],
        forbid_unknown_fields=True,
        gc=False,
    )
)


def validate_score_request(raw: bytes) -> ScoreRequest:
    """The body as a ``ScoreRequest``; errors as FastAPI's (422, each path under ``body``). An object
    naming a key twice is refused (422 naming the key)."""
    repeated = duplicate_key(raw)
    if repeated is not None:
        msg = f"JSON decode error: duplicate key {repeated!r}"
        raise RequestValidationError([{"loc": ("body",), "msg": msg, "type": "json_invalid"}])
    try:
        return ScoreRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = [
            {"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise RequestValidationError(errors) from None


class ScoresFastPath:
    """Pure ASGI: ``POST /v1/scores`` goes straight to :func:`create_scores`, past FastAPI's router (a
    linear match over every route of the app), dependency solver and per-route wrappers, which cost
    about as much CPU as scoring one shop. Everything else passes through untouched.

    Errors are rendered exactly as on the normal path: by Starlette's ``ExceptionMiddleware`` holding
    the app's own exception handlers (``serving.errors``). ``scope["route"]`` is set to the registered
    route, so the metrics label and the OpenAPI operation (from that route) stay the same. Mounted inside
    the security-header and rate-limit middleware, so responses carry the same headers.
    """

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.route = next(
            r for r in router.routes if isinstance(r, APIRoute) and r.path == PATH and "POST" in (r.methods or ())
        )
        handlers = {k: v for k, v in api.exception_handlers.items() if k not in (500, Exception)}
        self.endpoint = ExceptionMiddleware(self._endpoint, handlers=handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and _route_path(scope) == PATH:
            scope["route"] = self.route
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    @staticmethod
    async def _endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        response = await create_scores(Request(scope, receive))
        await response(scope, receive, send)


#: the route the fast path serves (the router's prefix + the path of ``create_scores``)
PATH = "/v1/scores"


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
