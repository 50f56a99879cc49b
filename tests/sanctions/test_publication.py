"""Steps 3 and 4: campaigns (announcement, warnings) and disclosure (masked by policy)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import Conflict, Forbidden, InvalidTransition
from marketplace.schema import PERSONAL_FIELDS
from sanctions import cases
from sanctions.audit import verify_chain
from sanctions.campaigns import approve_campaign, create_campaign, publish_campaign
from sanctions.disclosure import (
    MASK,
    DisclosureResult,
    approve_disclosures,
    approve_policy,
    create_policy,
    propose_disclosures,
)
from sanctions.models import OutboxMessage, Shop
from sanctions.outbox import OutboxItem, counts, deliver
from sanctions.public import announcement, announcements, closed_shops
from sanctions.routing import route_scored
from sanctions.schemas import Evidence
from sanctions.scored import ScoredShop
from sanctions.storefront import import_marketplace
from sanctions.workflow import Actor, Role
from tests.sanctions.conftest import SNAPSHOT, build_marketplace, shop_row

REVIEWER = Actor("rev-1", Role.REVIEWER)
ADMIN = Actor("admin-1", Role.ADMIN)
#: four eyes: the second admin, who approves what ADMIN drafts
ADMIN2 = Actor("admin-2", Role.ADMIN)


def publish_disclosures(s: Session, drafter: Actor, **kwargs: Any) -> DisclosureResult:
    """Propose as ``drafter``, then approve as the second admin (what a publication takes)."""
    res = propose_disclosures(s, drafter, **kwargs)
    if res.proposed:
        approve_disclosures(s, ADMIN2, case_ids=res.proposed, now=kwargs.get("now"))
    return res


PROOF = Evidence(kind="brand_owner", ref="LV-AUTH-77", detail="brand owner authenticated: not genuine")


@pytest.fixture
def decided(session: Session) -> dict[str, int]:
    """C1 (bags) closed; B1 (shoes) banned, buyer u1 paid (not confirmed), u2 owed; S8, S9 untouched."""
    s = session
    orders = [
        ("B1", "B1-L0", "u1", 200.0, SNAPSHOT - timedelta(days=3)),
        ("B1", "B1-L1", "u2", 100.0, SNAPSHOT - timedelta(days=3)),
    ]
    shops = [shop_row("C1", "bags"), shop_row("B1", "shoes"), shop_row("S9", "toys"), shop_row("S8", "toys")]
    import_marketplace(s, build_marketplace(shops, orders=orders))
    r = route_scored(s, [ScoredShop(x, 0.9, "suspected", "m", "3", [], 0.8) for x in ("C1", "B1")], now=SNAPSHOT)
    ids = dict(zip(["C1", "B1"], r.opened_case_ids, strict=True))
    cases.decide(s, ids["C1"], "close", REVIEWER, reason="brand owner", evidence=[PROOF], now=SNAPSHOT)
    cases.decide(s, ids["B1"], "ban", REVIEWER, reason="suspected", now=SNAPSHOT)
    u1 = next(c for c in cases.claims_of(s, ids["B1"]) if c.buyer_id == "u1")
    cases.record_payment(s, u1.claim_id, Actor("keeper-B1", Role.SELLER), payment_ref="T-1", now=SNAPSHOT)
    return ids


def test_campaign_needs_admin_and_approval_then_publishes_announcement_and_warnings(
    session: Session, decided: dict[str, int]
) -> None:
    s = session
    with pytest.raises(Forbidden):
        create_campaign(s, Actor("keeper-C1", Role.SELLER), title="x")
    camp = create_campaign(s, REVIEWER, title="2026 summer crackdown 夏季打假", now=SNAPSHOT)
    assert camp.case_ids == sorted(decided.values()) and camp.status == "draft"
    with pytest.raises(InvalidTransition, match="approve"):
        publish_campaign(s, camp.campaign_id, ADMIN, now=SNAPSHOT)
    with pytest.raises(Forbidden):
        approve_campaign(s, camp.campaign_id, REVIEWER, now=SNAPSHOT)
    approve_campaign(s, camp.campaign_id, ADMIN, now=SNAPSHOT)
    with pytest.raises(Forbidden):
        publish_campaign(s, camp.campaign_id, REVIEWER, now=SNAPSHOT)
    pub = publish_campaign(s, camp.campaign_id, ADMIN, idempotency_key="pub-1", now=SNAPSHOT)
    assert pub.status == "published" and pub.published_by == "admin-1"
    # the retry returns the original; a second publication without the key is a conflict
    assert publish_campaign(s, camp.campaign_id, ADMIN, idempotency_key="pub-1", now=SNAPSHOT) == pub
    with pytest.raises(Conflict):
        publish_campaign(s, camp.campaign_id, ADMIN, now=SNAPSHOT)
    a = announcement(s, camp.campaign_id).announcement
    totals = a["totals"]
    # u1: 200 + max(600, 500) = 800 (paid); u2: 100 + 500 = 600 (owed)
    assert totals == {
        "shops_closed": 1,
        "shops_banned": 1,
        "shops_ban_lifted": 0,
        "claims": 2,
        "consumers_compensated": 0,
        "compensation_owed": 1400.0,
        "compensation_paid": 800.0,
    }
    by_cat = {c["category"]: c for c in a["by_category"]}
    assert by_cat["bags"]["shops_closed"] == 1 and by_cat["shoes"]["shops_banned"] == 1
    assert by_cat["shoes"]["compensation_owed"] == 1400.0
    html = announcements(s)[0].html
    # money as people read it (issue 22), in a page a phone lays out at its own width
    assert "¥1,400.00" in html and "¥800.00" in html and "夏季打假" in html and "<td>shoes</td>" in html
    assert 'name="viewport"' in html and 'lang="zh-Hans"' in html and 'lang="en"' in html
    # a warning to every seller still on the marketplace (3 shops: B1, S8, S9), each tracked in the outbox
    warned = s.execute(select(OutboxMessage.recipient).where(OutboxMessage.kind == "warning")).scalars().all()
    assert sorted(warned) == ["keeper-B1", "keeper-S8", "keeper-S9"]
    assert pub.warnings_sent == 3
    s.rollback()
    sent: list[OutboxItem] = []
    pending = counts(s)["warning"]["pending"]
    s.rollback()
    assert deliver(s, sent.append, limit=100_000) >= pending
    assert counts(s)["warning"] == {"delivered": 3}
    assert sum(1 for m in sent if m.kind == "warning") == 3
    assert verify_chain(s).ok


def test_default_disclosure_masks_every_personal_field(session: Session, decided: dict[str, int]) -> None:
    s = session
    with pytest.raises(Forbidden):
        publish_disclosures(s, REVIEWER, basis="x", now=SNAPSHOT)
    with pytest.raises(InvalidTransition, match="basis"):
        publish_disclosures(s, ADMIN, basis=" ", now=SNAPSHOT)
    with pytest.raises(InvalidTransition, match="closed"):
        publish_disclosures(s, ADMIN, basis="b", case_ids=[decided["B1"]], now=SNAPSHOT)
    res = propose_disclosures(s, ADMIN, basis="Art. 34 E-Commerce Law", now=SNAPSHOT)
    assert res.proposed == [decided["C1"]] and res.drafted_by == "admin-1" and res.policy == "default"
    assert closed_shops(s) == []  # proposed, not public until a second admin approves
    approved = approve_disclosures(s, ADMIN2, now=SNAPSHOT)
    assert approved.published == [decided["C1"]] and approved.drafted_by == ["admin-1"]
    assert approved.approved_by == "admin-2"
    entries = closed_shops(s)
    assert len(entries) == 1
    e = entries[0]
    assert (e.shop_id, e.business_registration, e.business_phone, e.measure) == ("C1", "BR-C1", "010-C1", "closed")
    assert e.measure_date == SNAPSHOT.date().isoformat()
    assert e.personal == {f: MASK for f in PERSONAL_FIELDS}
    # the page people read: searchable, a masked field says so in words (issue 22)
    from sanctions.public import closed_shops_page, compensation_page

    page = closed_shops_page(s, q="c1")
    assert "C1" in page and "not published" in page and MASK not in page and 'name="viewport"' in page
    assert "1 shop match" in page and "No closed shop matches" in closed_shops_page(s, q="no such shop")
    assert "1 shop" in closed_shops_page(s, page=99)  # a page past the end shows the last one
    buyers = compensation_page(3.0, 500.0, 180, 30)
    assert "plus 3 times what you paid" in buyers and "¥500.00" in buyers and "30 days" in buyers
    shop = s.get(Shop, "C1")
    assert shop is not None
    dumped = json.dumps([x.model_dump(mode="json") for x in entries], ensure_ascii=False)
    for field in PERSONAL_FIELDS:
        assert getattr(shop, field) not in dumped, field
    # publishing again skips what is already out
    again = publish_disclosures(s, ADMIN, basis="again", now=SNAPSHOT)
    assert again.proposed == [] and again.skipped_already_published == [decided["C1"]]


def test_a_policy_with_a_legal_basis_discloses_only_its_fields(session: Session, decided: dict[str, int]) -> None:
    s = session
    with pytest.raises(InvalidTransition, match="legal basis"):
        create_policy(s, ADMIN, name="p", personal_fields=["owner_phone"], legal_basis="")
    with pytest.raises(InvalidTransition, match="not personal"):
        create_policy(s, ADMIN, name="p", personal_fields=["bank_account_hash"], legal_basis="x")
    with pytest.raises(Forbidden):
        create_policy(s, REVIEWER, name="p", personal_fields=["owner_phone"], legal_basis="x")
    with pytest.raises(InvalidTransition, match="cases its legal basis is for"):
        create_policy(s, ADMIN, name="p", personal_fields=["owner_phone"], legal_basis="x")
    pol = create_policy(
        s,
        ADMIN,
        name="court-order-17",
        personal_fields=["owner_phone"],
        legal_basis="Court order (2026) Zhe 01 No. 17",
        case_ids=[decided["C1"]],
    )
    assert pol.status == "proposed" and pol.approved_by is None
    # a policy that reveals personal fields cannot be used before a second admin approves it
    with pytest.raises(InvalidTransition, match="second admin"):
        propose_disclosures(s, ADMIN2, basis="court order", policy="court-order-17", now=SNAPSHOT)
    with pytest.raises(Forbidden, match="four eyes"):
        approve_policy(s, "court-order-17", ADMIN)
    assert approve_policy(s, "court-order-17", ADMIN2).approved_by == "admin-2"
    publish_disclosures(s, ADMIN, basis="court order", policy="court-order-17", now=SNAPSHOT)
    e = closed_shops(s)[0]
    assert e.personal["owner_phone"] == "138-C1" and e.policy == "court-order-17"
    assert all(e.personal[f] == MASK for f in PERSONAL_FIELDS if f != "owner_phone")


def test_every_public_read_model_is_masked_under_the_default_policy(session: Session, decided: dict[str, int]) -> None:
    s = session
    publish_disclosures(s, ADMIN, basis="b", now=SNAPSHOT)
    camp = create_campaign(s, REVIEWER, title="t", now=SNAPSHOT)
    approve_campaign(s, camp.campaign_id, ADMIN, now=SNAPSHOT)
    publish_campaign(s, camp.campaign_id, ADMIN, now=SNAPSHOT)
    public = json.dumps(
        {
            "closed": [x.model_dump(mode="json") for x in closed_shops(s)],
            "announcements": [x.model_dump(mode="json") for x in announcements(s)],
        },
        ensure_ascii=False,
    )
    personal_values = s.execute(
        select(Shop.owner_phone, Shop.owner_email, Shop.owner_address, Shop.id_number_hash)
    ).all()
    assert personal_values
    for row in personal_values:
        for value in row:
            assert value not in public
    n = s.execute(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "publication")
    ).scalar_one()
    assert n == 2  # the disclosure and the announcement


def test_an_admin_withdraws_a_published_entry_with_a_reason(session: Session, decided: dict[str, int]) -> None:
    from sanctions.disclosure import withdraw_disclosure
    from sanctions.models import Disclosure

    s = session
    publish_disclosures(s, ADMIN, basis="Art. 34 E-Commerce Law", now=SNAPSHOT)
    (entry,) = closed_shops(s)
    with pytest.raises(Forbidden):
        withdraw_disclosure(s, entry.disclosure_id, REVIEWER, reason="not mine to withdraw")
    with pytest.raises(InvalidTransition, match="reason"):
        withdraw_disclosure(s, entry.disclosure_id, ADMIN, reason="  ")
    res = withdraw_disclosure(
        s, entry.disclosure_id, ADMIN, reason="court order 2026-17", idempotency_key="w-1", now=SNAPSHOT
    )
    assert res.status == "withdrawn" and res.withdrawn_by == ADMIN.actor_id
    assert closed_shops(s) == []  # off the public list
    kept = s.get(Disclosure, entry.disclosure_id)
    assert kept is not None and kept.withdrawn_reason == "court order 2026-17"  # kept, with why
    # a retry with the same key returns the same result; a second withdrawal is a conflict
    again = withdraw_disclosure(
        s, entry.disclosure_id, ADMIN, reason="court order 2026-17", idempotency_key="w-1", now=SNAPSHOT
    )
    assert again == res
    with pytest.raises(Conflict):
        withdraw_disclosure(s, entry.disclosure_id, ADMIN, reason="again", now=SNAPSHOT)
    topics = set(s.execute(select(OutboxMessage.topic)).scalars())
    assert "disclosure_withdrawn" in topics
    assert verify_chain(s).ok


def test_a_reviewer_escalates_one_banned_case_only_after_its_deadline(
    session: Session, decided: dict[str, int]
) -> None:
    s = session
    b1 = decided["B1"]  # banned; buyer u2's claim is still owed
    with pytest.raises(Forbidden):
        cases.escalate_case(s, b1, Actor("keeper-B1", Role.SELLER), reason="x", now=SNAPSHOT)
    with pytest.raises(InvalidTransition, match="still has time"):
        cases.escalate_case(s, b1, REVIEWER, reason="seller is stalling", now=SNAPSHOT + timedelta(days=1))
    late = SNAPSHOT + timedelta(days=365)
    version = cases.get_case(s, b1).version
    with pytest.raises(Conflict):
        cases.escalate_case(s, b1, REVIEWER, reason="deadline missed", expected_version=version - 1, now=late)
    res = cases.escalate_case(s, b1, REVIEWER, reason="deadline missed", expected_version=version, now=late)
    assert (res.old_status, res.new_status, res.shop_status) == ("banned", "closed", "closed")
    with pytest.raises(InvalidTransition):  # a closed case cannot be escalated again
        cases.escalate_case(s, b1, REVIEWER, reason="again", now=late)
    assert verify_chain(s).ok
