"""Humans in the console: sign-in with an API key, a signed session cookie, CSRF tokens, headers.

* **Sign-in.** A reviewer or admin signs in with their API key (``dajia keys create --role reviewer``):
  the service already stores keys only as sha256 digests, gives each one role and can revoke them,
  so the console adds no second password store. Scorer keys cannot sign in.
* **Session.** A cookie signed with ``itsdangerous`` (secret in ``console_settings``), HttpOnly,
  SameSite=Strict, path ``/console``, Secure over https, valid for 8 hours. It carries the key id,
  never the secret; every request checks the key is still active (a revoked key ends its sessions
  within the key cache time).
* **CSRF.** Every session has a random token; every POST form carries it and it is compared in
  constant time. The sign-in form has its own token in a short-lived signed cookie (double submit).
  A POST whose ``Origin`` names another host is refused too.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.responses import Response

from serving.db import api_keys

SESSION_COOKIE = "dajia_console"
LOGIN_COOKIE = "dajia_console_login"
SESSION_SECONDS = 8 * 3600
LOGIN_SECONDS = 1800
COOKIE_PATH = "/console"
ROLES = ("reviewer", "admin")

#: applied to every console response: nothing from anywhere but this origin, never framed
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class User:
    """A signed-in human: the API key they signed in with, its role and their session's CSRF token."""

    key_id: str
    name: str
    role: str
    csrf: str

    @property
    def actor_id(self) -> str:
        # the same actor id the HTTP API uses for this key, so a person is one actor everywhere
        return f"api-key:{self.key_id}"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Sessions:
    """Signs and checks session and sign-in cookies; caches key status for a few seconds."""

    def __init__(self, secret: str, engine: Engine, cache_seconds: float = 5.0) -> None:
        self._session = URLSafeTimedSerializer(secret, salt="dajia-console-session")
        self._login = URLSafeTimedSerializer(secret, salt="dajia-console-login")
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._keys: dict[str, tuple[float, tuple[str, str] | None]] = {}
        self._lock = threading.Lock()

    # -- sessions -----------------------------------------------------------------------------------
    def issue(self, key_id: str, name: str, role: str) -> tuple[str, User]:
        user = User(key_id=key_id, name=name, role=role, csrf=secrets.token_urlsafe(32))
        token = self._session.dumps({"k": key_id, "c": user.csrf})
        return token, user

    def user(self, request: Request) -> User | None:
        """The signed-in user, or None (no cookie, bad signature, expired, key revoked or demoted)."""
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data: Any = self._session.loads(raw, max_age=SESSION_SECONDS)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("k"), str) or not isinstance(data.get("c"), str):
            return None
        key = self._key(data["k"])
        if key is None or key[1] not in ROLES:
            return None
        return User(key_id=data["k"], name=key[0], role=key[1], csrf=data["c"])

    def _key(self, key_id: str) -> tuple[str, str] | None:
        now = time.monotonic()
        hit = self._keys.get(key_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(api_keys.c.name, api_keys.c.role, api_keys.c.revoked_at).where(api_keys.c.key_id == key_id)
            ).first()
        value = (str(row.name), str(row.role)) if row is not None and row.revoked_at is None else None
        with self._lock:
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[key_id] = (now + self.cache_seconds, value)
        return value

    # -- the sign-in form's own CSRF token -----------------------------------------------------------
    def login_token(self) -> tuple[str, str]:
        """(form token, signed cookie value) for a sign-in form."""
        token = secrets.token_urlsafe(32)
        return token, self._login.dumps(token)

    def check_login_token(self, request: Request, form_token: str) -> bool:
        raw = request.cookies.get(LOGIN_COOKIE)
        if not raw or not form_token:
            return False
        try:
            expected = self._login.loads(raw, max_age=LOGIN_SECONDS)
        except BadSignature:
            return False
        return isinstance(expected, str) and hmac.compare_digest(expected, form_token)


def csrf_ok(user: User, form_token: str | None) -> bool:
    return bool(form_token) and hmac.compare_digest(user.csrf, str(form_token))


def same_origin(request: Request) -> bool:
    """False when the browser says the POST came from another origin (the Origin header)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin != "null"
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="strict")


_R = TypeVar("_R", bound=Response)


def apply_headers(response: _R, extra: Mapping[str, str] | None = None) -> _R:
    """The console's security headers on ``response``, then ``extra`` (which may override them)."""
    for k, v in {**SECURITY_HEADERS, **(extra or {})}.items():
        response.headers[k] = v
    return response
