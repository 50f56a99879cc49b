"""People: reviewers and admins with names, and the actor ids they act under.

A person (``people``) has an id and a name; each role they act in is an actor id pointing at them
(``actors.person_id``): an actor id keeps one role for ever, so a person who reviews and administers
holds two ids (``alice`` and ``alice:admin`` by default). The four-eyes rules compare people, not ids
(``tx.person_of``): the reviewer ``alice`` may not decide the appeal of a case ``alice:admin`` closed.
Registering is an explicit act by an admin (or the system), audited, and bound into the chain (the
person's row and the actor's row).

**Keys belong to people.** Every API key is issued to a registered person (:func:`issue_key`): the key
acts under the person's actor id for the key's role (made, and audited, if the person had none), and
routing by any key acts under the person's scorer id ``<person>:scorer``. Every event and audit entry
names that actor id (hence the person) and the credential used (``Actor.via``: ``key:<key id>``,
``console:<key id>``, ``cli:<os user>``). Issuing, revoking and re-roling a key are audited and bind the
key's row into the chain, so editing or deleting a key row fails ``dajia audit verify``.

**Keys made before people** (no ``person_id``): :func:`adopt_keys` makes each one a person of its own,
the key's existing actor id ``api-key:<key id>`` named by the key's name, so the history it wrote stays
with one person (four eyes included); ``dajia.db.open_store`` runs it after migrating. A key issued
without a person (``person_id=None``, the Python API's default for tests and benchmarks; the CLI and
console always name one) follows the same rule.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidTransition, NotFound
from sanctions import tx
from sanctions.models import ActorRow, ApiKeyRow, Person
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
    simulated: bool = False,
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
            session.add(
                ActorRow(actor_id=aid, role=r.value, simulated=simulated, created_at=ch.now, person_id=person_id)
            )
        elif row.person_id is None and row.role == r.value:
            # an id that acted before people existed (e.g. a CLI ``--actor``): it becomes this person's
            row.person_id = person_id
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


# --------------------------------------------------------------------------- keys belong to people

#: the roles an API key carries
KEY_ROLES = ("scorer", "reviewer", "admin")
#: the person (and actor) id of a key made before people: ``api-key:<key id>``
LEGACY = "api-key:"


class KeyView(BaseModel):
    key_id: str
    name: str
    role: str
    person_id: str | None
    person_name: str | None
    #: the actor id the key acts under for its role
    actor_id: str | None
    created_at: datetime
    revoked_at: datetime | None = None


class IssuedKey(KeyView):
    #: shown once, never stored (only its sha256)
    secret: str


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _role_actor(ch: tx.Change, person_id: str, role: str, preferred: str | None = None) -> str:
    """The person's actor id for ``role``: theirs if they hold one, else ``preferred`` (adopted if it is
    an unowned id of that role) or ``<person>:<role>``, registered here and audited."""
    session = ch.session
    have = session.scalars(
        select(ActorRow.actor_id)
        .where(ActorRow.person_id == person_id, ActorRow.role == role)
        .order_by(ActorRow.actor_id)
    ).first()
    if have is not None:
        return have
    for aid in (preferred, f"{person_id}:{role}"):
        if aid is None:
            continue
        row = session.get(ActorRow, aid)
        if row is None:
            session.add(ActorRow(actor_id=aid, role=role, simulated=False, created_at=ch.now, person_id=person_id))
        elif row.person_id is None and row.role == role:
            row.person_id = person_id
        else:
            continue
        session.flush()
        ch.audit("actor.register", "actor", aid, {"person_id": person_id, "role": role})
        return aid
    raise Conflict(f"person '{person_id}': no free actor id for role {role}")


def _key_role(role: str) -> str:
    if role not in KEY_ROLES:
        raise InvalidTransition(f"unknown role {role!r}; choose one of {', '.join(KEY_ROLES)}")
    return role


def _view(session: Session, key: ApiKeyRow) -> KeyView:
    person = session.get(Person, key.person_id) if key.person_id else None
    actor = None
    if key.person_id:
        actor = session.scalars(
            select(ActorRow.actor_id)
            .where(ActorRow.person_id == key.person_id, ActorRow.role == key.role)
            .order_by(ActorRow.actor_id)
        ).first()
    return KeyView(
        key_id=key.key_id,
        name=key.name,
        role=key.role,
        person_id=key.person_id,
        person_name=person.name if person else None,
        actor_id=actor,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


def _own_person(ch: tx.Change, key: ApiKeyRow) -> str:
    """Make ``key`` a person of its own (``api-key:<key id>``, named by the key's name)."""
    pid = LEGACY + key.key_id
    if ch.session.get(Person, pid) is None:
        ch.session.add(Person(person_id=pid, name=key.name, created_at=ch.now, created_by=ch.actor.actor_id))
        ch.session.flush()
        ch.audit("person.register", "person", pid, {"name": key.name, "role": key.role, "actor_id": pid})
    return pid


def _bind_key(ch: tx.Change, key: ApiKeyRow, person_id: str) -> None:
    """Give ``key`` to ``person_id`` and make sure the person holds the key's role and a scorer id."""
    key.person_id = person_id
    # a key of its own keeps the ids it acted under before people: ``api-key:<id>`` and ``api-key:<id>:scorer``
    legacy = person_id == LEGACY + key.key_id
    if key.role != "scorer":
        _role_actor(ch, person_id, key.role, preferred=person_id if legacy else None)
    _role_actor(ch, person_id, "scorer", preferred=f"{person_id}:scorer")
    ch.session.flush()


def issue_key(
    session: Session,
    by: Actor,
    *,
    role: str,
    name: str,
    person_id: str | None,
    now: datetime | None = None,
) -> IssuedKey:
    """Issue a key of ``role`` named ``name`` to the registered person ``person_id`` (None: the key is a
    person of its own, see the module's docstring). Audited; the key's row is bound into the chain."""
    require_role(by, Role.ADMIN, Role.SYSTEM, what="issue API keys")
    _key_role(role)
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidTransition("the key name must be 1 to 200 characters")
    if person_id is not None and session.get(Person, person_id) is None:
        raise NotFound(f"no person '{person_id}'; register them first (dajia people add --id {person_id} ...)")
    key_id = secrets.token_hex(8)
    secret = f"dajia_{key_id}_{secrets.token_urlsafe(32)}"

    def work(ch: tx.Change) -> IssuedKey:
        key = ApiKeyRow(key_id=key_id, name=name, role=role, secret_sha256=secret_digest(secret), created_at=ch.now)
        session.add(key)
        session.flush()
        _bind_key(ch, key, person_id or _own_person(ch, key))
        view = _view(session, key)
        ch.audit("api_key.issue", "api_key", key_id, {"person_id": key.person_id, "role": role, "name": name})
        return IssuedKey(**view.model_dump(), secret=secret)

    request = {"key_id": key_id, "role": role, "name": name, "person_id": person_id}
    return tx.use_case(session, by, "api_key.issue", request, IssuedKey, work, now=now)


def _load_key(session: Session, key_id: str) -> ApiKeyRow:
    key = session.get(ApiKeyRow, key_id)
    if key is None:
        raise NotFound(f"no API key with id {key_id!r}")
    return key


def revoke_key(session: Session, by: Actor, key_id: str, now: datetime | None = None) -> KeyView:
    """Revoke a key (a second revocation changes nothing). Audited, the key's row bound."""
    require_role(by, Role.ADMIN, Role.SYSTEM, what="revoke API keys")

    def work(ch: tx.Change) -> KeyView:
        key = _load_key(session, key_id)
        if key.revoked_at is None:
            key.revoked_at = ch.now
            session.flush()
            ch.audit("api_key.revoke", "api_key", key_id, {"person_id": key.person_id})
        return _view(session, key)

    return tx.use_case(session, by, "api_key.revoke", {"key_id": key_id}, KeyView, work, now=now)


def set_key_role(session: Session, by: Actor, key_id: str, role: str, now: datetime | None = None) -> KeyView:
    """Give an active key another role (its person gets an actor id for it if they had none). Audited."""
    require_role(by, Role.ADMIN, Role.SYSTEM, what="change an API key's role")
    _key_role(role)

    def work(ch: tx.Change) -> KeyView:
        key = _load_key(session, key_id)
        if key.revoked_at is not None:
            raise InvalidTransition(f"API key {key_id!r} is revoked")
        if key.role != role:
            old, key.role = key.role, role
            session.flush()
            _bind_key(ch, key, key.person_id or _own_person(ch, key))
            ch.audit("api_key.role", "api_key", key_id, {"person_id": key.person_id, "old": old, "new": role})
        return _view(session, key)

    return tx.use_case(session, by, "api_key.role", {"key_id": key_id, "role": role}, KeyView, work, now=now)


class Adopted(BaseModel):
    key_ids: list[str]


def adopt_keys(session: Session, by: Actor | None = None) -> Adopted:
    """Every key without a person becomes a person of its own (the migration path of issue 18); audited.
    Re-running changes nothing."""
    if session.scalar(select(ApiKeyRow.key_id).where(ApiKeyRow.person_id.is_(None)).limit(1)) is None:
        return Adopted(key_ids=[])

    def work(ch: tx.Change) -> Adopted:
        done = []
        for key in session.scalars(select(ApiKeyRow).where(ApiKeyRow.person_id.is_(None)).order_by(ApiKeyRow.key_id)):
            _bind_key(ch, key, _own_person(ch, key))
            ch.audit("api_key.adopt", "api_key", key.key_id, {"person_id": key.person_id, "role": key.role})
            done.append(key.key_id)
        return Adopted(key_ids=done)

    return tx.use_case(session, by or Actor("system", Role.SYSTEM), "api_key.adopt", {}, Adopted, work)


def list_keys(session: Session) -> list[KeyView]:
    return [_view(session, k) for k in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))]


def staff_actor(session: Session, actor_id: str, role: str, *, via: str, simulated: bool = False) -> Actor:
    """The registered person's actor ``actor_id`` acting as ``role`` through ``via`` (the CLI): refused
    unless ``actor_id`` is registered to a person with that role (registering is ``dajia people add``)."""
    row = session.get(ActorRow, actor_id)
    if row is None or row.person_id is None:
        raise NotFound(
            f"--actor {actor_id!r} is not a registered person; register them first "
            f"(dajia people add --id {actor_id} --name NAME --role {role})"
        )
    if row.role != role:
        raise InvalidTransition(f"--actor {actor_id!r} is registered as {row.role}, not {role}")
    return Actor(actor_id, Role(role), simulated, via=via)


def names(session: Session, actor_ids: list[str] | None = None) -> dict[str, str]:
    """Actor id -> the name of the person acting under it (actors without a person are left out)."""
    q = select(ActorRow.actor_id, Person.name).join(Person, Person.person_id == ActorRow.person_id)
    if actor_ids is not None:
        q = q.where(ActorRow.actor_id.in_(actor_ids))
    return {a: n for a, n in session.execute(q)}
