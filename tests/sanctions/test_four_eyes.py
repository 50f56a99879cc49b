"""Four eyes in the workflow layer: whoever drafts or decides may not also approve or judge the appeal.

Each refusal is Forbidden, names the rule and the person, and writes nothing (every table's rows
and the audit head are the same before and after); the accepted path records who drafted and who
approved. Run on SQLite and PostgreSQL (the ``session`` fixture)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.db import Base
from core.errors import Forbidden
from sanctions import cases
from sanctions.audit import verify_chain
from sanctions.campaigns import approve_campaign, create_campaign, publish_campaign
from sanctions.disclosure import approve_disclosures, approve_policy, create_policy, propose_disclosures
from sanctions.models import AuditEntry, Disclosure
from sanctions.public import closed_shops
from sanctions.storefront import import_marketplace
from tests.sanctions.conftest import SNAPSHOT, build_marketplace, shop_row
from tests.sanctions.test_paths import ADMIN, ADMIN2, REVIEWER, REVIEWER2, TEST_BUY, day, open_case, seller


def everything(s: Session) -> dict[str, Any]:
    """Every row of every table, as text: equal before and after means nothing was written."""
    s.rollback()
    out: dict[str, Any] = {}
    for table in Base.metadata.sorted_tables:
        rows = s.execute(sa.select(table)).all()
        out[table.name] = sorted(repr(tuple(r)) for r in rows)
    s.rollback()
    return out


@pytest.fixture
def market(session: Session) -> Session:
    """Shops S1 (one buyer) and S2."""
    orders = [("S1", "S1-L0", "B1", 10.0, day(10))]
    import_marketplace(session, build_marketplace([shop_row("S1"), shop_row("S2")], orders=orders))
    return session


@pytest.fixture
def closed_case(market: Session) -> int:
    world = market
    case_id = open_case(world, "S1")
    cases.decide(world, case_id, "close", REVIEWER, reason="proof", evidence=[TEST_BUY], now=SNAPSHOT)
    return case_id


def test_the_admin_who_drafted_a_campaign_cannot_approve_it(market: Session, closed_case: int) -> None:
    s = market
    draft = create_campaign(s, ADMIN, title="summer 打假", now=SNAPSHOT)
    before = everything(s)
    with pytest.raises(Forbidden, match="four eyes: admin 'admin-1' drafted it and may not also approve campaign"):
        approve_campaign(s, draft.campaign_id, ADMIN, now=SNAPSHOT)
    assert everything(s) == before
    approved = approve_campaign(s, draft.campaign_id, ADMIN2, now=SNAPSHOT)
    assert (approved.created_by, approved.approved_by) == ("admin-1", "admin-2")
    published = publish_campaign(s, draft.campaign_id, ADMIN, now=SNAPSHOT)
    assert published.status == "published"
    (payload,) = s.execute(sa.select(AuditEntry.payload).where(AuditEntry.action == "campaign.approve")).scalars()
    assert '"drafted_by":"admin-1"' in payload
    assert verify_chain(s).ok


def test_the_admin_who_proposed_a_disclosure_cannot_publish_it(market: Session, closed_case: int) -> None:
    s = market
    proposed = propose_disclosures(s, ADMIN, basis="Art. 34 E-Commerce Law", now=SNAPSHOT)
    assert proposed.proposed == [closed_case] and closed_shops(s) == []
    before = everything(s)
    with pytest.raises(Forbidden, match=f"admin 'admin-1' drafted disclosures of cases \\[{closed_case}\\]"):
        approve_disclosures(s, ADMIN, now=SNAPSHOT)
    assert everything(s) == before
    assert closed_shops(s) == []  # still not public
    res = approve_disclosures(s, ADMIN2, now=SNAPSHOT)
    assert (res.published, res.drafted_by, res.approved_by) == ([closed_case], ["admin-1"], "admin-2")
    (d,) = s.execute(sa.select(Disclosure)).scalars()
    assert (d.status, d.drafted_by, d.approved_by) == ("published", "admin-1", "admin-2")
    assert [e.shop_id for e in closed_shops(s)] == ["S1"]
    assert verify_chain(s).ok


def test_a_policy_revealing_personal_fields_needs_a_second_admin(market: Session, closed_case: int) -> None:
    s = market
    masked = create_policy(s, ADMIN, name="business-only", personal_fields=[], legal_basis="default law")
    assert masked.status == "approved"  # reveals nothing personal: one admin is enough
    pol = create_policy(
        s, ADMIN, name="court-17", personal_fields=["owner_phone"], legal_basis="court order 17", case_ids=[closed_case]
    )
    assert pol.status == "proposed"
    before = everything(s)
    with pytest.raises(Forbidden, match="may not also approve policy 'court-17'"):
        approve_policy(s, "court-17", ADMIN, now=SNAPSHOT)
    assert everything(s) == before
    assert approve_policy(s, "court-17", ADMIN2, now=SNAPSHOT).approved_by == "admin-2"


def test_the_reviewer_who_closed_a_case_cannot_decide_its_appeal(market: Session, closed_case: int) -> None:
    s = market
    cases.appeal(s, closed_case, seller("S1"), reason="the test buy was another shop's", now=SNAPSHOT)
    before = everything(s)
    for uphold in (True, False):
        with pytest.raises(Forbidden, match="reviewer 'rev-1' made the decision appealed and may not also decide"):
            cases.decide_appeal(s, closed_case, uphold, REVIEWER, reason="I stand by it", now=SNAPSHOT)
    assert everything(s) == before
    res = cases.decide_appeal(s, closed_case, False, REVIEWER2, reason="test buy stands", now=SNAPSHOT)
    assert res.new_status == "closed"
    # a second appeal: neither the closing reviewer nor the one who rejected the first appeal may decide it
    cases.appeal(s, closed_case, seller("S1"), reason="new invoices", now=SNAPSHOT)
    for who in (REVIEWER, REVIEWER2):
        with pytest.raises(Forbidden, match="four eyes"):
            cases.decide_appeal(s, closed_case, True, who, reason="x", now=SNAPSHOT)
    third = cases.decide_appeal(s, closed_case, True, ADMIN2, reason="invoices check out", now=SNAPSHOT)
    assert third.new_status == "reversed"
    actors = [(e.action, e.actor_id) for e in cases.get_case(s, closed_case).events]
    assert actors[1:] == [
        ("close", "rev-1"),
        ("appeal", "keeper-S1"),
        ("reject_appeal", "rev-2"),
        ("appeal", "keeper-S1"),
        ("reverse", "admin-2"),
    ]
    assert verify_chain(s).ok


def test_the_reviewer_who_banned_cannot_decide_the_appeal_of_the_ban(market: Session) -> None:
    s = market
    case_id = open_case(s, "S1")
    cases.decide(s, case_id, "ban", REVIEWER, reason="suspected", now=SNAPSHOT)
    cases.appeal(s, case_id, seller("S1"), reason="authorised reseller", now=SNAPSHOT)
    with pytest.raises(Forbidden, match="four eyes"):
        cases.decide_appeal(s, case_id, True, REVIEWER, reason="x", now=SNAPSHOT)
    assert cases.decide_appeal(s, case_id, True, REVIEWER2, reason="verified", now=SNAPSHOT).new_status == "reversed"
