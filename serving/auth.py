"""API keys: random secrets stored only as sha256 digests, each carrying one role, each issued to a person.

A secret looks like ``dajia_<key_id>_<random>``; the service hashes what the caller sends and looks
the digest up. Authenticated keys are cached in memory for a few seconds so the hot path does not
query the database on every request (a revocation takes effect within that time). Issuing, revoking
and re-roling a key are workflow use cases (``sanctions.people``): audited, the key's row bound into
the audit chain. A key acts under its person's actor id (``ApiKey.actor_id``) and names itself as the
credential used (``ApiKey.via``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from core.errors import DajiaError, InvalidTransition
from sanctions import people
from sanctions.models import ActorRow, Person
from sanctions.workflow import SYSTEM, Actor
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
    #: the person the key was issued to, their name, and the actor ids the key acts under
    person_id: str | None = None
    person_name: str | None = None
    actor_id: str | None = None
    scorer_actor_id: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def via(self) -> str:
        """The credential, as events and audit entries name it."""
        return f"key:{self.key_id}"

    def actor(self, role: str | None = None) -> Actor:
        """The workflow actor this key acts as: its person's id for the key's role, or for ``scorer``
        (routing is a scorer action whatever the key's role)."""
        from sanctions.workflow import Role as WRole

        if role == "scorer":
            aid = self.scorer_actor_id or f"{people.LEGACY}{self.key_id}:scorer"
            return Actor(aid, WRole.SCORER, via=self.via)
        return Actor(self.actor_id or f"{people.LEGACY}{self.key_id}", WRole(self.role.value), via=self.via)


def _digest(secret: str) -> str:
    return people.secret_digest(secret)


def _from_view(v: people.KeyView) -> ApiKey:
    return ApiKey(
        key_id=v.key_id,
        name=v.name,
        role=Role(v.role),
        created_at=v.created_at,
        revoked_at=v.revoked_at,
        person_id=v.person_id,
        person_name=v.person_name,
        actor_id=v.actor_id,
    )


def _row_to_key(row: sa.Row[Any], actors: dict[str, str] | None = None, person_name: str | None = None) -> ApiKey:
    actors = actors or {}
    return ApiKey(
        key_id=row.key_id,
        name=row.name,
        role=Role(row.role),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        person_id=row.person_id,
        person_name=person_name,
        actor_id=actors.get(row.role),
        scorer_actor_id=actors.get("scorer"),
    )


def _refuse(exc: InvalidTransition) -> DajiaError:
    return DajiaError(str(exc))


class ApiKeyStore:
    """Issues, revokes, lists and checks API keys in the service's database."""

    def __init__(self, engine: Engine, cache_seconds: float = 5.0) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()

    def create(self, role: str, name: str, person: str | None = None, *, by: Actor = SYSTEM) -> tuple[ApiKey, str]:
        """A new key issued to the registered person ``person`` and its secret; the secret is returned
        once and never stored. ``person`` None: the key is a person of its own (``sanctions.people``)."""
        try:
            Role(role)
        except ValueError:
            raise DajiaError(f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}") from None
        name = name.strip()
        if not name or len(name) > 200:
            raise DajiaError("the key name must be 1 to 200 characters")
        with Session(self.engine, expire_on_commit=False) as session:
            issued = people.issue_key(session, by, role=role, name=name, person_id=person)
        return _from_view(issued), issued.secret

    def revoke(self, key_id: str, *, by: Actor = SYSTEM) -> ApiKey:
        with Session(self.engine, expire_on_commit=False) as session:
            view = people.revoke_key(session, by, key_id)
        with self._lock:
            self._cache.clear()
        return _from_view(view)

    def set_role(self, key_id: str, role: str, *, by: Actor = SYSTEM) -> ApiKey:
        """Give an active key another role; its console sessions end at once (they carry the old role)."""
        try:
            Role(role)
        except ValueError:
            raise DajiaError(f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}") from None
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                view = people.set_key_role(session, by, key_id, role)
        except InvalidTransition as exc:
            raise _refuse(exc) from None
        with self._lock:
            self._cache.clear()
        return _from_view(view)

    def list(self) -> list[ApiKey]:
        with Session(self.engine, expire_on_commit=False) as session:
            return [_from_view(v) for v in people.list_keys(session)]

    def authenticate(self, secret: str) -> ApiKey | None:
        """The active key behind ``secret`` with its person and actor ids, or None (unknown, malformed
        or revoked)."""
        if not secret or len(secret) > 200:
            return None
        digest = _digest(secret)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.secret_sha256 == digest)).first()
            key = None
            if row is not None and row.revoked_at is None:
                actors: dict[str, str] = {}
                name = None
                if row.person_id is not None:
                    a = ActorRow.__table__.c
                    for role, aid in conn.execute(
                        sa.select(a.role, a.actor_id).where(a.person_id == row.person_id).order_by(a.actor_id.desc())
                    ):
                        actors[str(role)] = str(aid)
                    name = conn.scalar(sa.select(Person.name).where(Person.person_id == row.person_id))
                key = _row_to_key(row, actors, name)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self.cache_seconds, key)
        return key
