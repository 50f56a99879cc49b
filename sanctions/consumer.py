"""The consumer's side, through a claim's signed link (no account): see the claim, confirm receipt or
dispute it. The link names the claim and the buyer (``sanctions.notices``); the actor is that buyer.

A link is spent once its claim is confirmed: using it again is refused (409) saying when; an expired
link is 410, a forged one 404 (``notices.LinkRefused``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import InvalidTransition
from sanctions import cases, notices
from sanctions.models import Claim, Shop
from sanctions.schemas import ClaimResult
from sanctions.workflow import Actor, ClaimStatus, Role


class ClaimByLink(BaseModel):
    """What the link's page shows: the claim as its buyer sees it (no seller personal data)."""

    claim_id: int
    shop_id: str
    shop_name: str
    status: str
    amount: float
    refund: float
    punitive: float
    deadline_at: datetime
    paid_at: datetime | None
    payment_ref: str | None
    confirmed_at: datetime | None
    can_confirm: bool
    can_dispute: bool


def _claim(session: Session, token: str) -> tuple[Claim, Shop]:
    holder = notices.read_link(session, token)
    row = session.execute(
        select(Claim, Shop).join(Shop, Shop.shop_id == Claim.shop_id).where(Claim.claim_id == holder.claim_id)
    ).first()
    if row is None:
        raise notices.LinkRefused("this claim no longer exists", 404)
    claim, shop = row
    notices.check_holder(holder, claim.buyer_id)
    return claim, shop


def view(session: Session, token: str) -> ClaimByLink:
    claim, shop = _claim(session, token)
    out = ClaimByLink(
        claim_id=claim.claim_id,
        shop_id=shop.shop_id,
        shop_name=shop.name,
        status=claim.status,
        amount=claim.amount_fen / 100,
        refund=claim.refund_fen / 100,
        punitive=claim.punitive_fen / 100,
        deadline_at=claim.deadline_at,
        paid_at=claim.paid_at,
        payment_ref=claim.payment_ref,
        confirmed_at=claim.confirmed_at,
        can_confirm=claim.status == ClaimStatus.PAID,
        can_dispute=claim.status == ClaimStatus.PAID,
    )
    session.rollback()
    return out


def _spent(claim: Claim) -> None:
    if claim.status == ClaimStatus.CONFIRMED:
        at = claim.confirmed_at.strftime("%Y-%m-%d %H:%M UTC") if claim.confirmed_at else "earlier"
        raise notices.LinkRefused(f"this link was already used: claim {claim.claim_id} was confirmed on {at}", 409)
    if claim.status == ClaimStatus.VOID:
        raise notices.LinkRefused(f"claim {claim.claim_id} was voided (the measure was reversed on appeal)", 409)


def confirm(
    session: Session,
    token: str,
    *,
    simulated: bool = False,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> ClaimResult:
    """The buyer confirms receiving the payment (the last confirmation lifts the ban). ``simulated``
    marks the demo's stand-in consumer (recorded on the event and the audit entry)."""
    claim, _ = _claim(session, token)
    claim_id, buyer, status = claim.claim_id, claim.buyer_id, claim.status
    if idempotency_key is None or status != ClaimStatus.CONFIRMED:  # a keyed retry gets its first answer
        _spent(claim)
        if status != ClaimStatus.PAID:
            session.rollback()
            raise InvalidTransition(f"claim {claim_id} is {status}: the shop has not recorded a payment yet")
    session.rollback()
    who = Actor(buyer, Role.CONSUMER, simulated=simulated)
    return cases.confirm_claim(session, claim_id, who, idempotency_key=idempotency_key, now=now)


def dispute(session: Session, token: str) -> ClaimResult:
    """The buyer says the payment the shop recorded did not arrive."""
    claim, _ = _claim(session, token)
    _spent(claim)
    claim_id, buyer = claim.claim_id, claim.buyer_id
    session.rollback()
    return cases.dispute_claim(session, claim_id, Actor(buyer, Role.CONSUMER))
