"""Public read models: what anyone may see, already masked (for /v1/public/... endpoints).

These never read the shops table's personal columns: a closed-shop entry is served from the
disclosure snapshot and masked again under the policy it was published with, so the default
policy can never leak a personal field in clear.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import NotFound
from marketplace.schema import PERSONAL_FIELDS
from sanctions.disclosure import MASK
from sanctions.models import Campaign, Disclosure, DisclosurePolicy, PublicCorrection
from sanctions.workflow import CampaignStatus, DisclosureStatus


class ClosedShopEntry(BaseModel):
    disclosure_id: int
    shop_id: str
    name: str
    category: str
    business_registration: str
    business_phone: str
    business_email: str
    measure: str
    measure_date: str
    #: the shopkeeper's personal fields: "***" unless the publication's policy allows the field
    personal: dict[str, str]
    policy: str
    published_at: datetime


class PublicAnnouncement(BaseModel):
    campaign_id: int
    title: str
    published_at: datetime
    announcement: dict[str, Any]
    html: str


def closed_shops(session: Session, *, limit: int = 1000, offset: int = 0) -> list[ClosedShopEntry]:
    """The published list of closed shops (withdrawn entries excluded), newest first."""
    rows = session.execute(
        select(Disclosure, DisclosurePolicy)
        .outerjoin(DisclosurePolicy, DisclosurePolicy.policy_id == Disclosure.policy_id)
        .where(Disclosure.status == DisclosureStatus.PUBLISHED)
        .order_by(Disclosure.published_at.desc(), Disclosure.disclosure_id)
        .limit(limit)
        .offset(offset)
    ).tuples()
    out = []
    for d, pol in rows:
        if d.published_at is None:  # never for a published entry (the approval sets it)
            continue
        allowed = set(pol.personal_fields) if pol is not None else set()
        e = d.entry
        personal = dict(e.get("personal") or {})  # type: ignore[call-overload]
        out.append(
            ClosedShopEntry(
                disclosure_id=d.disclosure_id,
                shop_id=str(e["shop_id"]),
                name=str(e["name"]),
                category=str(e["category"]),
                business_registration=str(e["business_registration"]),
                business_phone=str(e["business_phone"]),
                business_email=str(e["business_email"]),
                measure=str(e["measure"]),
                measure_date=str(e["measure_date"]),
                personal={f: (str(personal.get(f, MASK)) if f in allowed else MASK) for f in PERSONAL_FIELDS},
                policy=pol.name if pol is not None else "default",
                published_at=d.published_at,
            )
        )
    return out


class PublicCorrectionView(BaseModel):
    case_id: int
    shop_id: str
    shop_name: str
    text: str
    campaign_ids: list[int]
    published_at: datetime


def corrections(session: Session) -> list[PublicCorrectionView]:
    """Public corrections of measures reversed on appeal, newest first."""
    rows = session.execute(select(PublicCorrection).order_by(PublicCorrection.published_at.desc())).scalars()
    return [PublicCorrectionView.model_validate(r, from_attributes=True) for r in rows]


def _announcement(c: Campaign) -> PublicAnnouncement:
    assert c.published_at is not None and c.announcement is not None and c.html is not None
    return PublicAnnouncement(
        campaign_id=c.campaign_id, title=c.title, published_at=c.published_at, announcement=c.announcement, html=c.html
    )


def announcements(session: Session) -> list[PublicAnnouncement]:
    """Published campaign announcements, newest first."""
    rows = session.execute(
        select(Campaign).where(Campaign.status == CampaignStatus.PUBLISHED).order_by(Campaign.published_at.desc())
    ).scalars()
    return [_announcement(c) for c in rows]


def announcement(session: Session, campaign_id: int) -> PublicAnnouncement:
    c = session.get(Campaign, campaign_id)
    if c is None or c.status != CampaignStatus.PUBLISHED:
        raise NotFound(f"no published announcement {campaign_id}")
    return _announcement(c)


# -- the public pages (HTML): closed shops with search and paging, how buyers are compensated ------------

#: how the closed-shops page names a shopkeeper's personal field
PERSONAL_LABELS = {
    "owner_phone": ("店主电话", "Owner's phone"),
    "owner_email": ("店主邮箱", "Owner's email"),
    "owner_address": ("店主地址", "Owner's address"),
    "id_number_hash": ("身份证件", "ID document"),
}


def closed_shops_page(session: Session, *, q: str = "", page: int = 1, per_page: int = 20) -> str:
    """The closed shops as a page people read: a search over name, shop id and category (case-insensitive),
    ``per_page`` a page; a masked personal field reads "not published", never a placeholder."""
    from urllib.parse import urlencode

    from sanctions.templates import environment

    q = q.strip()[:200]
    entries = closed_shops(session, limit=10_000_000)
    if q:
        needle = q.casefold()
        entries = [e for e in entries if any(needle in v.casefold() for v in (e.name, e.shop_id, e.category))]
    pages = max(1, -(-len(entries) // per_page))
    page = min(max(page, 1), pages)

    def query(n: int) -> str:
        return urlencode({"q": q, "page": n} if q else {"page": n})

    return (
        environment()
        .get_template("closed_shops.html")
        .render(
            entries=entries[(page - 1) * per_page : page * per_page],
            total=len(entries),
            q=q,
            page_no=page,
            pages=pages,
            query=query,
            labels=PERSONAL_LABELS,
            mask=MASK,
        )
    )


def compensation_page(multiplier: float, minimum: float, window_days: int, deadline_days: int) -> str:
    """How an affected buyer is compensated, with this deployment's figures (its settings)."""
    from sanctions.templates import environment

    return (
        environment()
        .get_template("compensation.html")
        .render(
            multiplier_text=f"{multiplier:g}",
            minimum=minimum,
            window_days=window_days,
            deadline_days=deadline_days,
        )
    )
