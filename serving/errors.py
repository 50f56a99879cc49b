"""Domain errors and request validation mapped to HTTP in one place.

Every error body has the same shape: ``{"error": <kind>, "message": <text>, "request_id": <id>}``
plus ``"errors": [{"path": "body.records[0].listings[2].price", "message": ...}, ...]`` for 422s.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from core.errors import (
    Conflict,
    DajiaError,
    DataContractError,
    DiskFull,
    Forbidden,
    InvalidTransition,
    NotFound,
    disk_full,
)
from serving.responses import OrjsonResponse
from serving.runtime import InputMismatch

#: most specific first; the first isinstance match wins
STATUS_OF: tuple[tuple[type[DajiaError], int], ...] = (
    (InputMismatch, 422),
    (NotFound, 404),
    (Conflict, 409),
    (Forbidden, 403),
    (InvalidTransition, 409),
    (DataContractError, 422),
    (DiskFull, 507),
    (DajiaError, 400),
)


def status_for(exc: DajiaError) -> int:
    own = getattr(exc, "http_status", None)  # an error that knows its answer (e.g. an expired link: 410)
    if isinstance(own, int):
        return own
    for cls, status in STATUS_OF:
        if isinstance(exc, cls):
            return status
    return 400


def json_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "records", 0, "price")`` -> ``body.records[0].price``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def request_id_of(request: Request) -> str:
    return str(request.scope.get("dajia.request_id", ""))


def error_response(
    scope: Scope,
    status: int,
    kind: str,
    message: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The error response for a request's ``scope`` (``request.scope`` in a handler; pure-ASGI middleware
    sends it with ``await response(scope, receive, send)``)."""
    body: dict[str, Any] = {"error": kind, "message": message, "request_id": str(scope.get("dajia.request_id", ""))}
    if errors is not None:
        body["errors"] = errors
    return OrjsonResponse(body, status_code=status, headers=headers)


def _message(e: dict[str, Any]) -> str:
    """The error's message, with the parser's own words when it has them (e.g. which key was repeated)."""
    msg = str(e.get("msg", "invalid"))
    ctx = e.get("ctx")
    detail = ctx.get("error") if isinstance(ctx, dict) else None
    return f"{msg}: {detail}" if isinstance(detail, str) and detail and detail not in msg else msg


def validation_errors(raw: list[Any]) -> list[dict[str, Any]]:
    out = []
    for e in raw:
        loc = list(e.get("loc", ()))
        out.append(
            {
                "path": json_path(loc),
                "loc": [str(p) if not isinstance(p, int) else p for p in loc],
                "message": _message(e),
                "type": str(e.get("type", "value_error")),
            }
        )
    return out


async def _dajia_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DajiaError)
    status = status_for(exc)
    errors: list[dict[str, Any]] | None = None
    if isinstance(exc, DataContractError):
        errors = [
            {
                "path": f"{exc.table}.{exc.column}" if exc.column else exc.table,
                "message": exc.problem,
                "rows": [str(r) for r in exc.rows[:20]],
            }
        ]
    elif isinstance(exc, InputMismatch):
        errors = [
            {"path": json_path(loc), "loc": list(loc), "message": m, "type": "input_mismatch"} for loc, m in exc.errors
        ]
    return error_response(request.scope, status, type(exc).__name__, str(exc), errors)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(list(exc.errors()))
    return error_response(request.scope, 422, "ValidationError", f"{len(errors)} invalid field(s)", errors)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> str:
    """Every method some route of the app answers at this address (Starlette's 405 names only the
    methods of the first route whose path matches: ``GET`` for ``/v1/campaigns``, which also takes POST)."""
    methods = []
    for method in _METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            methods.append(method)
    return ", ".join(methods)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": allowed_methods(request)}
    return error_response(request.scope, exc.status_code, "HTTPError", str(exc.detail), headers=headers)


#: seconds a client is told to wait when the database is unreachable
DB_RETRY_AFTER_SECONDS = 2


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """The database cannot be reached (connection refused or lost, pool exhausted, locked): a 503 the
    client can retry, not a 500. Every write runs in one transaction, so nothing was half-applied."""
    if isinstance(exc, sa_exc.DBAPIError) and not (
        isinstance(exc, sa_exc.OperationalError) or exc.connection_invalidated
    ):
        raise exc  # a real bug (integrity, programming error): let it be a 500 with its traceback logged
    full = disk_full(exc)
    if full is not None:  # SQLite on a full disk: the write was rolled back; retry once space is freed
        return error_response(
            request.scope, 503, "DatabaseFull", str(full), headers={"Retry-After": str(DB_RETRY_AFTER_SECONDS)}
        )
    return error_response(
        request.scope,
        503,
        "DatabaseUnavailable",
        "the database is unreachable right now; retry shortly",
        headers={"Retry-After": str(DB_RETRY_AFTER_SECONDS)},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DajiaError, _dajia_error)
    app.add_exception_handler(sa_exc.DBAPIError, _database_unavailable)
    app.add_exception_handler(sa_exc.TimeoutError, _database_unavailable)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
