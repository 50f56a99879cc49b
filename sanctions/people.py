"""People: reviewers and admins with names, and the actor ids they act under.

A person (``people``) has an id and a name; each role they act in is an actor id pointing at them
(``actors.person_id``): an actor id keeps one role for ever, so a person who reviews and administers
holds two ids (``alice`` and ``alice:admin`` by default). The four-eyes rules compare people, not ids
(``tx.person_of``): the reviewer ``alice`` may not decide the appeal of a case ``alice:admin`` closed.
Registering is an explicit act by an admin (or the system), audited, and bound into the chain (the
person's row and the actor's row).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidTransition
from sanctions import tx
from sanctions.models import ActorRow, Person
from sanctions.workflow import Actor, Role, require_role

#: the roles a person (not a seller or buyer of the marketplace) takes
STAFF_ROLES = (Role.REVIEWER, Role.ADMIN)


class PersonView(BaseModel):
    person_id: str
    name: str
    actor_ids: dict[str, str]


def register(
    session: Session,
    registrar: Actor,
    *,
    person_id: str,
    name: str,
    role: Role | str,
    actor_id: str | None = None,
    now: datetime | None = None,
) -> PersonView:
    """Register ``person_id`` (named ``name``) acting as ``role`` under ``actor_id`` (default: the
    person id for their first role, ``<person>:<role>`` for another). Refused for an actor id that
    already exists for someone else or with another role."""
    require_role(registrar, Role.ADMIN, Role.SYSTEM, what="register people")
    r = Role(role)
    if r not in STAFF_ROLES:
        raise InvalidTransition(f"people are reviewers or admins, not {r.value}")
    if not person_id.strip() or not name.strip():
        raise InvalidTransition("a person needs an id and a name")

    def work(ch: tx.Change) -> PersonView:
        person = session.get(Person, person_id)
        if person is None:
            person = Person(person_id=person_id, name=name, created_at=ch.now, created_by=registrar.actor_id)
            session.add(person)
        elif person.name != name:
            raise Conflict(f"person '{person_id}' is registered as {person.name!r}, not {name!r}")
        ids = _actor_ids(session, person_id)
        if actor_id:
            aid = actor_id
        elif r.value in ids:
            aid = ids[r.value]
        elif not ids and session.get(ActorRow, person_id) is None:
            aid = person_id
        else:
            aid = f"{person_id}:{r.value}"
        row = session.get(ActorRow, aid)
        if row is None:
            session.add(ActorRow(actor_id=aid, role=r.value, simulated=False, created_at=ch.now, person_id=person_id))
        elif row.person_id != person_id or row.role != r.value:
            raise Conflict(f"actor '{aid}' is already registered ({row.role}, person {row.person_id or 'none'})")
        session.flush()
        ch.audit("person.register", "person", person_id, {"name": name, "role": r.value, "actor_id": aid})
        ch.audit("actor.register", "actor", aid, {"person_id": person_id, "role": r.value})
        return PersonView(person_id=person_id, name=name, actor_ids=_actor_ids(session, person_id))

    request = {"person_id": person_id, "name": name, "role": r.value, "actor_id": actor_id}
    return tx.use_case(session, registrar, "person.register", request, PersonView, work, now=now)


def _actor_ids(session: Session, person_id: str) -> dict[str, str]:
    rows = session.execute(select(ActorRow.role, ActorRow.actor_id).where(ActorRow.person_id == person_id))
    return {role: aid for role, aid in rows}


def list_people(session: Session) -> list[PersonView]:
    people = session.execute(select(Person).order_by(Person.person_id)).scalars().all()
    return [PersonView(person_id=p.person_id, name=p.name, actor_ids=_actor_ids(session, p.person_id)) for p in people]


def known(session: Session, actor_id: str) -> ActorRow | None:
    """The registered actor ``actor_id``, or None."""
    return session.get(ActorRow, actor_id)
