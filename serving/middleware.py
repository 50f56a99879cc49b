"""One pure-ASGI middleware for every request: a request id, latency and status metrics.

Pure ASGI (not ``BaseHTTPMiddleware``) so it adds microseconds, not a task per request.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import error_response
from serving.metrics import Metrics

_MAX_ID = 64
#: request ids are a per-process random prefix plus a counter: unique, cheap (no syscall per request)
_PREFIX = os.urandom(6).hex()
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):010x}"


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            rid = value.decode("latin-1")
            if 0 < len(rid) <= _MAX_ID and rid.replace("-", "").replace("_", "").isalnum():
                return rid
            return None
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _counting(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, f"request body is above the limit of {limit} bytes")
        return message

    return wrapped


class RequestMetricsMiddleware:
    """Request id, metrics, and a JSON 413 for a declared body above ``max_body_bytes``.

    A body streamed without a declared length is counted as it arrives; crossing the limit raises a
    413 ``HTTPException`` inside the app, which the error handlers render the same way.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        #: labelled metric children by (route, method, status): ``labels()`` is not free on the hot path
        self._cache: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def _children(self, path: str, method: str, status: int) -> tuple[Any, Any, Any]:
        key = (path, method, status)
        hit = self._cache.get(key)
        if hit is None:
            m = self.metrics
            hit = (
                m.latency.labels(path, method),
                m.responses.labels(path, str(status)),
                m.errors.labels(path, str(status)) if status >= 400 else None,
            )
            if len(self._cache) < 10_000:
                self._cache[key] = hit
        return hit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or new_request_id()
        scope["dajia.request_id"] = rid
        status = 500
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            length = _content_length(scope) if self.max_body_bytes is not None else None
            if length is not None and self.max_body_bytes is not None and length > self.max_body_bytes:
                response = error_response(
                    scope,
                    413,
                    "ContentTooLarge",
                    f"request body of {length} bytes is above the limit of {self.max_body_bytes}",
                )
                await response(scope, receive, send_wrapper)
                return
            if self.max_body_bytes is not None and length is None:
                receive = _counting(receive, self.max_body_bytes)
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            latency, responses, errors = self._children(path, scope.get("method", ""), status)
            latency.observe(time.perf_counter() - t0)
            responses.inc()
            if errors is not None:
                errors.inc()
