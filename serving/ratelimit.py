"""Per-client-IP rate limit on the endpoints anyone can call without a key.

The public endpoints (``/v1/public/...``), the console's sign-in form (the one place a guessed key
can be tried) and the schema pages answer without authentication, so they are what an abuser or a
scraper hammers. Each client IP gets a token bucket: ``public_rate_per_minute`` tokens a minute,
up to ``public_rate_burst`` saved up. An empty bucket gets a 429 with ``Retry-After`` (whole
seconds until one token is back) and the usual JSON error body; nothing behind it runs.

Keyed callers (scoring, reviewers) are not limited here: they are known and their keys can be
revoked. Health, readiness and metrics are for the infrastructure and are never limited.

The client IP is the ASGI ``client`` address; behind a reverse proxy run uvicorn with
``--proxy-headers --forwarded-allow-ips <proxy>`` so that address is the caller's, not the proxy's.
Buckets live in this process's memory (each worker limits on its own) and are bounded in number.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from serving.errors import error_response

#: path prefixes limited per client IP (GET and POST alike)
LIMITED_PREFIXES: tuple[str, ...] = ("/v1/public/", "/console/login", "/openapi.json", "/docs", "/redoc")
#: at most this many client buckets are kept; beyond it, refilled (idle) buckets are dropped first
MAX_BUCKETS = 50_000


def is_limited(path: str) -> bool:
    return path.startswith(LIMITED_PREFIXES)


class TokenBuckets:
    """One token bucket per key: ``rate`` tokens a second, at most ``burst`` stored."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, time of last update)

    def take(self, key: str) -> float:
        """0.0 if a token was taken, else the seconds until one is available."""
        now = self.clock()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._store(key, tokens - 1.0, now)
            return 0.0
        self._store(key, tokens, now)
        return (1.0 - tokens) / self.rate

    def _store(self, key: str, tokens: float, now: float) -> None:
        if key not in self._buckets and len(self._buckets) >= MAX_BUCKETS:
            self._evict(now)
        self._buckets[key] = (tokens, now)

    def _evict(self, now: float) -> None:
        full = [k for k, (t, last) in self._buckets.items() if t + (now - last) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= MAX_BUCKETS:  # everyone is busy: forget the oldest half
            for k in sorted(self._buckets, key=lambda k: self._buckets[k][1])[: MAX_BUCKETS // 2]:
                del self._buckets[k]


class RateLimitMiddleware:
    """Pure ASGI: unlimited paths pass straight through (one ``startswith`` per request)."""

    def __init__(self, app: ASGIApp, per_minute: float, burst: int) -> None:
        self.app = app
        self.buckets = TokenBuckets(per_minute, burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_limited(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.buckets.take(client[0] if client else "unknown")
        if wait == 0.0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        response = error_response(
            scope,
            429,
            "TooManyRequests",
            f"rate limit of {self.buckets.rate * 60:g} requests a minute per client exceeded; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
        await response(scope, receive, send)
