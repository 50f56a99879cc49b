"""Security headers on every response, and the strict set on every HTML page.

The console sets its own strict headers (``serving.console.security.SECURITY_HEADERS``); this
middleware makes sure *every* HTML response the service sends (console error pages, the OpenAPI
``/docs`` and ``/redoc`` pages, anything added later) carries at least a no-framing, no-sniffing,
no-referrer-leak baseline, and that JSON responses are not content-sniffed. Headers a route already
set win: nothing is overwritten.

The baseline CSP for HTML only forbids framing, ``<base>`` and plugins: the interactive API pages
load Swagger UI from a CDN with an inline bootstrap script, which a ``script-src`` rule would break.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.settings import Settings
from serving.ratelimit import RateLimitMiddleware

#: every response
ALWAYS: tuple[tuple[bytes, bytes], ...] = ((b"x-content-type-options", b"nosniff"),)
#: responses whose content type is text/html
HTML: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)
#: only over https (a browser ignores it over http, and it must not pin localhost)
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeadersMiddleware:
    """Pure ASGI: adds missing headers to the response start message."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                wanted = list(ALWAYS)
                ctype = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                if ctype.startswith(b"text/html"):
                    wanted.extend(HTML)
                if https:
                    wanted.append(HSTS)
                headers.extend((n, v) for n, v in wanted if n not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)


def harden(app: FastAPI, settings: Settings) -> None:
    """Mount the security headers and the public rate limit (called once by ``create_app``)."""
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.public_rate_per_minute > 0:
        app.add_middleware(
            RateLimitMiddleware, per_minute=settings.public_rate_per_minute, burst=settings.public_rate_burst
        )
