"""Humans in the console: sign-in with an API key, a signed session cookie, CSRF tokens, headers.

* **Sign-in.** A reviewer or admin signs in with their API key (``dajia keys create --role reviewer
  --person ID``; issued to a registered person, whose name the console shows and whose actor id for the
  key's role it acts under, naming ``console:<key id>`` as the credential):
  the service already stores keys only as sha256 digests, gives each one role and can revoke them,
  so the console adds no second password store. Scorer keys cannot sign in.
* **Session.** Server-side: a row of ``console_sessions`` (the key id, its role at sign-in, the CSRF
  token, the expiry) found by the sha256 of a random token; the cookie carries that token, signed with
  ``itsdangerous`` (secret in ``console_settings``), HttpOnly, SameSite=Strict, path ``/console``,
  Secure over https, valid for 8 hours. Every request reads the row joined with its key, uncached:
  signing out deletes the row, and a revoked key or one whose role changed matches no more, so each of
  them ends the session at once (in every worker), even for a copied cookie.
* **CSRF.** Every session has a random token; every POST form carries it and it is compared in
  constant time. The sign-in form has its own token in a short-lived signed cookie (double submit).
  A POST whose ``Origin`` names another host is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.responses import Response

from core.db import writing
from sanctions.models import ActorRow, Person
from serving.console.db import sessions
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
    """A signed-in person: their name, the API key they signed in with, its role, the actor id they act
    under in that role (the same the HTTP API uses for the key) and their session's CSRF token."""

    key_id: str
    name: str
    role: str
    csrf: str
    person_actor_id: str | None = None

    @property
    def actor_id(self) -> str:
        return self.person_actor_id or f"api-key:{self.key_id}"

    @property
    def via(self) -> str:
        """The credential events and audit entries name: a console session of this key."""
        return f"console:{self.key_id}"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _session_id(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Sessions:
    """Issues, checks and ends server-side sessions; signs and checks the sign-in form's cookie."""

    def __init__(self, secret: str, engine: Engine) -> None:
        self._session = URLSafeTimedSerializer(secret, salt="dajia-console-session")
        self._login = URLSafeTimedSerializer(secret, salt="dajia-console-login")
        self.engine = engine

    # -- sessions -----------------------------------------------------------------------------------
    def issue(self, key_id: str, name: str, role: str) -> tuple[str, User]:
        """A new session for the key: (cookie value, user). Expired sessions are swept on the way."""
        user = User(key_id=key_id, name=name, role=role, csrf=secrets.token_urlsafe(32))
        token = secrets.token_urlsafe(32)
        now = _now()
        with writing(self.engine).begin() as conn:
            conn.execute(sessions.delete().where(sessions.c.expires_at < now))
            conn.execute(
                sessions.insert().values(
                    session_id=_session_id(token),
                    key_id=key_id,
                    role=role,
                    csrf=user.csrf,
                    created_at=now,
                    expires_at=now + timedelta(seconds=SESSION_SECONDS),
                )
            )
        return self._session.dumps({"s": token}), user

    def _token(self, request: Request) -> str | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data: Any = self._session.loads(raw, max_age=SESSION_SECONDS)
        except BadSignature:
            return None
        token = data.get("s") if isinstance(data, dict) else None
        return token if isinstance(token, str) and 0 < len(token) <= 100 else None

    def user(self, request: Request) -> User | None:
        """The signed-in user, or None (no cookie, bad signature, signed out, expired, key revoked or
        its role changed)."""
        token = self._token(request)
        if token is None:
            return None
        actors, people = cast(sa.Table, ActorRow.__table__), cast(sa.Table, Person.__table__)
        query = (
            sa.select(
                sessions.c.key_id,
                sessions.c.csrf,
                sa.func.coalesce(people.c.name, api_keys.c.name).label("name"),
                api_keys.c.role,
                actors.c.actor_id,
            )
            .join(api_keys, api_keys.c.key_id == sessions.c.key_id)
            .outerjoin(people, people.c.person_id == api_keys.c.person_id)
            .outerjoin(actors, sa.and_(actors.c.person_id == api_keys.c.person_id, actors.c.role == api_keys.c.role))
            .order_by(actors.c.actor_id)
            .where(
                sessions.c.session_id == _session_id(token),
                sessions.c.expires_at > _now(),
                api_keys.c.revoked_at.is_(None),
                api_keys.c.role == sessions.c.role,
                api_keys.c.role.in_(ROLES),
            )
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return User(
            key_id=str(row.key_id),
            name=str(row.name),
            role=str(row.role),
            csrf=str(row.csrf),
            person_actor_id=None if row.actor_id is None else str(row.actor_id),
        )

    def end(self, request: Request) -> None:
        """Sign out: the session's row is deleted, so its cookie (and any copy of it) is dead."""
        token = self._token(request)
        if token is not None:
            with writing(self.engine).begin() as conn:
                conn.execute(sessions.delete().where(sessions.c.session_id == _session_id(token)))

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
