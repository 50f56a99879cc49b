"""Every path of the four-step workflow, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from core.errors import Conflict, Forbidden, InvalidTransition, NotFound
from sanctions import cases
from sanctions.audit import verify_chain
from sanctions.models import AuditEntry, Case, CaseEvent, Claim, Disclosure, Listing, OutboxMessage, Shop
from sanctions.routing import detect_ban_evasion, route_scored
from sanctions.schemas import Evidence
from sanctions.scored import ScoredShop
from sanctions.storefront import (
    delist,
    edit_listing,
    import_marketplace,
    storefront_listings,
    storefront_shop,
)
from sanctions.workflow import Actor, Role
from tests.sanctions.conftest import SNAPSHOT, build_marketplace, shop_row

REVIEWER = Actor("rev-1", Role.REVIEWER)
ADMIN = Actor("admin-1", Role.ADMIN)
#: four eyes: appeals are decided by a second reviewer, publications approved by a second admin
REVIEWER2 = Actor("rev-2", Role.REVIEWER)
ADMIN2 = Actor("admin-2", Role.ADMIN)
TEST_BUY = Evidence(kind="test_buy", ref="TB-2026-001", detail="lab: fake leather, fake serial")


def seller(shop_id: str) -> Actor:
    return Actor(f"keeper-{shop_id}", Role.SELLER)


def consumer(buyer: str) -> Actor:
    return Actor(buyer, Role.CONSUMER)


def scored(shop_id: str, score: float = 0.93, tier: str = "suspected", version: str = "7") -> ScoredShop:
    return ScoredShop(shop_id, score, tier, "dajia-shop-risk", version, ["12 counterfeit complaints in 30 days"], 0.8)


def day(n: int) -> object:
    return SNAPSHOT - timedelta(days=n)


@pytest.fixture
def world(session: Session) -> Session:
    """S1..S4; S1 has buyers B1 (two small orders), B2 (one big order), B3 (order outside the window)."""
    orders = [
        ("S1", "S1-L0", "B1", 10.0, day(10)),
        ("S1", "S1-L1", "B1", 20.0, day(20)),
        ("S1", "S1-L0", "B2", 400.0, day(30)),
        ("S1", "S1-L1", "B3", 99.0, day(400)),
        ("S2", "S2-L0", "B1", 300.0, day(5)),
        ("S3", "S3-L0", "B4", 50.0, day(5)),
    ]
    mp = build_marketplace([shop_row("S1"), shop_row("S2", "shoes"), shop_row("S3"), shop_row("S4")], orders=orders)
    import_marketplace(session, mp)
    return session


def open_case(session: Session, shop_id: str) -> int:
    report = route_scored(session, [scored(shop_id)], now=SNAPSHOT)
    assert report.opened == 1, report
    return report.opened_case_ids[0]


def test_migrations_match_the_models(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from dajia.db import service_metadata

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), service_metadata())
    assert diff == []


def test_import_is_idempotent_and_bulk(session: Session) -> None:
    mp = build_marketplace([shop_row(f"S{i}") for i in range(50)], listings_per_shop=3)
    first = import_marketplace(session, mp)
    assert (first.shops_added, first.listings_added) == (50, 150)
    again = import_marketplace(session, mp)
    assert (again.shops_added, again.listings_added, again.orders_added) == (0, 0, 0)
    assert len(storefront_listings(session, limit=10_000)) == 150


def test_a_large_sweep_takes_the_bulk_path_and_reads_back_exactly(session: Session) -> None:
    """COPY (PostgreSQL) / raw executemany (SQLite) rows read back through the ORM unchanged."""
    s = session
    import_marketplace(s, build_marketplace([shop_row(f"B{i:03d}") for i in range(150)], listings_per_shop=1))
    batch = [scored(f"B{i:03d}", 0.9 + i / 10_000) for i in range(150)]
    report = route_scored(s, batch, now=SNAPSHOT.replace(microsecond=123456))
    assert report.opened == 150
    view = cases.get_case(s, report.opened_case_ids[7])
    assert (view.shop_id, view.score, view.model_version, view.reasons) == (
        "B007",
        0.9 + 7 / 10_000,
        "7",
        ["12 counterfeit complaints in 30 days"],
    )
    assert view.opened_at == SNAPSHOT.replace(microsecond=123456)
    assert view.evidence[0]["data"]["reasons"] == ["12 counterfeit complaints in 30 days"]
    assert view.events[0].simulated is False and view.events[0].evidence == view.evidence
    assert s.execute(select(func.count()).where(Listing.frozen.is_(True))).scalar_one() == 150
    assert s.execute(select(func.count()).where(OutboxMessage.topic == "case_opened")).scalar_one() == 150
    assert verify_chain(s).ok and verify_chain(s).entries == 150
    assert route_scored(s, batch, now=SNAPSHOT).unchanged == 150


def test_routing_opens_once_freezes_listings_and_rescores(world: Session) -> None:
    s = world
    r = route_scored(
        s, [scored("S1"), scored("S2", 0.2, "watch"), scored("S3", 0.1, "low"), scored("NOPE")], now=SNAPSHOT
    )
    assert (r.opened, r.below_tier, r.unknown_shops) == (1, 2, ["NOPE"])
    assert all(li.frozen for li in s.execute(select(Listing).where(Listing.shop_id == "S1")).scalars())
    assert not any(li.frozen for li in s.execute(select(Listing).where(Listing.shop_id == "S2")).scalars())
    s.rollback()
    # the same scoring again changes nothing; a new model version rescores the open case
    assert route_scored(s, [scored("S1")], now=SNAPSHOT).unchanged == 1
    r2 = route_scored(s, [scored("S1", 0.97, version="8")], now=SNAPSHOT)
    assert r2.rescored == 1 and r2.opened == 0
    view = cases.get_case(s, r.opened_case_ids[0])
    assert (view.score, view.model_version, view.version) == (0.97, "8", 2)
    assert [e.action for e in view.events] == ["open", "rescore"]
    assert view.events[0].score == 0.93 and view.events[0].model_version == "7" and view.events[0].threshold == 0.8
    # the seller was told (outbox)
    msgs = s.execute(select(OutboxMessage).where(OutboxMessage.topic == "case_opened")).scalars().all()
    assert [m.recipient for m in msgs] == ["keeper-S1"]
    assert verify_chain(s).ok


def test_frozen_listings_refuse_edits_and_delists(world: Session) -> None:
    s = world
    edit_listing(s, seller("S2"), "S2-L0", title="new title", now=SNAPSHOT)  # not frozen: fine
    open_case(s, "S1")
    with pytest.raises(InvalidTransition, match="frozen"):
        edit_listing(s, seller("S1"), "S1-L0", price=1.0, now=SNAPSHOT)
    with pytest.raises(InvalidTransition, match="frozen"):
        delist(s, seller("S1"), "S1-L0", now=SNAPSHOT)
    with pytest.raises(Forbidden):
        edit_listing(s, seller("S2"), "S1-L0", title="not mine", now=SNAPSHOT)


def test_seller_edits_and_delists_show_on_the_storefront_and_are_audited(world: Session) -> None:
    s = world
    edit_listing(s, seller("S3"), "S3-L0", title="正品 genuine bag", price=88.0, now=SNAPSHOT)
    delist(s, seller("S3"), "S3-L1", now=SNAPSHOT)
    shown = {li.listing_id: li for li in storefront_listings(s, shop_id="S3")}
    assert set(shown) == {"S3-L0"} and (shown["S3-L0"].title, shown["S3-L0"].price) == ("正品 genuine bag", 88.0)
    actions = s.execute(select(AuditEntry.action).order_by(AuditEntry.seq)).scalars().all()
    assert actions == ["listing.edit", "listing.delist"]
    with pytest.raises(InvalidTransition, match="price"):
        edit_listing(s, seller("S3"), "S3-L0", price=0.0, now=SNAPSHOT)


def test_only_scorers_route_and_tiers_are_checked(world: Session) -> None:
    from core.errors import DajiaError

    with pytest.raises(Forbidden):
        route_scored(world, [scored("S1")], actor=REVIEWER, now=SNAPSHOT)
    with pytest.raises(DajiaError, match="tier"):
        route_scored(world, [scored("S1")], tier="high", now=SNAPSHOT)
    with pytest.raises(DajiaError, match="tier"):
        scored("S1", tier="severe")


def test_step1_close_with_proof_withdraws_shop_and_keeps_data(world: Session) -> None:
    s = world
    case_id = open_case(s, "S1")
    with pytest.raises(InvalidTransition, match="proof"):
        cases.decide(s, case_id, "close", REVIEWER, reason="looks fake", now=SNAPSHOT)
    with pytest.raises(InvalidTransition, match="proof"):  # a reviewer's confirmation must cite what was examined
        cases.decide(
            s, case_id, "close", REVIEWER, reason="x", evidence=[Evidence(kind="reviewer_confirmed")], now=SNAPSHOT
        )
    with pytest.raises(Forbidden):
        cases.decide(s, case_id, "close", Actor("scorer", Role.SCORER), reason="x", evidence=[TEST_BUY], now=SNAPSHOT)
    res = cases.decide(
        s, case_id, "close", REVIEWER, reason="test buy proved counterfeit", evidence=[TEST_BUY], now=SNAPSHOT
    )
    assert (res.new_status, res.shop_status) == ("closed", "closed")
    # gone from the storefront, kept (frozen) in the store
    assert all(li.shop_id != "S1" for li in storefront_listings(s, limit=10_000))
    with pytest.raises(NotFound):
        storefront_shop(s, "S1")
    kept = s.execute(select(Listing).where(Listing.shop_id == "S1")).scalars().all()
    assert len(kept) == 2 and all(li.frozen and li.withdrawn for li in kept)
    with pytest.raises(InvalidTransition):
        edit_listing(s, seller("S1"), "S1-L1", title="x", now=SNAPSHOT)
    # a closed shop scored again opens nothing
    assert route_scored(s, [scored("S1", 0.99, version="9")], now=SNAPSHOT).skipped_closed == 1
    view = cases.get_case(s, case_id)
    assert view.events[-1].evidence[0]["ref"] == "TB-2026-001"
    assert view.events[-1].model_version == "7" and view.events[-1].score == 0.93
    assert verify_chain(s).ok


def test_step2_ban_claims_confirmed_lifts_ban(world: Session) -> None:
    s = world
    case_id = open_case(s, "S1")
    res = cases.decide(s, case_id, "ban", REVIEWER, reason="suspected, short of proof", now=SNAPSHOT)
    assert (res.new_status, res.shop_status, res.claims_created) == ("banned", "banned", 2)
    claims = {c.buyer_id: c for c in cases.claims_of(s, case_id)}
    assert set(claims) == {"B1", "B2"}  # B3 bought outside the 180-day window
    # refund + max(3 × paid, 500): B1 paid 30 → 30 + 500; B2 paid 400 → 400 + 1200
    assert (claims["B1"].refund, claims["B1"].punitive, claims["B1"].amount) == (30.0, 500.0, 530.0)
    assert (claims["B2"].refund, claims["B2"].punitive, claims["B2"].amount) == (400.0, 1200.0, 1600.0)
    assert res.compensation_owed == 2130.0
    notified = s.execute(select(OutboxMessage.recipient).where(OutboxMessage.topic == "compensation_owed")).scalars()
    assert sorted(notified) == ["B1", "B2"]
    s.rollback()
    b1, b2 = claims["B1"].claim_id, claims["B2"].claim_id
    with pytest.raises(InvalidTransition):  # unpaid claims cannot be confirmed
        cases.confirm_claim(s, b1, consumer("B1"), now=SNAPSHOT)
    with pytest.raises(Forbidden):
        cases.record_payment(s, b1, seller("S2"), payment_ref="T1", now=SNAPSHOT)
    cases.record_payment(s, b1, seller("S1"), payment_ref="T1", idempotency_key="pay-b1", now=SNAPSHOT)
    again = cases.record_payment(s, b1, seller("S1"), payment_ref="T1", idempotency_key="pay-b1", now=SNAPSHOT)
    assert again.status == "paid"  # a retry returns the first result
    with pytest.raises(Forbidden):
        cases.confirm_claim(s, b1, consumer("B2"), now=SNAPSHOT)
    r1 = cases.confirm_claim(s, b1, consumer("B1"), now=SNAPSHOT)
    assert (r1.case_status, r1.shop_status) == ("banned", "banned")  # B2 still outstanding
    cases.record_payment(s, b2, seller("S1"), payment_ref="T2", now=SNAPSHOT)
    r2 = cases.confirm_claim(s, b2, consumer("B2"), idempotency_key="conf-b2", now=SNAPSHOT)
    assert (r2.case_status, r2.shop_status) == ("settled", "active")
    assert cases.confirm_claim(s, b2, consumer("B2"), idempotency_key="conf-b2", now=SNAPSHOT) == r2
    # listings unfrozen, back on sale and editable
    assert {li.listing_id for li in storefront_listings(s, shop_id="S1")} == {"S1-L0", "S1-L1"}
    edit_listing(s, seller("S1"), "S1-L0", title="genuine now", now=SNAPSHOT)
    view = cases.get_case(s, case_id)
    assert [e.action for e in view.events] == ["open", "ban", "settle"]
    assert view.events[-1].role == "system"
    assert verify_chain(s).ok


def test_step2_refusal_escalates_to_close(world: Session) -> None:
    s = world
    case_id = open_case(s, "S1")
    cases.decide(s, case_id, "ban", REVIEWER, reason="suspected", now=SNAPSHOT)
    with pytest.raises(Forbidden):
        cases.refuse_compensation(s, case_id, seller("S2"), now=SNAPSHOT)
    res = cases.refuse_compensation(s, case_id, seller("S1"), reason="will not pay", now=SNAPSHOT)
    assert (res.old_status, res.new_status, res.shop_status) == ("banned", "closed", "closed")
    assert all(li.shop_id != "S1" for li in storefront_listings(s, limit=10_000))
    assert cases.get_case(s, case_id).measure == "close"


def test_step2_missed_deadline_escalates_to_close(world: Session) -> None:
    s = world
    case_id = open_case(s, "S1")
    cases.decide(s, case_id, "ban", REVIEWER, reason="suspected", now=SNAPSHOT)
    claims = cases.claims_of(s, case_id)
    cases.record_payment(s, claims[0].claim_id, seller("S1"), payment_ref="T1", now=SNAPSHOT)
    assert cases.escalate_overdue(s, now=SNAPSHOT + timedelta(days=29)) == []
    done = cases.escalate_overdue(s, now=SNAPSHOT + timedelta(days=31))
    assert [d.case_id for d in done] == [case_id] and done[0].new_status == "closed"
    assert cases.escalate_overdue(s, now=SNAPSHOT + timedelta(days=32)) == []
    assert s.get(Shop, "S1").status == "closed"  # type: ignore[union-attr]


def test_ban_with_no_affected_consumer_settles_at_once(world: Session) -> None:
    s = world
    case_id = open_case(s, "S4")
    res = cases.decide(s, case_id, "ban", REVIEWER, reason="suspected", now=SNAPSHOT)
    assert (res.new_status, res.claims_created, res.follow_up[0].new_status) == ("banned", 0, "settled")
    assert s.get(Shop, "S4").status == "active"  # type: ignore[union-attr]


def test_dismissal_unfreezes(world: Session) -> None:
    s = world
    case_id = open_case(s, "S3")
    cases.decide(s, case_id, "dismiss", REVIEWER, reason="genuine discounter", now=SNAPSHOT)
    edit_listing(s, seller("S3"), "S3-L0", price=55.0, now=SNAPSHOT)
    # a later scoring opens a new case for the same shop only on new evidence: a score that rose past
    # the dismissed one (0.93) by the margin (0.05)
    assert route_scored(s, [scored("S3", 0.95, version="8")], now=SNAPSHOT).kept_decided == 1
    assert route_scored(s, [scored("S3", 0.99, version="9")], now=SNAPSHOT).reopened == 1


def test_appeal_and_reversal_of_a_closure_withdraws_disclosure(world: Session) -> None:
    from sanctions.disclosure import approve_disclosures, propose_disclosures
    from sanctions.public import closed_shops

    s = world
    case_id = open_case(s, "S1")
    cases.decide(s, case_id, "close", REVIEWER, reason="proof", evidence=[TEST_BUY], now=SNAPSHOT)
    propose_disclosures(s, ADMIN, basis="Art. 34 E-Commerce Law; approved in review board 2026-07", now=SNAPSHOT)
    approve_disclosures(s, ADMIN2, now=SNAPSHOT)
    assert [e.shop_id for e in closed_shops(s)] == ["S1"]
    with pytest.raises(Forbidden):
        cases.appeal(s, case_id, seller("S2"), reason="x", now=SNAPSHOT)
    ap = cases.appeal(s, case_id, seller("S1"), reason="the test buy was of another shop's item", now=SNAPSHOT)
    assert ap.new_status == "appealed_close"
    with pytest.raises(Forbidden):
        cases.decide_appeal(s, case_id, True, seller("S1"), reason="x", now=SNAPSHOT)
    res = cases.decide_appeal(s, case_id, True, REVIEWER2, reason="sample mix-up confirmed", now=SNAPSHOT)
    assert (res.new_status, res.shop_status, res.disclosures_withdrawn) == ("reversed", "active", 1)
    assert closed_shops(s) == []
    # kept with why, audited with the reason, announced: the same withdrawal as an admin's
    why = "appeal upheld: sample mix-up confirmed"
    (d,) = s.execute(select(Disclosure)).scalars()
    assert (d.status, d.withdrawn_reason) == ("withdrawn", why)
    (payload,) = s.execute(select(AuditEntry.payload).where(AuditEntry.action == "disclosure.withdraw")).scalars()
    assert json.loads(payload) == {"case_id": case_id, "shop_id": "S1", "reason": why}
    assert s.execute(select(OutboxMessage.topic).where(OutboxMessage.topic == "disclosure_withdrawn")).scalar_one()
    assert {li.listing_id for li in storefront_listings(s, shop_id="S1")} == {"S1-L0", "S1-L1"}
    assert [e.action for e in cases.get_case(s, case_id).events] == ["open", "close", "appeal", "reverse"]
    assert verify_chain(s).ok


def test_appeal_of_a_ban_reversal_voids_only_unpaid_claims(world: Session) -> None:
    s = world
    case_id = open_case(s, "S1")
    cases.decide(s, case_id, "ban", REVIEWER, reason="suspected", now=SNAPSHOT)
    claims = {c.buyer_id: c.claim_id for c in cases.claims_of(s, case_id)}
    cases.record_payment(s, claims["B1"], seller("S1"), payment_ref="T1", now=SNAPSHOT)
    cases.appeal(s, case_id, seller("S1"), reason="authorised reseller", now=SNAPSHOT)
    res = cases.decide_appeal(s, case_id, True, REVIEWER2, reason="authorisation verified", now=SNAPSHOT)
    assert (res.claims_voided, res.shop_status) == (1, "active")
    status = {c.buyer_id: c.status for c in cases.claims_of(s, case_id)}
    assert status == {"B1": "paid", "B2": "void"}


def test_rejected_appeal_restores_the_measure(world: Session) -> None:
    s = world
    case_id = open_case(s, "S1")
    cases.decide(s, case_id, "ban", REVIEWER, reason="suspected", now=SNAPSHOT)
    cases.appeal(s, case_id, seller("S1"), reason="no", now=SNAPSHOT)
    res = cases.decide_appeal(s, case_id, False, REVIEWER2, reason="evidence stands", now=SNAPSHOT)
    assert (res.new_status, res.shop_status) == ("banned", "banned")


def test_claims_confirmed_during_an_appeal_settle_when_it_is_rejected(world: Session) -> None:
    s = world
    case_id = open_case(s, "S1")
    cases.decide(s, case_id, "ban", REVIEWER, reason="suspected", now=SNAPSHOT)
    cases.appeal(s, case_id, seller("S1"), reason="no", now=SNAPSHOT)
    for c in cases.claims_of(s, case_id):
        cases.record_payment(s, c.claim_id, seller("S1"), payment_ref=f"T{c.claim_id}", now=SNAPSHOT)
        cases.confirm_claim(s, c.claim_id, consumer(c.buyer_id), now=SNAPSHOT)
    assert cases.get_case(s, case_id).status == "appealed_ban"  # no settling under appeal
    res = cases.decide_appeal(s, case_id, False, REVIEWER2, reason="evidence stands", now=SNAPSHOT)
    assert res.new_status == "banned" and res.follow_up[0].new_status == "settled"
    assert s.get(Shop, "S1").status == "active"  # type: ignore[union-attr]


def test_ban_evasion_opens_a_case_with_the_link_as_evidence(session: Session) -> None:
    s = session
    import_marketplace(s, build_marketplace([shop_row("OLD"), shop_row("OTHER")]))
    case_id = open_case(s, "OLD")
    cases.decide(s, case_id, "close", REVIEWER, reason="proof", evidence=[TEST_BUY], now=SNAPSHOT)
    # the same shopkeeper comes back with a new shop, same phone and bank account, new everything else
    new = shop_row("NEW", owner_phone="138-OLD", bank_account_hash="bank-OLD")
    report = import_marketplace(s, build_marketplace([shop_row("OLD"), shop_row("OTHER"), new]))
    assert report.new_shop_ids == ["NEW"]
    evasion = cases.list_cases(s, shop_id="NEW")
    assert len(evasion) == 1 and evasion[0].origin == "ban_evasion" and evasion[0].status == "open"
    link = evasion[0].evidence[0]
    assert link["kind"] == "linked_to_closed_shop" and link["ref"] == "OLD"
    assert link["data"]["fields"] == ["bank_account_hash", "owner_phone"]
    assert all(li.frozen for li in s.execute(select(Listing).where(Listing.shop_id == "NEW")).scalars())
    s.rollback()
    # running detection again opens nothing new; an unrelated shop never gets a case
    assert detect_ban_evasion(s, now=SNAPSHOT).opened == 0
    assert cases.list_cases(s, shop_id="OTHER") == []
    # dismissed once, the same link does not reopen
    cases.decide(s, evasion[0].case_id, "dismiss", REVIEWER, reason="family member, unrelated", now=SNAPSHOT)
    assert detect_ban_evasion(s, now=SNAPSHOT).opened == 0
    assert verify_chain(s).ok


def test_two_reviewers_one_wins_the_other_gets_conflict(world: Session, engine: Engine) -> None:
    case_id = open_case(world, "S1")
    seen = cases.get_case(world, case_id).version
    world.rollback()
    with Session(engine) as a, Session(engine) as b:
        cases.decide(a, case_id, "ban", REVIEWER, reason="a", expected_version=seen, now=SNAPSHOT)
        with pytest.raises(Conflict, match="version"):
            cases.decide(
                b,
                case_id,
                "close",
                Actor("rev-2", Role.REVIEWER),
                reason="b",
                evidence=[TEST_BUY],
                expected_version=seen,
                now=SNAPSHOT,
            )
    decisions = world.execute(
        select(func.count()).where(CaseEvent.case_id == case_id, CaseEvent.action.in_(["ban", "close"]))
    ).scalar_one()
    assert decisions == 1


def test_idempotency_keys(world: Session) -> None:
    s = world
    case_id = open_case(s, "S1")
    first = cases.decide(s, case_id, "ban", REVIEWER, reason="suspected", idempotency_key="d-1", now=SNAPSHOT)
    again = cases.decide(s, case_id, "ban", REVIEWER, reason="suspected", idempotency_key="d-1", now=SNAPSHOT)
    assert again == first
    assert s.execute(select(func.count()).select_from(Claim)).scalar_one() == 2
    with pytest.raises(Conflict, match="different request"):
        cases.decide(s, case_id, "dismiss", REVIEWER, reason="other", idempotency_key="d-1", now=SNAPSHOT)


def test_open_case_uniqueness_is_enforced_by_the_database(world: Session) -> None:
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    open_case(world, "S1")
    row = {"shop_id": "S1", "status": "open", "version": 1, "origin": "score", "reasons": [], "evidence": []}
    with pytest.raises(IntegrityError), world.begin():
        world.execute(insert(Case).values(**row, opened_at=SNAPSHOT, updated_at=SNAPSHOT))
