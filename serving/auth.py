"""API keys: random secrets stored only as sha256 digests, each carrying one role.

A secret looks like ``dajia_<key_id>_<random>``; the service hashes what the caller sends and looks
the digest up. Authenticated keys are cached in memory for a few seconds so the hot path does not
query the database on every request (a revocation takes effect within that time).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.db import writing
from core.errors import DajiaError, NotFound
from serving.db import api_keys


class Role(StrEnum):
    scorer = "scorer"
    reviewer = "reviewer"
    admin = "admin"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _row_to_key(row: sa.Row[Any]) -> ApiKey:
    return ApiKey(
        key_id=row.key_id, name=row.name, role=Role(row.role), created_at=row.created_at, revoked_at=row.revoked_at
    )


class ApiKeyStore:
    """Creates, revokes, lists and checks API keys in the service's database."""

    def __init__(self, engine: Engine, cache_seconds: float = 5.0) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()

    def create(self, role: str, name: str) -> tuple[ApiKey, str]:
        """A new key and its secret; the secret is returned once and never stored."""
        try:
            parsed = Role(role)
        except ValueError:
            raise DajiaError(f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}") from None
        name = name.strip()
        if not name or len(name) > 200:
            raise DajiaError("the key name must be 1 to 200 characters")
        key_id = secrets.token_hex(8)
        secret = f"dajia_{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(key_id=key_id, name=name, role=parsed, created_at=_now())
        with self.engine.begin() as conn:
            conn.execute(
                api_keys.insert().values(
                    key_id=key.key_id,
                    name=key.name,
                    role=key.role.value,
                    secret_sha256=_digest(secret),
                    created_at=key.created_at,
                )
            )
        return key, secret

    def revoke(self, key_id: str) -> ApiKey:
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
            if row is None:
                raise NotFound(f"no API key with id {key_id!r}")
            if row.revoked_at is None:
                conn.execute(api_keys.update().where(api_keys.c.key_id == key_id).values(revoked_at=_now()))
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).one()
        with self._lock:
            self._cache.clear()
        return _row_to_key(row)

    def set_role(self, key_id: str, role: str) -> ApiKey:
        """Give an active key another role; its console sessions end at once (they carry the old role)."""
        try:
            parsed = Role(role)
        except ValueError:
            raise DajiaError(f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}") from None
        with writing(self.engine).begin() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
            if row is None:
                raise NotFound(f"no API key with id {key_id!r}")
            if row.revoked_at is not None:
                raise DajiaError(f"API key {key_id!r} is revoked")
            conn.execute(api_keys.update().where(api_keys.c.key_id == key_id).values(role=parsed.value))
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).one()
        with self._lock:
            self._cache.clear()
        return _row_to_key(row)

    def list(self) -> list[ApiKey]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at)).all()
        return [_row_to_key(r) for r in rows]

    def authenticate(self, secret: str) -> ApiKey | None:
        """The active key behind ``secret``, or None (unknown, malformed or revoked)."""
        if not secret or len(secret) > 200:
            return None
        digest = _digest(secret)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.secret_sha256 == digest)).first()
        key = _row_to_key(row) if row is not None else None
        if key is not None and not key.active:
            key = None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self.cache_seconds, key)
        return key
