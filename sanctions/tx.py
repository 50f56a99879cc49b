"""What every workflow change shares: the clock, actors, transitions, idempotency keys, outbox and audit.

A use case (Marble's shape) is one call of :func:`use_case`: it takes the clock, records the
actor, opens the unit of work (idempotent by key, :func:`run`) and hands ``work`` a
:class:`Change`. ``work`` reads as load, check, change, record: it loads its rows, moves a status
through its lifecycle's table with :meth:`Change.step`, changes what else it changes, and records
case events (:func:`case_event`), outbox messages and audit entries through the Change. The helper
flushes and calls :meth:`Change.finish` last: the audit entries are appended at the very end so the
chain-head lock is held for the shortest time and always taken after the rows the change touched
(no lock-order cycles between writers).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar, cast

from pydantic import BaseModel
from sqlalchemy import Table, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from core.db import unit_of_work
from core.errors import Conflict, InvalidTransition
from sanctions import audit, bulk
from sanctions.models import ActorRow, IdempotencyKey, OutboxMessage
from sanctions.workflow import Actor, Lifecycle, require_second_person

M = TypeVar("M", bound=BaseModel)
S = TypeVar("S", bound=StrEnum)
A = TypeVar("A", bound=StrEnum)


class HasStatus(Protocol):
    status: str


def utcnow() -> datetime:
    """Naive UTC now, microseconds kept (the store's time convention)."""
    return datetime.now(UTC).replace(tzinfo=None)


#: ``session.info`` key: actor ids registered in the current transaction (bound by ``Change.finish``)
NEW_ACTORS = "dajia_new_actor_rows"


def ensure_actor(session: Session, actor: Actor, now: datetime) -> None:
    """Record the actor on first sight; an id keeps its role for ever (a different role is refused).

    ``INSERT … ON CONFLICT DO NOTHING`` so concurrent first appearances of one actor never collide.
    """
    known: dict[str, str] = session.info.setdefault("dajia_known_actors", {})
    if known.get(actor.actor_id) == actor.role.value:
        return
    row = session.get(ActorRow, actor.actor_id)
    if row is None:
        values = {"actor_id": actor.actor_id, "role": actor.role.value, "simulated": actor.simulated, "created_at": now}
        dialect = session.get_bind().dialect.name
        stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(ActorRow).values(**values)
        res = session.execute(stmt.on_conflict_do_nothing(index_elements=["actor_id"]))
        if res.rowcount:  # type: ignore[attr-defined]  # registered here: the change's audit entry binds the row
            session.info.setdefault(NEW_ACTORS, []).append(actor.actor_id)
        row = session.get(ActorRow, actor.actor_id, populate_existing=True)
    if row is not None and row.role != actor.role.value:
        raise Conflict(f"actor '{actor.actor_id}' is registered as {row.role}, not {actor.role.value}")
    # remembered only once the row is committed; a rolled-back registration is checked again
    pending: dict[str, str] = session.info.setdefault("dajia_pending_actors", {})
    pending[actor.actor_id] = actor.role.value


def person_of(session: Session, actor_id: str) -> str:
    """The person who acts under ``actor_id`` (one person may hold a reviewer and an admin id);
    an actor registered without a person is a person of its own."""
    person = session.execute(select(ActorRow.person_id).where(ActorRow.actor_id == actor_id)).scalar_one_or_none()
    return person or actor_id


def four_eyes(session: Session, actor: Actor, first: Iterable[str | None], *, what: str, first_did: str) -> None:
    """Forbidden unless ``actor`` is another person than every actor id in ``first`` (four eyes,
    ``workflow.require_second_person``); ``None`` entries (nobody) are ignored."""
    people = {person_of(session, a) for a in first if a}
    require_second_person(actor, person_of(session, actor.actor_id), people, what=what, first_did=first_did)


@dataclass
class Change:
    """The side records of one transaction: outbox messages and audit entries."""

    session: Session
    actor: Actor
    now: datetime
    _audit: list[audit.AuditRecord] = field(default_factory=list)
    _outbox: list[dict[str, Any]] = field(default_factory=list)
    _ordered: list[tuple[Table, dict[str, Any]]] = field(default_factory=list)

    def audit(
        self,
        action: str,
        entity_type: str,
        entity_id: object,
        payload: Mapping[str, Any],
        actor: Actor | None = None,
    ) -> None:
        who = actor or self.actor
        self._audit.append(audit.AuditRecord(who, action, entity_type, str(entity_id), payload, self.now))

    def step(
        self, lifecycle: Lifecycle[S, A], thing: HasStatus, action: A, *, what: str, actor: Actor | None = None
    ) -> tuple[str, str]:
        """Move ``thing`` by ``action`` through ``lifecycle``'s table (checked); returns (old, new) status."""
        new = lifecycle.check(thing.status, action, actor or self.actor, what=what)
        old = thing.status
        thing.status = new.value
        return old, new.value

    def outbox(self, *, dedupe_key: str, kind: str, recipient: str, topic: str, payload: Mapping[str, Any]) -> None:
        self._outbox.append(
            {
                "dedupe_key": dedupe_key,
                "kind": kind,
                "recipient": recipient,
                "topic": topic,
                "payload": dict(payload),
                "created_at": self.now,
                "status": "pending",
                "attempts": 0,
            }
        )

    def send_outbox(self) -> None:
        """Write the outbox rows recorded so far now (before rows the caller inserts itself)."""
        if self._outbox:
            bulk.insert_rows(self.session, cast(Table, OutboxMessage.__table__), self._outbox)
            self._outbox = []

    def absorb(self, other: Change) -> None:
        """Take over ``other``'s records (made by another actor in this same transaction), written
        after this change's own by :meth:`finish`."""
        self._outbox.extend(other._outbox)
        self._audit.extend(other._audit)
        self._ordered.extend(other._ordered)
        other._outbox, other._audit, other._ordered = [], [], []

    def in_commit_order(self, table: Table, row: Mapping[str, Any]) -> None:
        """A row of a feed read in commit order (the storefront changes): inserted after the audit
        append, under the chain-head lock, so its autoincrement key follows the commit order."""
        self._ordered.append((table, dict(row)))

    def finish(self) -> None:
        """Write the outbox rows, then append the audit entries (taking the chain-head lock last),
        each bound to the digests of the rows it speaks for (``audit.bind_rows``), then the rows whose key
        must follow the commit order (:meth:`in_commit_order`)."""
        self.send_outbox()
        if self._ordered and not self._audit:
            raise AssertionError("a feed row needs an audit entry in the same change (it orders the feed)")
        self.session.flush()
        extra = {"actors": self.session.info.pop(NEW_ACTORS, [])}
        audit.append(self.session, audit.bind_rows(self.session, self._audit, extra))
        self._audit = []
        by_table: dict[str, tuple[Table, list[dict[str, Any]]]] = {}
        for table, row in self._ordered:
            by_table.setdefault(table.name, (table, []))[1].append(row)
        for table, rows in by_table.values():
            bulk.insert_rows(self.session, table, rows)
        self._ordered = []


def case_event(
    case_id: int,
    actor: Actor,
    at: datetime,
    action: str,
    old: str | None,
    new: str,
    reason: str,
    *,
    evidence: list[dict[str, Any]],
    score: float | None = None,
    threshold: float | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
) -> dict[str, Any]:
    """One ``case_events`` row: who moved the case from ``old`` to ``new`` and why, with the score,
    threshold and model version behind it (the one builder for cases and routing)."""
    return {
        "case_id": case_id,
        "at": at,
        "actor_id": actor.actor_id,
        "role": actor.role.value,
        "simulated": actor.simulated,
        "action": action,
        "old_status": old,
        "new_status": new,
        "reason": reason,
        "score": score,
        "threshold": threshold,
        "model_name": model_name,
        "model_version": model_version,
        "evidence": evidence,
        "via": actor.via,
    }


def _remember_actors(session: Session) -> None:
    pending: dict[str, str] = session.info.pop("dajia_pending_actors", {})
    session.info.setdefault("dajia_known_actors", {}).update(pending)


def request_hash(operation: str, request: Mapping[str, Any]) -> str:
    return hashlib.sha256((operation + "\n" + audit.canonical(dict(request))).encode()).hexdigest()


def _prior(session: Session, key: str, operation: str, digest: str) -> dict[str, Any] | None:
    row = session.execute(select(IdempotencyKey).where(IdempotencyKey.key == key)).scalar_one_or_none()
    if row is None:
        return None
    if row.operation != operation or row.request_hash != digest:
        raise Conflict(f"idempotency key '{key}' was already used for a different request ({row.operation})")
    return dict(row.result)


def run(
    session: Session,
    *,
    operation: str,
    request: Mapping[str, Any],
    idempotency_key: str | None,
    result_type: type[M],
    work: Callable[[], M],
) -> M:
    """Run ``work`` in one unit of work, made idempotent by ``idempotency_key`` when given.

    A retry with the same key and the same request returns the first result without doing
    anything; the same key with a different request is a Conflict. Two concurrent first
    attempts with one key: the loser's transaction rolls back and it returns the winner's result.
    """
    digest = request_hash(operation, request)
    try:
        with unit_of_work(session):
            if idempotency_key:
                prior = _prior(session, idempotency_key, operation, digest)
                if prior is not None:
                    return result_type.model_validate(prior)
            result = work()
            if idempotency_key:
                session.execute(
                    insert(IdempotencyKey).values(
                        key=idempotency_key,
                        operation=operation,
                        request_hash=digest,
                        result=result.model_dump(mode="json"),
                        created_at=utcnow(),
                    )
                )
            session.flush()
        _remember_actors(session)
        return result
    except (IntegrityError, StaleDataError, Conflict, InvalidTransition) as exc:
        session.info.pop("dajia_pending_actors", None)
        # a concurrent attempt with the same key may have won meanwhile: then this is its retry
        if idempotency_key:
            with unit_of_work(session):
                prior = _prior(session, idempotency_key, operation, digest)
            if prior is not None:
                return result_type.model_validate(prior)
        if isinstance(exc, IntegrityError):
            raise Conflict(f"{operation}: a concurrent change won ({type(exc.orig).__name__})") from exc
        if isinstance(exc, StaleDataError):
            raise Conflict(f"{operation}: someone else changed it first; reload and decide again") from exc
        raise


def use_case(
    session: Session,
    actor: Actor,
    operation: str,
    request: Mapping[str, Any],
    result_type: type[M],
    work: Callable[[Change], M],
    *,
    key: str | None = None,
    now: datetime | None = None,
) -> M:
    """One use case: ``work(change)`` in one unit of work (:func:`run`, idempotent by ``key`` for
    ``operation`` and ``request``) by ``actor`` at ``now`` (default: the clock), the actor recorded
    first, the change flushed and its outbox and audit written last; returns ``work``'s
    ``result_type`` (a retry with the same key gets the first result back)."""
    when = now or utcnow()

    def body() -> M:
        ensure_actor(session, actor, when)
        ch = Change(session, actor, when)
        result = work(ch)
        session.flush()
        ch.finish()
        return result

    return run(
        session,
        operation=operation,
        request=request,
        idempotency_key=key,
        result_type=result_type,
        work=body,
    )
