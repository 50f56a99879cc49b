"""Step 3 — publicise and warn: campaigns, their announcement, the warning to every seller.

A campaign gathers decided cases (closed, banned, settled, or escalated) into a public
announcement: what was done, how many shops were closed and banned, compensation owed and
paid, by category; rendered as JSON and HTML. Publishing needs an admin and a campaign approved
by a second admin (four eyes: whoever drafted it may not approve it); it writes one
``publication`` outbox message and one ``warning`` message per seller on the marketplace (every
shop not closed), each delivery tracked in the outbox. The announcement carries a signed checkpoint of
the audit chain's head (:mod:`sanctions.checkpoint`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from core.errors import InvalidTransition, NotFound
from sanctions import checkpoint, tx
from sanctions.models import Campaign, CampaignCase, Case, Claim, OutboxMessage, PublicCorrection, Shop
from sanctions.workflow import (
    CAMPAIGNS,
    Actor,
    CampaignAction,
    CampaignStatus,
    CaseStatus,
    ClaimStatus,
    Role,
    require_role,
)

#: cases a campaign can announce: a measure was taken (even if later lifted by settlement)
ANNOUNCEABLE = (CaseStatus.CLOSED, CaseStatus.BANNED, CaseStatus.SETTLED)


class CampaignView(BaseModel):
    campaign_id: int
    title: str
    status: str
    version: int
    created_by: str
    created_at: datetime
    approved_by: str | None
    approved_at: datetime | None
    published_by: str | None
    published_at: datetime | None
    case_ids: list[int]
    announcement: dict[str, Any] | None = None
    warnings_sent: int = 0


def _view(session: Session, c: Campaign) -> CampaignView:
    ids = list(
        session.execute(
            select(CampaignCase.case_id).where(CampaignCase.campaign_id == c.campaign_id).order_by(CampaignCase.case_id)
        ).scalars()
    )
    warnings = 0
    if c.status == CampaignStatus.PUBLISHED:
        warnings = int(
            session.execute(
                select(func.count()).where(
                    OutboxMessage.kind == "warning", OutboxMessage.dedupe_key.like(f"warning:{c.campaign_id}:%")
                )
            ).scalar_one()
        )
    return CampaignView(
        campaign_id=c.campaign_id,
        title=c.title,
        status=c.status,
        version=c.version,
        created_by=c.created_by,
        created_at=c.created_at,
        approved_by=c.approved_by,
        approved_at=c.approved_at,
        published_by=c.published_by,
        published_at=c.published_at,
        case_ids=ids,
        announcement=c.announcement,
        warnings_sent=warnings,
    )


def _campaign(session: Session, campaign_id: int) -> Campaign:
    c = session.get(Campaign, campaign_id, populate_existing=True)
    if c is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    return c


def _move(ch: tx.Change, campaign_id: int, action: CampaignAction) -> Campaign:
    """Load the campaign and move it by ``action`` through its table (``CAMPAIGNS``), version bumped."""
    c = _campaign(ch.session, campaign_id)
    ch.step(CAMPAIGNS, c, action, what=f"campaign {campaign_id}")
    c.version += 1
    return c


def create_campaign(
    session: Session,
    actor: Actor,
    *,
    title: str,
    case_ids: Sequence[int] | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> CampaignView:
    """A draft campaign over ``case_ids`` (default: every announceable case not yet in a campaign)."""
    require_role(actor, Role.REVIEWER, Role.ADMIN, what="create a campaign")
    if not title.strip():
        raise InvalidTransition("a campaign needs a title")

    def work(ch: tx.Change) -> CampaignView:
        if case_ids is None:
            taken = select(CampaignCase.case_id)
            ids = list(
                session.execute(
                    select(Case.case_id)
                    .where(Case.status.in_([s.value for s in ANNOUNCEABLE]), Case.case_id.not_in(taken))
                    .order_by(Case.case_id)
                ).scalars()
            )
        else:
            ids = sorted(set(case_ids))
            found = {
                cid: status
                for cid, status in session.execute(select(Case.case_id, Case.status).where(Case.case_id.in_(ids)))
            }
            missing = [i for i in ids if i not in found]
            if missing:
                raise NotFound(f"cases do not exist: {missing[:10]}")
            bad = [i for i in ids if found[i] not in ANNOUNCEABLE]
            if bad:
                raise InvalidTransition(
                    f"cases {bad[:10]} have no measure to announce (status must be closed, banned or settled)"
                )
        if not ids:
            raise InvalidTransition("no decided case to put in a campaign")
        c = Campaign(
            title=title, status=CampaignStatus.DRAFT.value, version=1, created_by=actor.actor_id, created_at=ch.now
        )
        session.add(c)
        session.flush()
        session.execute(insert(CampaignCase), [{"campaign_id": c.campaign_id, "case_id": i} for i in ids])
        ch.audit("campaign.create", "campaign", c.campaign_id, {"title": title, "cases": ids})
        return _view(session, c)

    request = {"title": title, "cases": sorted(case_ids) if case_ids is not None else None, "actor": actor.actor_id}
    return tx.use_case(session, actor, "campaign.create", request, CampaignView, work, key=idempotency_key, now=now)


def approve_campaign(
    session: Session, campaign_id: int, actor: Actor, *, idempotency_key: str | None = None, now: datetime | None = None
) -> CampaignView:
    """A second admin approves a draft campaign for publication (recorded: who, when).

    Four eyes: the person who drafted the campaign may not approve it (Forbidden, nothing written)."""
    require_role(actor, Role.ADMIN, what="approve a campaign")

    def work(ch: tx.Change) -> CampaignView:
        c = _campaign(session, campaign_id)
        if c.status == CampaignStatus.DRAFT:
            tx.four_eyes(session, actor, [c.created_by], what=f"approve campaign {campaign_id}", first_did="drafted it")
        c = _move(ch, campaign_id, CampaignAction.APPROVE)
        c.approved_by = actor.actor_id
        c.approved_at = ch.now
        ch.audit("campaign.approve", "campaign", campaign_id, {"drafted_by": c.created_by})
        session.flush()
        return _view(session, c)

    request = {"campaign_id": campaign_id, "actor": actor.actor_id}
    return tx.use_case(session, actor, "campaign.approve", request, CampaignView, work, key=idempotency_key, now=now)


def build_announcement(session: Session, campaign: Campaign, case_ids: Sequence[int]) -> dict[str, Any]:
    """The announcement's facts, by category: shops closed and banned, compensation owed and paid."""
    rows = session.execute(
        select(Case.case_id, Case.status, Case.measure, Shop.category, Shop.shop_id, Shop.name)
        .join(Shop, Shop.shop_id == Case.shop_id)
        .where(Case.case_id.in_(list(case_ids)))
    ).all()
    cats: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "shops_closed": 0,
            "shops_banned": 0,
            "shops_ban_lifted": 0,
            "claims": 0,
            "consumers_compensated": 0,
            "compensation_owed": 0.0,
            "compensation_paid": 0.0,
        }
    )
    closed_shops = []
    for _cid, status, _measure, category, shop_id, name in rows:
        if status == CaseStatus.CLOSED:
            cats[category]["shops_closed"] += 1
            closed_shops.append({"shop_id": shop_id, "name": name, "category": category})
        elif status == CaseStatus.SETTLED:  # every buyer confirmed: the ban is lifted, not pending
            cats[category]["shops_ban_lifted"] += 1
        else:
            cats[category]["shops_banned"] += 1
    claims = session.execute(
        select(Claim.category, Claim.status, Claim.amount_fen).where(
            Claim.case_id.in_(list(case_ids)), Claim.status != ClaimStatus.VOID
        )
    ).all()
    for category, status, fen in claims:
        c = cats[category]
        c["claims"] += 1
        c["compensation_owed"] += fen / 100
        if status in (ClaimStatus.PAID, ClaimStatus.CONFIRMED):
            c["compensation_paid"] += fen / 100
        if status == ClaimStatus.CONFIRMED:
            c["consumers_compensated"] += 1
    by_category = {k: {**v, "category": k} for k, v in sorted(cats.items())}
    totals = {
        key: sum(v[key] for v in by_category.values())
        for key in (
            "shops_closed",
            "shops_banned",
            "shops_ban_lifted",
            "claims",
            "consumers_compensated",
            "compensation_owed",
            "compensation_paid",
        )
    }
    for key in ("compensation_owed", "compensation_paid"):
        totals[key] = round(totals[key], 2)
        for v in by_category.values():
            v[key] = round(v[key], 2)
    return {
        "campaign_id": campaign.campaign_id,
        "title": campaign.title,
        "what_was_done": (
            "Shops proven to sell counterfeits were closed and their listings withdrawn; suspected shops "
            "were banned until every affected consumer is compensated (refund plus a multiple of the price)."
        ),
        "totals": totals,
        "by_category": list(by_category.values()),
        "closed_shops": sorted(closed_shops, key=lambda r: r["shop_id"]),
        "currency": "CNY",
    }


def render_announcement_html(announcement: dict[str, Any], published_at: datetime) -> str:
    from sanctions.templates import environment

    return environment().get_template("announcement.html").render(a=announcement, published_at=published_at)


def correct_after_reversal(ch: tx.Change, case_id: int, shop_id: str, shop_name: str, *, disclosed: bool) -> bool:
    """After a measure was reversed on appeal: every published announcement that counted the case is
    rebuilt without it (JSON and HTML, marked corrected), and, if the shop was publicly named (in an
    announcement or the disclosure list), a public correction is published (``public_corrections``,
    outbox ``publication``/``correction``). Returns whether a correction was published."""
    session = ch.session
    published = list(
        session.execute(
            select(Campaign)
            .join(CampaignCase, CampaignCase.campaign_id == Campaign.campaign_id)
            .where(CampaignCase.case_id == case_id, Campaign.status == CampaignStatus.PUBLISHED)
            .order_by(Campaign.campaign_id)
        ).scalars()
    )
    named = disclosed
    for c in published:
        listed: list[dict[str, Any]] = list((c.announcement or {}).get("closed_shops") or [])  # type: ignore[call-overload]
        named = named or any(r.get("shop_id") == shop_id for r in listed)
        rows = session.execute(
            select(CampaignCase.case_id, Case.status)
            .join(Case, Case.case_id == CampaignCase.case_id)
            .where(CampaignCase.campaign_id == c.campaign_id)
        ).all()
        standing = [cid for cid, status in rows if status != CaseStatus.REVERSED]
        announcement = build_announcement(session, c, standing)
        announcement["corrected_at"] = ch.now.isoformat(timespec="seconds")
        announcement["measures_reversed"] = len(rows) - len(standing)
        assert c.published_at is not None
        c.announcement = announcement
        c.html = render_announcement_html(announcement, c.published_at)
        ch.audit("campaign.correct", "campaign", c.campaign_id, {"case_id": case_id, "totals": announcement["totals"]})
    if not named:
        return False
    text = (
        f"Correction: the measure against shop {shop_name} ({shop_id}) was reversed on appeal on "
        f"{ch.now.date().isoformat()}. The shop was restored and is no longer listed as a closed shop."
    )
    session.add(
        PublicCorrection(
            case_id=case_id,
            shop_id=shop_id,
            shop_name=shop_name,
            text=text,
            campaign_ids=[c.campaign_id for c in published],
            published_at=ch.now,
        )
    )
    ch.outbox(
        dedupe_key=f"case:{case_id}:correction",
        kind="publication",
        recipient="public",
        topic="correction",
        payload={"case_id": case_id, "shop_id": shop_id, "text": text},
    )
    ch.audit(
        "correction.publish", "case", case_id, {"shop_id": shop_id, "campaigns": [c.campaign_id for c in published]}
    )
    return True


WARNING_TEXT = (
    "Selling counterfeit goods on this marketplace leads to closure of the shop, withdrawal of every "
    "listing, compensation of every affected consumer (refund plus a multiple of the price) and public "
    "disclosure. See the announcement of campaign {campaign_id}: {title}."
)


def publish_campaign(
    session: Session, campaign_id: int, actor: Actor, *, idempotency_key: str | None = None, now: datetime | None = None
) -> CampaignView:
    """An admin publishes an approved campaign: announcement frozen, publication and warnings queued."""
    require_role(actor, Role.ADMIN, what="publish a campaign")

    def work(ch: tx.Change) -> CampaignView:
        c = _move(ch, campaign_id, CampaignAction.PUBLISH)
        ids = list(
            session.execute(select(CampaignCase.case_id).where(CampaignCase.campaign_id == campaign_id)).scalars()
        )
        announcement = build_announcement(session, c, ids)
        # the chain's head as it stands before this publication, signed (sanctions.checkpoint)
        signer = checkpoint.Signer.resolve(session, ch.now)
        announcement["checkpoint"] = checkpoint.checkpoint(session, signer, ch.now).model_dump()
        c.announcement = announcement
        c.html = render_announcement_html(announcement, ch.now)
        c.published_by = actor.actor_id
        c.published_at = ch.now
        session.flush()
        ch.outbox(
            dedupe_key=f"campaign:{campaign_id}:announcement",
            kind="publication",
            recipient="public",
            topic="announcement",
            payload={"campaign_id": campaign_id, "title": c.title, "totals": announcement["totals"]},
        )
        ch.send_outbox()  # the announcement before the warnings that cite it
        sellers = _queue_warnings(session, campaign_id, c.title, ch.now)
        ch.audit(
            "campaign.publish",
            "campaign",
            campaign_id,
            {"totals": announcement["totals"], "warnings": sellers, "cases": sorted(ids)},
        )
        return _view(session, c)

    request = {"campaign_id": campaign_id, "actor": actor.actor_id}
    return tx.use_case(session, actor, "campaign.publish", request, CampaignView, work, key=idempotency_key, now=now)


def _queue_warnings(session: Session, campaign_id: int, title: str, now: datetime) -> int:
    """One ``warning`` outbox message per seller still on the marketplace (every shop not closed),
    inserted in batches of 10,000 (not held in the Change); returns how many."""
    text = WARNING_TEXT.format(campaign_id=campaign_id, title=title)
    sellers = session.execute(
        select(Shop.shop_id, Shop.shopkeeper_id).where(Shop.status != "closed").order_by(Shop.shop_id)
    ).all()
    batch: list[dict[str, Any]] = []
    for shop_id, keeper in sellers:
        batch.append(
            {
                "dedupe_key": f"warning:{campaign_id}:{shop_id}",
                "kind": "warning",
                "recipient": keeper,
                "topic": "counterfeit_warning",
                "payload": {"campaign_id": campaign_id, "shop_id": shop_id, "text": text},
                "created_at": now,
                "status": "pending",
                "attempts": 0,
            }
        )
        if len(batch) >= 10_000:
            session.execute(insert(OutboxMessage), batch)
            batch = []
    if batch:
        session.execute(insert(OutboxMessage), batch)
    return len(sellers)


def get_campaign(session: Session, campaign_id: int) -> CampaignView:
    return _view(session, _campaign(session, campaign_id))


def campaign_html(session: Session, campaign_id: int) -> str:
    c = _campaign(session, campaign_id)
    if c.html is None:
        raise InvalidTransition(f"campaign {campaign_id} is {c.status}; its HTML exists once published")
    return c.html


def list_campaigns(session: Session) -> list[CampaignView]:
    rows = session.execute(select(Campaign).order_by(Campaign.campaign_id)).scalars().all()
    return [_view(session, c) for c in rows]
