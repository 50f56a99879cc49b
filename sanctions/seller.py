"""The seller's side, through the shop's signed seller link (no account): see the shop's cases and the
claims it owes, record payments, refuse to compensate, appeal with a statement and files.

The link names one shop and its keeper (``sanctions.notices.seller_link``; every notice to the seller
carries a fresh one). The actor is the shopkeeper (``Role.SELLER``), and every action is the workflow's
own use case (``cases.record_payment``, ``cases.refuse_compensation``, ``cases.appeal``): the same
transition tables, audit entries and four-eyes rules as anywhere else. A link used on another shop's
case or claim is refused (403), a forged one is 404, an expired one 410; doing a thing twice is the
workflow's 409.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Forbidden, InvalidTransition, NotFound
from sanctions import cases, notices
from sanctions.attachments import CheckedFile
from sanctions.models import Case, CaseEvent, Claim, Shop
from sanctions.schemas import AppealFileView, ClaimResult, TransitionResult
from sanctions.workflow import CASES, UNPAID_CLAIMS, Action, Actor, CaseStatus, ClaimStatus, Role

#: measures a seller may appeal, and the case statuses where the seller may act
_APPEALABLE = frozenset({CaseStatus.CLOSED, CaseStatus.BANNED})
#: the actions that close a case (its public reason says which)
_CLOSING = (Action.CLOSE, Action.REFUSE, Action.ESCALATE)


class SellerClaim(BaseModel):
    """A claim as the shop that owes it sees it: whom, for which orders, how much, by when."""

    claim_id: int
    case_id: int
    buyer_id: str
    order_ids: list[str]
    amount: float
    refund: float
    punitive: float
    status: str
    deadline_at: datetime
    paid_at: datetime | None
    payment_ref: str | None
    can_pay: bool


class SellerAppeal(BaseModel):
    at: datetime
    statement: str


class SellerCase(BaseModel):
    case_id: int
    status: str
    measure: str | None
    opened_at: datetime
    decided_at: datetime | None
    ended_at: datetime | None
    #: why the case opened (the model's reasons, or the link to a closed shop)
    reasons: list[str]
    #: the public reason of the measure in force (as the buyers read it), if any
    public_reason: str | None
    can_refuse: bool
    can_appeal: bool
    appeals: list[SellerAppeal]
    appeal_files: list[AppealFileView]
    claims: list[SellerClaim]
    #: yuan still unpaid on this case's claims
    owed: float


class SellerView(BaseModel):
    """What the shop's seller link shows: the shop, its cases newest first, what it owes in total."""

    shop_id: str
    shop_name: str
    shop_status: str
    owed: float
    cases: list[SellerCase]


def _shop(session: Session, token: str) -> Shop:
    holder = notices.read_seller_link(session, token)
    shop = session.get(Shop, holder.shop_id)
    if shop is None:
        raise notices.LinkRefused("this shop no longer exists", 404)
    if shop.shopkeeper_id != holder.shopkeeper_id:
        raise Forbidden(f"this link was made for another keeper of shop '{shop.shop_id}'")
    return shop


def shop_of(session: Session, token: str) -> str:
    """The shop a valid seller link names (LinkRefused / Forbidden otherwise): checked before files are read."""
    shop_id = _shop(session, token).shop_id
    session.rollback()
    return shop_id


def _actor(shop: Shop) -> Actor:
    return Actor(shop.shopkeeper_id, Role.SELLER)


def _own_case(session: Session, shop: Shop, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    if case.shop_id != shop.shop_id:
        raise Forbidden(f"this link is for shop '{shop.shop_id}'; case {case_id} is another shop's")
    return case


def _claim(c: Claim, case_status: str) -> SellerClaim:
    return SellerClaim(
        claim_id=c.claim_id,
        case_id=c.case_id,
        buyer_id=c.buyer_id,
        order_ids=list(c.order_ids),
        amount=c.amount_fen / 100,
        refund=c.refund_fen / 100,
        punitive=c.punitive_fen / 100,
        status=c.status,
        deadline_at=c.deadline_at,
        paid_at=c.paid_at,
        payment_ref=c.payment_ref,
        can_pay=c.status in (ClaimStatus.OWED, ClaimStatus.DISPUTED)
        and case_status in (CaseStatus.BANNED, CaseStatus.APPEALED_BAN),
    )


def _allowed(status: str, action: Action, actor: Actor) -> bool:
    try:
        CASES.check(status, action, actor)
    except (InvalidTransition, Forbidden):
        return False
    return True


def view(session: Session, token: str) -> SellerView:
    shop = _shop(session, token)
    actor = _actor(shop)
    rows = list(
        session.execute(select(Case).where(Case.shop_id == shop.shop_id).order_by(Case.case_id.desc())).scalars()
    )
    ids = [c.case_id for c in rows]
    claims: dict[int, list[Claim]] = {}
    appeals: dict[int, list[SellerAppeal]] = {}
    closed_by: dict[int, str] = {}
    if ids:
        for c in session.execute(select(Claim).where(Claim.case_id.in_(ids)).order_by(Claim.claim_id)).scalars():
            claims.setdefault(c.case_id, []).append(c)
        for e in session.execute(
            select(CaseEvent.case_id, CaseEvent.at, CaseEvent.reason, CaseEvent.action)
            .where(CaseEvent.case_id.in_(ids), CaseEvent.action.in_([a.value for a in (Action.APPEAL, *_CLOSING)]))
            .order_by(CaseEvent.event_id)
        ):
            if e.action == Action.APPEAL.value:
                appeals.setdefault(e.case_id, []).append(SellerAppeal(at=e.at, statement=e.reason))
            else:
                closed_by[e.case_id] = e.action
    out = []
    for case in rows:
        mine = [_claim(c, case.status) for c in claims.get(case.case_id, [])]
        measure_in_force = case.measure if case.status in _APPEALABLE or case.status.startswith("appealed") else None
        out.append(
            SellerCase(
                case_id=case.case_id,
                status=case.status,
                measure=case.measure,
                opened_at=case.opened_at,
                decided_at=case.decided_at,
                ended_at=case.ended_at,
                reasons=list(case.reasons or []),
                public_reason=_public_reason(case, measure_in_force, closed_by.get(case.case_id)),
                can_refuse=_allowed(case.status, Action.REFUSE, actor),
                can_appeal=_allowed(case.status, Action.APPEAL, actor),
                appeals=appeals.get(case.case_id, []),
                appeal_files=cases.appeal_files_of(session, case.case_id),
                claims=mine,
                owed=sum(c.amount for c in mine if c.status in UNPAID_CLAIMS),
            )
        )
    result = SellerView(
        shop_id=shop.shop_id,
        shop_name=shop.name,
        shop_status=shop.status,
        owed=sum(c.owed for c in out),
        cases=out,
    )
    session.rollback()
    return result


def _public_reason(case: Case, measure: str | None, closed_by: str | None) -> str | None:
    """The measure's public reason, as its buyers were told (``closed_by``: the action that closed the case)."""
    if measure is None:
        return None
    if measure == "ban":
        return notices.public_reason("ban")
    proofs = sorted({str(e.get("kind")) for e in case.evidence or [] if e.get("kind") in notices.PROOF_NAMES})
    return notices.public_reason(closed_by if closed_by in ("refuse", "escalate") else "close", proofs)


def pay(
    session: Session, token: str, claim_id: int, *, payment_ref: str, idempotency_key: str | None = None
) -> ClaimResult:
    """The shopkeeper records paying one of its shop's claims (``cases.record_payment``)."""
    shop = _shop(session, token)
    claim = session.get(Claim, claim_id)
    if claim is None:
        raise NotFound(f"claim {claim_id} does not exist")
    if claim.shop_id != shop.shop_id:
        raise Forbidden(f"this link is for shop '{shop.shop_id}'; claim {claim_id} is another shop's")
    actor = _actor(shop)
    session.rollback()
    return cases.record_payment(session, claim_id, actor, payment_ref=payment_ref, idempotency_key=idempotency_key)


def refuse(
    session: Session, token: str, case_id: int, *, reason: str, idempotency_key: str | None = None
) -> TransitionResult:
    """The shopkeeper refuses to compensate: the case is closed (``cases.refuse_compensation``)."""
    shop = _shop(session, token)
    _own_case(session, shop, case_id)
    actor = _actor(shop)
    session.rollback()
    text = reason.strip() or "seller refuses to compensate"
    return cases.refuse_compensation(session, case_id, actor, reason=text, idempotency_key=idempotency_key)


def appeal(
    session: Session,
    token: str,
    case_id: int,
    *,
    statement: str,
    files: Sequence[CheckedFile] = (),
    idempotency_key: str | None = None,
) -> TransitionResult:
    """The shopkeeper appeals the closure or ban of its case with a statement and files (``cases.appeal``)."""
    shop = _shop(session, token)
    _own_case(session, shop, case_id)
    actor = _actor(shop)
    session.rollback()
    return cases.appeal(session, case_id, actor, reason=statement, files=files, idempotency_key=idempotency_key)


def appeal_file(session: Session, token: str, case_id: int, file_id: int) -> tuple[str, str, bytes]:
    """A file of the shop's own appeal: (name, type, bytes)."""
    shop = _shop(session, token)
    _own_case(session, shop, case_id)
    out = cases.appeal_file(session, case_id, file_id)
    session.rollback()
    return out
