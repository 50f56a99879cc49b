"""Keys belong to people (issue 18): a key is issued to a registered person and acts under their actor id;
every event and audit entry names the person and the key; issuing and revoking are audited and bound into the
chain, so editing or deleting a key row, or editing a person's role, fails ``dajia audit verify``; keys made
before people are adopted as people of their own. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from core.errors import NotFound
from dajia.db import adopt_keys
from sanctions import cases
from sanctions.audit import verify_chain
from sanctions.evidence import compare
from sanctions.models import ActorRow, ApiKeyRow, AuditEntry, CaseEvent, Person
from sanctions.people import register
from sanctions.routing import route_scored
from sanctions.scored import ScoredShop, scored_from_frame
from sanctions.storefront import import_marketplace
from sanctions.workflow import SYSTEM
from serving.auth import ApiKeyStore
from tests.sanctions.conftest import SNAPSHOT, build_marketplace, shop_row
from tests.sanctions.test_paths import TEST_BUY


def _cli_verify(db_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url}
    return subprocess.run(
        [sys.executable, "-m", "dajia.cli", "audit", "verify"], env=env, capture_output=True, text=True, timeout=120
    )


def _count(session: Session, what: object) -> int:
    n = int(session.execute(select(func.count()).select_from(what)).scalar_one())  # type: ignore[arg-type]
    session.rollback()
    return n


def _entry(session: Session, action: str, entity_id: str) -> int:
    seq = session.scalar(
        select(func.max(AuditEntry.seq)).where(AuditEntry.action == action, AuditEntry.entity_id == entity_id)
    )
    session.rollback()
    assert seq is not None
    return int(seq)


def test_a_key_acts_as_its_person_and_every_entry_names_person_and_key(session: Session, engine: Engine) -> None:
    register(session, SYSTEM, person_id="alice", name="Alice Wang 王丽", role="admin", now=SNAPSHOT)
    store = ApiKeyStore(engine, cache_seconds=0.0)
    key, secret = store.create("admin", "alice laptop", "alice")
    assert (key.person_id, key.person_name, key.actor_id) == ("alice", "Alice Wang 王丽", "alice")
    found = store.authenticate(secret)
    assert found is not None and found.actor().actor_id == "alice" and found.actor().via == f"key:{key.key_id}"
    assert found.actor("scorer").actor_id == "alice:scorer"  # routing by any key acts as the person's scorer id

    # an unknown person gets no key, and nothing is written
    keys_before, entries_before = _count(session, ApiKeyRow), _count(session, AuditEntry)
    with pytest.raises(NotFound, match="no person 'mallory'"):
        store.create("reviewer", "x", "mallory")
    assert (_count(session, ApiKeyRow), _count(session, AuditEntry)) == (keys_before, entries_before)

    import_marketplace(session, build_marketplace([shop_row("S1")]))
    route_scored(session, [ScoredShop("S1", 0.9, "suspected", "m", "1", [], 0.5)], actor=found.actor("scorer"))
    case_id = int(session.execute(text("SELECT case_id FROM cases")).scalar_one())
    session.rollback()
    cases.decide(session, case_id, "close", found.actor(), reason="test buy", evidence=[TEST_BUY])
    events = session.execute(select(CaseEvent.actor_id, CaseEvent.via).order_by(CaseEvent.event_id)).all()
    assert events == [("alice:scorer", f"key:{key.key_id}"), ("alice", f"key:{key.key_id}")]
    decided = session.execute(
        select(AuditEntry.actor_id, AuditEntry.via).where(AuditEntry.action == "case.close")
    ).one()
    assert tuple(decided) == ("alice", f"key:{key.key_id}")
    session.rollback()

    assert store.revoke(key.key_id).revoked_at is not None and store.authenticate(secret) is None
    actions = session.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "api_key")).all()
    assert actions == ["api_key.issue", "api_key.revoke"]
    session.rollback()
    assert verify_chain(session).ok


def test_editing_or_deleting_a_key_row_or_a_persons_role_fails_verify(
    session: Session, engine: Engine, db_url: str
) -> None:
    register(session, SYSTEM, person_id="bo", name="Bo Chen", role="reviewer", now=SNAPSHOT)
    store = ApiKeyStore(engine, cache_seconds=0.0)
    k1, _ = store.create("reviewer", "bo desk", "bo")
    k2, _ = store.create("reviewer", "bo phone", "bo")
    assert verify_chain(session).ok
    session.rollback()
    issued1 = _entry(session, "api_key.issue", k1.key_id)

    with engine.begin() as conn:  # a reviewer key quietly made an admin key
        conn.execute(text("UPDATE serving_api_keys SET role = 'admin' WHERE key_id = :k"), {"k": k1.key_id})
    proc = _cli_verify(db_url)
    assert proc.returncode == 2, proc.stderr
    assert f"entry {issued1}" in proc.stderr and f"serving_api_keys rows of api_key {k1.key_id}" in proc.stderr
    with engine.begin() as conn:
        conn.execute(text("UPDATE serving_api_keys SET role = 'reviewer' WHERE key_id = :k"), {"k": k1.key_id})
    assert verify_chain(session).ok
    session.rollback()

    issued2 = _entry(session, "api_key.issue", k2.key_id)
    with engine.begin() as conn:  # a key (and the trace of who held it) deleted
        conn.execute(text("DELETE FROM serving_api_keys WHERE key_id = :k"), {"k": k2.key_id})
    report = verify_chain(session)
    session.rollback()
    assert not report.ok and report.first_bad_seq == issued2
    assert f"serving_api_keys rows of api_key {k2.key_id} it recorded were deleted" in (report.problem or "")


def test_editing_a_persons_role_fails_verify(session: Session, engine: Engine, db_url: str) -> None:
    register(session, SYSTEM, person_id="cai", name="Cai Lin", role="reviewer", now=SNAPSHOT)
    registered = _entry(session, "actor.register", "cai")
    assert verify_chain(session).ok
    session.rollback()
    with engine.begin() as conn:  # the reviewer quietly made an admin
        conn.execute(text("UPDATE actors SET role = 'admin' WHERE actor_id = 'cai'"))
    proc = _cli_verify(db_url)
    assert proc.returncode == 2, proc.stderr
    assert f"entry {registered}" in proc.stderr and "actors rows of actor cai" in proc.stderr


def test_keys_made_before_people_become_people_of_their_own(session: Session, engine: Engine) -> None:
    # a key as issue 17 left it: no person; its actor id ``api-key:<id>`` already acted (no person either)
    with engine.begin() as conn:
        conn.execute(
            ApiKeyRow.__table__.insert().values(
                key_id="0ldkey", name="ops laptop", role="admin", secret_sha256="f" * 64, created_at=SNAPSHOT
            )
        )
    from sanctions.tx import ensure_actor
    from sanctions.workflow import Actor, Role

    with session.begin():
        ensure_actor(session, Actor("api-key:0ldkey", Role.ADMIN), SNAPSHOT)
    report = verify_chain(session)
    session.rollback()
    assert not report.ok and "written outside the audit chain" in (report.problem or "")

    assert adopt_keys(engine) == ["0ldkey"]
    assert adopt_keys(engine) == []  # re-running changes nothing
    person = session.get(Person, "api-key:0ldkey")
    assert person is not None and person.name == "ops laptop"
    row = session.get(ActorRow, "api-key:0ldkey")
    assert row is not None and row.person_id == "api-key:0ldkey"  # its history stays with one person
    key = session.get(ApiKeyRow, "0ldkey")
    assert key is not None and key.person_id == "api-key:0ldkey"
    session.rollback()
    listed = {k.key_id: k for k in ApiKeyStore(engine).list()}
    assert (listed["0ldkey"].actor_id, listed["0ldkey"].person_name) == ("api-key:0ldkey", "ops laptop")
    assert verify_chain(session).ok


def test_the_snapshot_keeps_the_feature_values_the_score_was_computed_from(session: Session) -> None:
    import json

    import pandas as pd

    import_marketplace(session, build_marketplace([shop_row("S1"), shop_row("S2")]))
    frame = pd.DataFrame(
        {
            "shop_id": ["S1", "S2"],
            "score": [0.91, 0.95],
            "tier": ["suspected", "suspected"],
            "model_name": "m",
            "model_version": "3",
            "suspected_threshold": 0.5,
            "reasons": [["many complaints"], []],
            "features": [json.dumps({"complaints_90d": 7.0, "price_ratio": None}), None],
        }
    )
    route_scored(session, list(scored_from_frame(frame)), now=datetime(2024, 6, 1))
    case_ids = dict(session.execute(text("SELECT shop_id, case_id FROM cases")).all())
    session.rollback()
    then = compare(session, int(case_ids["S1"]))
    assert then is not None and then.hash_ok
    assert then.then["score"]["features"] == {"complaints_90d": 7.0, "price_ratio": None}
    assert then.then["score"]["reasons"] == ["many complaints"] and then.then["score"]["model_version"] == "3"
    other = compare(session, int(case_ids["S2"]))
    assert other is not None and other.then["score"]["features"] is None
    session.rollback()
    assert verify_chain(session).ok


def test_the_cli_actor_must_be_a_registered_person_and_names_the_os_user(session: Session) -> None:
    from core.errors import InvalidTransition
    from dajia.cli_support import actor, os_user
    from dajia.simulation import SIMULATED_PEOPLE, register_people

    import_marketplace(session, build_marketplace([shop_row("S1")]))
    route_scored(session, [ScoredShop("S1", 0.9, "suspected", "m", "1", [], 0.5)], now=SNAPSHOT)
    case_id = int(session.execute(text("SELECT case_id FROM cases")).scalar_one())
    session.rollback()
    entries_before, actors_before = _count(session, AuditEntry), _count(session, ActorRow)
    with pytest.raises(NotFound, match=r"--actor 'adm1' is not a registered person; register them first"):
        actor(session, "adm1", "admin")
    assert (_count(session, AuditEntry), _count(session, ActorRow)) == (entries_before, actors_before)
    register(session, SYSTEM, person_id="adm1", name="Ada Min", role="admin", now=SNAPSHOT)
    with pytest.raises(InvalidTransition, match="'adm1' is registered as admin, not reviewer"):
        actor(session, "adm1", "reviewer")

    who = actor(session, "adm1", "admin")
    assert who.via == f"cli:{os_user()}"
    cases.decide(session, case_id, "close", who, reason="test buy", evidence=[TEST_BUY])
    event = session.execute(select(CaseEvent.actor_id, CaseEvent.via).where(CaseEvent.action == "close")).one()
    entry = session.execute(select(AuditEntry.actor_id, AuditEntry.via).where(AuditEntry.action == "case.close")).one()
    assert tuple(event) == tuple(entry) == ("adm1", f"cli:{os_user()}")
    session.rollback()

    # the crackdown registers its simulated people first (two admins), once
    assert register_people(session, SNAPSHOT) == [a.actor_id for a, _ in SIMULATED_PEOPLE]
    assert register_people(session, SNAPSHOT) == []
    admins = session.scalars(
        select(ActorRow.actor_id).where(ActorRow.role == "admin", ActorRow.simulated.is_(True))
    ).all()
    assert sorted(admins) == ["sim-admin", "sim-second-admin"]
    session.rollback()
    assert verify_chain(session).ok
