"""Working the queue as a team: claims, next case, notes, attachments, tags, snoozes (issue 21).

* **Claim.** One row per case in ``console_claims`` (the case id is the primary key). Claiming is one
  ``INSERT … ON CONFLICT (case_id) DO UPDATE … WHERE <the claim lapsed or is mine> RETURNING`` statement:
  the database decides atomically who holds a case (SQLite and PostgreSQL alike), so two people never
  hold one case; the loser gets :class:`~core.errors.Conflict` naming the holder. A claim lapses after
  :data:`CLAIM_MINUTES`; the holder's next claim of it renews it. An admin may assign a case to a
  person (the same statement, the assignee as holder, taking it from anyone).
* **Next case.** The first waiting case in the queue's order (score, then id) that nobody else holds
  and that is not snoozed, claimed for the person; the person's own claimed cases come first.
* **Notes, attachments, tags, snoozes** are console rows; each change is written in one transaction
  with its entry in the sanctions hash-chained audit log (``case.note``, ``case.attachment``,
  ``case.tag``, ``case.untag``, ``case.snooze``, ``case.claim``, ``case.release``, ``case.assign``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, cast

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from core.db import unit_of_work
from core.errors import Conflict, DajiaError, NotFound
from sanctions import tx
from sanctions.attachments import ATTACHMENT_TYPES as ATTACHMENT_TYPES
from sanctions.attachments import MAX_ATTACHMENT as MAX_ATTACHMENT
from sanctions.attachments import check
from sanctions.models import Case
from sanctions.workflow import Actor, Role
from serving.console.db import attachments, claims, notes, snoozes, tags
from serving.console.queue import WAITING, ids_in_queue_order

CLAIM_MINUTES = 30
MAX_NOTE = 4000
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class Done(BaseModel):
    """What a team change returns (also the idempotent result stored for a retried form)."""

    case_id: int
    action: str
    detail: str = ""


@dataclass(frozen=True)
class ClaimRow:
    case_id: int
    actor_id: str
    claimed_at: datetime
    expires_at: datetime
    assigned_by: str | None


def _upsert(session: Session) -> Callable[..., Any]:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _case(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    return case


def holder(conn: Connection | Session, case_id: int, now: datetime) -> ClaimRow | None:
    """The live claim on ``case_id`` (None when nobody holds it or the claim lapsed)."""
    c = claims.c
    row = conn.execute(sa.select(claims).where(c.case_id == case_id, c.expires_at > now)).first()
    return None if row is None else ClaimRow(**row._mapping)


def holders(conn: Connection, case_ids: list[int], now: datetime) -> dict[int, str]:
    if not case_ids:
        return {}
    c = claims.c
    rows = conn.execute(sa.select(c.case_id, c.actor_id).where(c.case_id.in_(case_ids), c.expires_at > now))
    return {int(r.case_id): str(r.actor_id) for r in rows}


def _take(session: Session, case_id: int, holder_id: str, now: datetime, by: str | None, force: bool) -> bool:
    """The one atomic statement: insert the claim, or take over a lapsed (or own, or ``force``) one."""
    c = claims.c
    values = {
        "case_id": case_id,
        "actor_id": holder_id,
        "claimed_at": now,
        "expires_at": now + timedelta(minutes=CLAIM_MINUTES),
        "assigned_by": by,
    }
    stmt = _upsert(session)(claims).values(**values)
    takeable = sa.true() if force else sa.or_(c.expires_at <= now, c.actor_id == holder_id)
    stmt = stmt.on_conflict_do_update(
        index_elements=["case_id"],
        set_={k: stmt.excluded[k] for k in ("actor_id", "claimed_at", "expires_at", "assigned_by")},
        where=takeable,
    ).returning(c.actor_id)
    return session.execute(stmt).first() is not None


def claim(
    session: Session, actor: Actor, case_id: int, *, now: datetime | None = None, assignee: str | None = None
) -> Done:
    """Claim ``case_id`` for ``actor`` (or, for an admin, assign it to ``assignee``); Conflict if someone
    else holds it (an admin's assignment takes it from them)."""
    when = now or tx.utcnow()
    if assignee is not None and actor.role is not Role.ADMIN:
        raise Conflict("only an admin assigns cases to someone else") from None
    who = assignee or actor.actor_id

    def work(ch: tx.Change) -> Done:
        case = _case(session, case_id)
        if case.status not in WAITING:
            raise Conflict(f"case {case_id} is {case.status}: nothing waits for a reviewer")
        if not _take(session, case_id, who, when, actor.actor_id if assignee else None, force=assignee is not None):
            current = holder(session, case_id, when)
            name = current.actor_id if current else "someone else"
            until = current.expires_at.strftime("%H:%M") if current else "?"
            raise Conflict(f"case {case_id} is claimed by {name} until {until} UTC")
        action = "case.assign" if assignee else "case.claim"
        ch.audit(action, "case", case_id, {"holder": who, "minutes": CLAIM_MINUTES})
        return Done(case_id=case_id, action=action, detail=who)

    return tx.use_case(session, actor, "console.claim", {"case_id": case_id, "holder": who}, Done, work, now=when)


def release(session: Session, actor: Actor, case_id: int, *, now: datetime | None = None, audit: bool = True) -> bool:
    """Give up ``actor``'s claim on ``case_id`` (an admin may release anyone's); False if not held."""
    when = now or tx.utcnow()
    c = claims.c
    if not audit:  # after a decision (itself audited): one plain delete of the decider's own claim
        with unit_of_work(session):
            mine = sa.delete(claims).where(c.case_id == case_id, c.actor_id == actor.actor_id)
            return bool(session.connection().execute(mine).rowcount)

    def work(ch: tx.Change) -> Done:
        cond = c.case_id == case_id
        if actor.role is not Role.ADMIN:
            cond = sa.and_(cond, c.actor_id == actor.actor_id)
        gone = session.connection().execute(sa.delete(claims).where(cond)).rowcount
        if gone:
            ch.audit("case.release", "case", case_id, {})
        return Done(case_id=case_id, action="case.release", detail=str(gone))

    done = tx.use_case(session, actor, "console.release", {"case_id": case_id}, Done, work, now=when)
    return done.detail != "0"


def next_case(
    session: Session,
    actor: Actor,
    where: list[Any] | None = None,
    *,
    now: datetime | None = None,
    tries: int = 8,
    skip: int | None = None,
) -> int | None:
    """Claim and return the next waiting case for ``actor`` in queue order (score, then id), skipping
    cases others hold and snoozed ones; the person's own claims come first. None when nothing is left.

    ``where``: further conditions on ``cases`` (and ``shops``) — the reviewer's queue filters; ``skip``:
    the case the person is leaving (they keep their claim on it, but want another one)."""
    from sanctions.models import Shop

    when = now or tx.utcnow()
    c, s, k, z = Case.__table__.c, Shop.__table__.c, claims.c, snoozes.c
    held_by_other = (
        sa.select(k.case_id).where(k.case_id == c.case_id, k.expires_at > when, k.actor_id != actor.actor_id).exists()
    )
    snoozed = sa.select(z.case_id).where(z.case_id == c.case_id, z.until > when).exists()
    skipped: set[int] = set() if skip is None else {skip}
    joined = Case.__table__.join(Shop.__table__, s.shop_id == c.shop_id)

    def waiting(status: str, only: list[int] | None = None) -> Any:
        """One status's waiting cases (``only``: among these ids) for ``ids_in_queue_order``."""
        more = [] if only is None else [c.case_id.in_(only)]
        return (
            sa.select(c.case_id, c.score)
            .select_from(joined)
            .where(c.status == status, ~held_by_other, ~snoozed, *(where or []), *more)
        )

    for _ in range(tries):
        with session.begin():
            own = list(
                session.execute(sa.select(k.case_id).where(k.actor_id == actor.actor_id, k.expires_at > when)).scalars()
            )
            ids = ids_in_queue_order(session.execute, partial(waiting, only=own), WAITING, len(own))
            ids += ids_in_queue_order(session.execute, waiting, WAITING, len(skipped) + 5)
        ids = [i for i in dict.fromkeys(ids) if i not in skipped]
        if not ids:
            return None
        for cid in ids:
            try:
                claim(session, actor, cid, now=when)
                return cid
            except Conflict:
                skipped.add(cid)  # someone was faster: the next one
    return None


# --------------------------------------------------------------------------- notes, attachments, tags, snoozes


def add_note(
    session: Session, actor: Actor, case_id: int, body: str, *, key: str | None = None, now: datetime | None = None
) -> Done:
    """Append a note to the case (never edited or deleted), audited as ``case.note`` with its text."""
    text = body.strip()
    if not text:
        raise DajiaError("note: write something (the note is empty)")
    if len(text) > MAX_NOTE:
        raise DajiaError(f"note: at most {MAX_NOTE} characters, this one has {len(text)}")

    def work(ch: tx.Change) -> Done:
        _case(session, case_id)
        nid = session.execute(
            notes.insert()
            .values(case_id=case_id, actor_id=actor.actor_id, created_at=ch.now, body=text)
            .returning(notes.c.note_id)
        ).scalar_one()
        ch.audit("case.note", "case", case_id, {"note_id": int(nid), "body": text})
        return Done(case_id=case_id, action="case.note", detail=str(nid))

    request = {"case_id": case_id, "body": text, "actor": actor.actor_id}
    return tx.use_case(session, actor, "console.note", request, Done, work, key=key, now=now)


def add_attachment(
    session: Session,
    actor: Actor,
    case_id: int,
    filename: str,
    content_type: str,
    data: bytes,
    *,
    key: str | None = None,
    now: datetime | None = None,
) -> Done:
    """Attach a file: at most :data:`MAX_ATTACHMENT` bytes, of a type in :data:`ATTACHMENT_TYPES` whose
    content matches it; stored with its sha256, audited as ``case.attachment`` (name, type, size, hash)."""
    checked = check(filename, content_type, data)
    ctype, digest, name = checked.content_type, checked.sha256, checked.filename

    def work(ch: tx.Change) -> Done:
        _case(session, case_id)
        aid = session.execute(
            attachments.insert()
            .values(
                case_id=case_id,
                actor_id=actor.actor_id,
                created_at=ch.now,
                filename=name,
                content_type=ctype,
                size=len(data),
                sha256=digest,
                data=data,
            )
            .returning(attachments.c.attachment_id)
        ).scalar_one()
        payload = {"attachment_id": int(aid), "filename": name, "content_type": ctype, "size": len(data)}
        ch.audit("case.attachment", "case", case_id, {**payload, "sha256": digest})
        return Done(case_id=case_id, action="case.attachment", detail=str(aid))

    request = {"case_id": case_id, "sha256": digest, "filename": name, "actor": actor.actor_id}
    return tx.use_case(session, actor, "console.attachment", request, Done, work, key=key, now=now)


def set_tag(
    session: Session, actor: Actor, case_id: int, tag: str, *, remove: bool = False, now: datetime | None = None
) -> Done:
    """Put ``tag`` on the case (or take it off); doing it twice changes nothing the second time."""
    t = tag.strip().lower()
    if not TAG_RE.match(t):
        raise DajiaError(f"tag: {tag[:50]!r} must be 1–40 of a–z, 0–9, '-' or '_', starting with a letter or digit")

    def work(ch: tx.Change) -> Done:
        _case(session, case_id)
        k = tags.c
        if remove:
            changed = session.connection().execute(sa.delete(tags).where(k.case_id == case_id, k.tag == t)).rowcount
        else:
            stmt = _upsert(session)(tags).values(case_id=case_id, tag=t, actor_id=actor.actor_id, created_at=ch.now)
            stmt = stmt.on_conflict_do_nothing(index_elements=["case_id", "tag"]).returning(tags.c.case_id)
            changed = len(session.execute(stmt).all())
        action = "case.untag" if remove else "case.tag"
        if changed:
            ch.audit(action, "case", case_id, {"tag": t})
        return Done(case_id=case_id, action=action, detail=t if changed else "")

    request = {"case_id": case_id, "tag": t, "remove": remove}
    return tx.use_case(session, actor, "console.tag", request, Done, work, now=now)


def snooze(
    session: Session, actor: Actor, case_id: int, until: datetime | None, *, now: datetime | None = None
) -> Done:
    """Put the case aside until ``until`` (out of the waiting queue and next case), or wake it (None)."""
    when = now or tx.utcnow()
    if until is not None and until <= when:
        raise DajiaError(f"snooze: the date {until:%Y-%m-%d} is not in the future")

    def work(ch: tx.Change) -> Done:
        _case(session, case_id)
        session.execute(sa.delete(snoozes).where(snoozes.c.case_id == case_id))
        if until is not None:
            session.execute(
                snoozes.insert().values(case_id=case_id, until=until, actor_id=actor.actor_id, created_at=ch.now)
            )
        ch.audit("case.snooze", "case", case_id, {"until": until.isoformat() if until else None})
        return Done(case_id=case_id, action="case.snooze", detail=until.isoformat() if until else "")

    request = {"case_id": case_id, "until": until.isoformat() if until else None}
    return tx.use_case(session, actor, "console.snooze", request, Done, work, now=when)


@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    kind: str  # event | note | attachment
    actor_id: str
    text: str
    attachment_id: int | None = None
    size: int | None = None
    sha256: str | None = None


def case_extras(conn: Connection, case_id: int, now: datetime) -> dict[str, Any]:
    """The console's own rows of one case: notes, attachments, tags, the live claim and snooze."""
    n, a = notes.c, attachments.c
    items = [
        TimelineItem(r.created_at, "note", str(r.actor_id), str(r.body))
        for r in conn.execute(sa.select(n.created_at, n.actor_id, n.body).where(n.case_id == case_id))
    ]
    files = sa.select(a.created_at, a.actor_id, a.filename, a.attachment_id, a.size, a.sha256)
    items += [
        TimelineItem(
            r.created_at, "attachment", str(r.actor_id), str(r.filename), r.attachment_id, r.size, str(r.sha256)
        )
        for r in conn.execute(files.where(a.case_id == case_id))
    ]
    z = conn.execute(sa.select(snoozes.c.until).where(snoozes.c.case_id == case_id, snoozes.c.until > now)).first()
    return {
        "items": items,
        "tags": sorted(str(t) for t in conn.execute(sa.select(tags.c.tag).where(tags.c.case_id == case_id)).scalars()),
        "claim": holder(conn, case_id, now),
        "snoozed_until": None if z is None else z[0],
    }


def attachment(conn: Connection, case_id: int, attachment_id: int) -> tuple[str, bytes]:
    a = attachments.c
    row = conn.execute(
        sa.select(a.filename, a.data).where(a.case_id == case_id, a.attachment_id == attachment_id)
    ).first()
    if row is None:
        raise NotFound(f"case {case_id} has no attachment {attachment_id}")
    return str(row.filename), bytes(row.data)


def people(conn: Connection, everyone: bool = False) -> dict[str, str]:
    """Every person who can sign in to the console, actor id → their name (for holders and assignment);
    ``everyone``: then every other registered person's actor ids too (so past events name who acted)."""
    from sanctions.models import ActorRow, Person
    from serving.db import api_keys

    actors, persons = cast(sa.Table, ActorRow.__table__), cast(sa.Table, Person.__table__)
    k, a, p = api_keys.c, actors.c, persons.c
    rows = conn.execute(
        sa.select(a.actor_id, p.name)
        .select_from(actors)
        .join(api_keys, sa.and_(k.person_id == a.person_id, k.role == a.role))
        .join(persons, p.person_id == a.person_id)
        .where(k.role.in_(("reviewer", "admin")), k.revoked_at.is_(None))
        .distinct()
        .order_by(p.name, a.actor_id)
    )
    out = {str(r.actor_id): str(r.name) for r in rows}
    if not everyone:
        return out
    for aid, name in conn.execute(
        sa.select(a.actor_id, p.name).select_from(actors).join(persons, p.person_id == a.person_id)
    ):
        out.setdefault(str(aid), str(name))
    return out
