"""People, not ids: a person's reviewer and admin ids count as one person for four eyes; their
registration is audited and bound into the chain."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from core.errors import Conflict, Forbidden
from sanctions import cases
from sanctions.audit import verify_chain
from sanctions.campaigns import approve_campaign, create_campaign
from sanctions.people import list_people, register
from sanctions.storefront import import_marketplace
from sanctions.workflow import SYSTEM, Actor, Role
from tests.sanctions.conftest import SNAPSHOT, build_marketplace, shop_row
from tests.sanctions.test_paths import TEST_BUY, open_case, seller


def test_one_person_under_two_ids_is_still_one_pair_of_eyes(session: Session) -> None:
    s = session
    alice = register(s, SYSTEM, person_id="alice", name="Alice Wang 王丽", role="reviewer", now=SNAPSHOT)
    alice = register(s, SYSTEM, person_id="alice", name="Alice Wang 王丽", role="admin", now=SNAPSHOT)
    assert alice.actor_ids == {"reviewer": "alice", "admin": "alice:admin"}
    register(s, SYSTEM, person_id="bo", name="Bo Chen 陈波", role="reviewer", now=SNAPSHOT)
    with pytest.raises(Conflict, match="registered as"):
        register(s, SYSTEM, person_id="bo", name="Somebody else", role="admin", now=SNAPSHOT)
    with pytest.raises(Forbidden):
        register(s, Actor("bo", Role.REVIEWER), person_id="eve", name="Eve", role="admin", now=SNAPSHOT)
    assert [p.name for p in list_people(s)] == ["Alice Wang 王丽", "Bo Chen 陈波"]

    import_marketplace(s, build_marketplace([shop_row("S1")]))
    case_id = open_case(s, "S1")
    cases.decide(s, case_id, "close", Actor("alice:admin", Role.ADMIN), reason="p", evidence=[TEST_BUY], now=SNAPSHOT)
    cases.appeal(s, case_id, seller("S1"), reason="not ours", now=SNAPSHOT)
    with pytest.raises(Forbidden, match="four eyes: reviewer 'alice' made the decision appealed"):
        cases.decide_appeal(s, case_id, True, Actor("alice", Role.REVIEWER), reason="x", now=SNAPSHOT)
    cases.decide_appeal(s, case_id, False, Actor("bo", Role.REVIEWER), reason="stands", now=SNAPSHOT)

    draft = create_campaign(s, Actor("alice", Role.REVIEWER), title="t", now=SNAPSHOT)
    with pytest.raises(Forbidden, match="four eyes"):
        approve_campaign(s, draft.campaign_id, Actor("alice:admin", Role.ADMIN), now=SNAPSHOT)
    assert verify_chain(s).ok


def test_editing_a_persons_name_is_caught(session: Session, engine: Engine) -> None:
    register(session, SYSTEM, person_id="alice", name="Alice Wang", role="reviewer", now=SNAPSHOT)
    assert verify_chain(session).ok
    session.rollback()
    with engine.begin() as conn:
        conn.execute(text("UPDATE people SET name = 'Mallory' WHERE person_id = 'alice'"))
    report = verify_chain(session)
    assert not report.ok and report.first_bad_seq == 1 and "people rows of person alice" in (report.problem or "")
