"""Case use cases: decide (steps 1 and 2), compensation claims, refusal and deadlines, appeals.

Each public function is one use case (``tx.use_case``: clock, actor, idempotent unit of work)
whose work reads load, check, change, record: load the case (and its version), check the actor's
role and the transition against the lifecycle's table (``workflow.CASES``, ``workflow.CLAIMS``),
update, append a case event carrying the score, threshold and model version behind it, write
outbox messages for whatever leaves the system, and append to the audit chain. They take a
``Session`` and return pydantic results, so an HTTP handler only parses, authorises and presents.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from core.errors import Conflict, Forbidden, InvalidTransition, NotFound
from core.settings import Settings, get_settings
from sanctions import attachments, bulk, campaigns, disclosure, notices, routing, storefront, tx
from sanctions.models import AppealFile, Case, CaseEvent, Claim, Disclosure, Listing, Order, Shop
from sanctions.schemas import (
    PROOF_KINDS,
    AppealFileView,
    CaseEventView,
    CaseView,
    ClaimResult,
    ClaimView,
    Evidence,
    TransitionResult,
)
from sanctions.workflow import (
    CASES,
    CLAIMS,
    LIVE_DISCLOSURES,
    OUTSTANDING_CLAIMS,
    SYSTEM,
    UNPAID_CLAIMS,
    Action,
    Actor,
    CaseStatus,
    ClaimAction,
    ClaimStatus,
    Role,
    require_role,
)


@dataclass(frozen=True)
class CompensationRules:
    """Step 2's money rules (see docs/sanctions.md for the formula)."""

    multiplier: float = 3.0
    minimum_fen: int = 50_000
    window_days: int = 180
    deadline_days: int = 30

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> CompensationRules:
        s = settings or get_settings()
        return cls(
            multiplier=s.compensation_multiplier,
            minimum_fen=round(s.compensation_minimum * 100),
            window_days=s.affected_window_days,
            deadline_days=s.compensation_deadline_days,
        )

    def claim(self, orders: Sequence[tuple[int, bool]]) -> tuple[int, int, int, int]:
        """(paid total, refund, punitive, amount) in fen for one consumer's affected orders.

        ``orders`` holds (amount paid in fen, already refunded). refund = what was paid and not
        yet refunded; punitive = max(multiplier × everything paid, minimum); amount = both.
        """
        paid = sum(a for a, _ in orders)
        refund = sum(a for a, refunded in orders if not refunded)
        punitive = max(round(self.multiplier * paid), self.minimum_fen)
        return paid, refund, punitive, refund + punitive


# --------------------------------------------------------------------------- loading


def _case(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id, populate_existing=True)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    return case


def _case_and_shop(session: Session, case_id: int) -> tuple[Case, Shop]:
    """The case (fresh from the database, with its version) and its shop, in one query."""
    row = session.execute(
        select(Case, Shop)
        .join(Shop, Shop.shop_id == Case.shop_id)
        .where(Case.case_id == case_id)
        .execution_options(populate_existing=True)
    ).first()
    if row is None:
        raise NotFound(f"case {case_id} does not exist")
    return row[0], row[1]


def _shop(session: Session, shop_id: str) -> Shop:
    shop = session.get(Shop, shop_id)
    if shop is None:
        raise NotFound(f"shop '{shop_id}' does not exist")
    return shop


def _require_owner(actor: Actor, shop: Shop) -> None:
    if actor.role is not Role.SELLER or actor.actor_id != shop.shopkeeper_id:
        raise Forbidden(
            f"only the shopkeeper of shop '{shop.shop_id}' may do this, not {actor.role} '{actor.actor_id}'"
        )


# --------------------------------------------------------------------------- the one mutation path


def _transition(
    ch: tx.Change,
    case: Case,
    action: Action,
    *,
    actor: Actor | None = None,
    reason: str,
    evidence: Sequence[Evidence] = (),
    changes: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """Move ``case`` by ``action`` (checked against the table), record the event; returns (old, new).

    The flush is ``UPDATE cases … WHERE version = <loaded>``: a concurrent change that committed
    first makes it fail with StaleDataError, which ``tx.run`` turns into Conflict.
    """
    who = actor or ch.actor
    old, new = ch.step(CASES, case, action, what="a case", actor=who)
    case.version = case.version + 1
    case.updated_at = ch.now
    for name, value in (changes or {}).items():
        setattr(case, name, value)
    ch.session.flush()
    ev = [e.model_dump() for e in evidence]
    event = tx.case_event(
        case.case_id,
        who,
        ch.now,
        action.value,
        old,
        new,
        reason,
        evidence=ev,
        score=case.score,
        threshold=case.threshold,
        model_name=case.model_name,
        model_version=case.model_version,
    )
    bulk.insert_rows(ch.session, _EVENTS, [event])
    payload: dict[str, Any] = {
        "case_id": case.case_id,
        "shop_id": case.shop_id,
        "old_status": old,
        "new_status": new,
        "version": case.version,
        "reason": reason,
        "score": case.score,
        "threshold": case.threshold,
        "model_version": case.model_version,
        "evidence": ev,
    }
    ch.audit(f"case.{action.value}", "case", case.case_id, payload, actor=who)
    return old, new


def _set_shop_status(ch: tx.Change, shop: Shop, status: str) -> None:
    if shop.status != status:
        ch.audit("shop.status", "shop", shop.shop_id, {"old": shop.status, "new": status})
        shop.status = status
        shop.status_changed_at = ch.now


_EVENTS = cast(Table, CaseEvent.__table__)
_APPEAL_FILES = cast(Table, AppealFile.__table__)
#: at most this many files go with one appeal
MAX_APPEAL_FILES = 5
_LISTINGS = cast(Table, Listing.__table__)
_SET_LISTINGS = (
    update(_LISTINGS)
    .where(_LISTINGS.c.shop_id == bindparam("b_shop"))
    .values(frozen=bindparam("b_frozen"), withdrawn=bindparam("b_withdrawn"))
)


def _set_listings(session: Session, shop_id: str, *, frozen: bool, withdrawn: bool) -> int:
    """Freeze/withdraw (or restore) all of a shop's listings; Core, no ORM bookkeeping."""
    res = session.connection().execute(_SET_LISTINGS, {"b_shop": shop_id, "b_frozen": frozen, "b_withdrawn": withdrawn})
    return int(getattr(res, "rowcount", 0) or 0)


def _notify_seller(ch: tx.Change, case: Case, shop: Shop, topic: str, detail: dict[str, Any]) -> None:
    ch.outbox(
        dedupe_key=f"case:{case.case_id}:v{case.version}:{topic}",
        kind="notify_seller",
        recipient=shop.shopkeeper_id,
        topic=topic,
        payload={
            "case_id": case.case_id,
            "shop_id": shop.shop_id,
            "shop_name": shop.name,
            **detail,
            # where the shopkeeper sees its cases and claims, pays, refuses or appeals (no account)
            "link": notices.seller_link(ch.session, shop.shop_id, shop.shopkeeper_id),
        },
    )


def _close(ch: tx.Change, case: Case, shop: Shop, *, why: str = "close") -> None:
    """Step 1's effect: shop closed, page and listings withdrawn, data kept frozen, the buyers told
    (``why``: close, refuse or escalate); and, whatever path closed it, shops linked to it are
    checked for ban evasion in the same transaction."""
    _set_shop_status(ch, shop, "closed")
    n = _set_listings(ch.session, shop.shop_id, frozen=True, withdrawn=True)
    case.measure = "close"
    case.decided_at = case.decided_at or ch.now
    case.ended_at = ch.now
    ch.audit("listings.withdraw", "shop", shop.shop_id, {"listings": n, "case_id": case.case_id})
    storefront.record_change(ch, shop.shop_id, storefront.REMOVED, case.case_id, "closed")
    _notify_seller(ch, case, shop, "shop_closed", {"measure": "close"})
    proofs = sorted({str(e.get("kind")) for e in case.evidence or [] if e.get("kind") in PROOF_KINDS})
    _notify_buyers_of_closure(ch, case, shop, notices.public_reason(why, proofs), CompensationRules.from_settings())
    ch.session.flush()
    routing.evasion_after_closure(ch, [shop.shop_id])


def _end_case_restoring(ch: tx.Change, case: Case, shop: Shop) -> None:
    """A case that ends without a standing measure: shop active, listings back and editable."""
    _set_shop_status(ch, shop, "active")
    n = _set_listings(ch.session, shop.shop_id, frozen=False, withdrawn=False)
    case.ended_at = ch.now
    ch.audit("listings.restore", "shop", shop.shop_id, {"listings": n, "case_id": case.case_id})
    storefront.record_change(ch, shop.shop_id, storefront.VISIBLE, case.case_id, str(case.status))


def _result(case: Case, shop: Shop, old: str, action: Action, new: str | None = None, **extra: Any) -> TransitionResult:
    """What ``action`` did: ``new`` is the status it led to (a follow-up, e.g. settling, may move on)."""
    return TransitionResult(
        case_id=case.case_id,
        action=action.value,
        old_status=old,
        new_status=new or case.status,
        version=case.version,
        shop_id=shop.shop_id,
        shop_status=shop.status,
        **extra,
    )


def _check_version(case: Case, expected_version: int | None) -> None:
    if expected_version is not None and case.version != expected_version:
        raise Conflict(
            f"case {case.case_id} is at version {case.version} (status {case.status}), "
            f"not {expected_version}: someone else changed it first"
        )


# --------------------------------------------------------------------------- step 2: claims


def _create_claims(
    ch: tx.Change, case: Case, shop: Shop, rules: CompensationRules, listing_ids: Sequence[str] | None
) -> list[dict[str, Any]]:
    """One claim per affected consumer (set-based: one query, one multi-row insert)."""
    since = ch.now - timedelta(days=rules.window_days)
    q = select(Order.buyer_id, Order.order_id, Order.amount, Order.refunded_at).where(
        Order.shop_id == shop.shop_id, Order.ordered_at >= since, Order.ordered_at <= ch.now
    )
    if listing_ids is not None:
        q = q.where(Order.listing_id.in_(list(listing_ids)))
    by_buyer: dict[str, list[tuple[str, int, bool]]] = defaultdict(list)
    for buyer, order_id, amount, refunded_at in ch.session.execute(q.order_by(Order.buyer_id, Order.order_id)):
        by_buyer[buyer].append((order_id, round(float(amount) * 100), refunded_at is not None))
    if not by_buyer:
        return []
    deadline = ch.now + timedelta(days=rules.deadline_days)
    rows: list[dict[str, Any]] = []
    for buyer, orders in by_buyer.items():
        paid, refund, punitive, amount = rules.claim([(a, r) for _, a, r in orders])
        rows.append(
            {
                "case_id": case.case_id,
                "shop_id": shop.shop_id,
                "buyer_id": buyer,
                "order_ids": [o for o, _, _ in orders],
                "category": shop.category,
                "paid_total_fen": paid,
                "refund_fen": refund,
                "punitive_fen": punitive,
                "amount_fen": amount,
                "status": ClaimStatus.OWED.value,
                "created_at": ch.now,
                "deadline_at": deadline,
            }
        )
    table = cast(Table, Claim.__table__)
    ids = ch.session.execute(insert(table).returning(table.c.claim_id, sort_by_parameter_order=True), rows).scalars()
    for row, claim_id in zip(rows, ids, strict=True):
        row["claim_id"] = int(claim_id)
        ch.outbox(
            dedupe_key=f"claim:{claim_id}:created",
            kind="notify_buyer",
            recipient=row["buyer_id"],
            topic="compensation_owed",
            payload=_buyer_notice(
                ch, case, shop, "ban", notices.public_reason("ban"), row["order_ids"], {**row, "claim_id": claim_id}
            ),
        )
        ch.audit(
            "claim.create",
            "claim",
            claim_id,
            {"case_id": case.case_id, "buyer_id": row["buyer_id"], "fen": row["amount_fen"]},
        )
    return rows


def _owed(claim: dict[str, Any]) -> dict[str, Any]:
    return {
        "claim_id": int(claim["claim_id"]),
        "amount": claim["amount_fen"] / 100,
        "refund": claim["refund_fen"] / 100,
        "punitive": claim["punitive_fen"] / 100,
        "currency": "CNY",
    }


def _buyer_notice(
    ch: tx.Change,
    case: Case,
    shop: Shop,
    measure: str,
    reason: str,
    order_ids: Sequence[str],
    claim: dict[str, Any] | None,
) -> dict[str, Any]:
    """A notice to one affected buyer: the shop (id and name only), the public reason, what they are
    owed and how to get it, the deadline and their claim link (see ``sanctions.notices``)."""
    return {
        "case_id": case.case_id,
        "shop_id": shop.shop_id,
        "shop_name": shop.name,
        "measure": measure,
        "public_reason": reason,
        "orders": list(order_ids),
        "owed": _owed(claim) if claim else None,
        "how": notices.HOW_TO_CLAIM if claim else notices.NOTHING_OWED,
        "deadline_at": claim["deadline_at"].isoformat() if claim else None,
        "link": notices.claim_link(ch.session, int(claim["claim_id"]), claim["buyer_id"]) if claim else None,
        # kept for receivers of the earlier payload
        **({"claim_id": int(claim["claim_id"]), "amount": claim["amount_fen"] / 100} if claim else {}),
    }


def _notify_buyers_of_closure(ch: tx.Change, case: Case, shop: Shop, reason: str, rules: CompensationRules) -> int:
    """Every buyer with an order at the shop in the affected window hears of the closure; those with
    an outstanding claim of this case get it again with their link."""
    since = ch.now - timedelta(days=rules.window_days)
    orders: dict[str, list[str]] = defaultdict(list)
    for buyer, order_id in ch.session.execute(
        select(Order.buyer_id, Order.order_id)
        .where(Order.shop_id == shop.shop_id, Order.ordered_at >= since, Order.ordered_at <= ch.now)
        .order_by(Order.buyer_id, Order.order_id)
    ):
        orders[buyer].append(order_id)
    claims = {
        c.buyer_id: c
        for c in ch.session.execute(
            select(Claim).where(Claim.case_id == case.case_id, Claim.status.in_(sorted(OUTSTANDING_CLAIMS)))
        ).scalars()
    }
    for buyer in sorted(set(orders) | set(claims)):
        c = claims.get(buyer)
        row = None
        if c is not None:
            row = {
                "claim_id": c.claim_id,
                "buyer_id": c.buyer_id,
                "amount_fen": c.amount_fen,
                "refund_fen": c.refund_fen,
                "punitive_fen": c.punitive_fen,
                "deadline_at": c.deadline_at,
            }
        ch.outbox(
            dedupe_key=f"case:{case.case_id}:closed:buyer:{buyer}",
            kind="notify_buyer",
            recipient=buyer,
            topic="shop_closed",
            payload=_buyer_notice(
                ch, case, shop, "close", reason, orders.get(buyer) or list(c.order_ids if c else []), row
            ),
        )
    return len(set(orders) | set(claims))


def _maybe_settle(ch: tx.Change, case: Case, shop: Shop) -> TransitionResult | None:
    """Lift the ban when every (non-void) claim is confirmed."""
    if case.status != CaseStatus.BANNED:
        return None
    outstanding = ch.session.execute(
        select(func.count()).where(Claim.case_id == case.case_id, Claim.status.in_(sorted(OUTSTANDING_CLAIMS)))
    ).scalar_one()
    if outstanding:
        return None
    old, _ = _transition(ch, case, Action.SETTLE, actor=SYSTEM, reason="every affected consumer confirmed settlement")
    _end_case_restoring(ch, case, shop)
    _notify_seller(ch, case, shop, "ban_lifted", {})
    return _result(case, shop, old, Action.SETTLE)


# --------------------------------------------------------------------------- decisions


def decide(
    session: Session,
    case_id: int,
    action: Action | str,
    actor: Actor,
    *,
    reason: str,
    evidence: Sequence[Evidence] = (),
    suspect_listing_ids: Sequence[str] | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    rules: CompensationRules | None = None,
) -> TransitionResult:
    """A reviewer's decision on an open case: ``close`` (step 1, needs proof), ``ban`` (step 2) or ``dismiss``.

    ``ban`` creates one claim per affected consumer (orders of ``suspect_listing_ids``, or of all
    the shop's listings, within the window) and notifies them; with no affected consumer the ban
    is settled at once.
    """
    act = Action(action)
    if act not in (Action.CLOSE, Action.BAN, Action.DISMISS):
        raise InvalidTransition(f"'{act.value}' is not a decision; decide with close, ban or dismiss")
    if not reason.strip():
        raise InvalidTransition("a decision needs a reason")
    evidence = list(evidence)
    if act is Action.CLOSE:
        proofs = [e for e in evidence if e.kind in PROOF_KINDS and (e.kind != "reviewer_confirmed" or e.ref.strip())]
        if not proofs:
            raise InvalidTransition(
                "closing a shop needs proof: evidence of kind test_buy, brand_owner, "
                "or reviewer_confirmed citing what was examined (ref)"
            )
    money = rules or CompensationRules.from_settings()
    request = {
        "case_id": case_id,
        "action": act.value,
        "actor": actor.actor_id,
        "reason": reason,
        "evidence": [e.model_dump() for e in evidence],
        "listings": sorted(suspect_listing_ids) if suspect_listing_ids is not None else None,
        "expected_version": expected_version,
    }

    def work(ch: tx.Change) -> TransitionResult:
        case, shop = _case_and_shop(session, case_id)
        _check_version(case, expected_version)
        changes: dict[str, Any] = {
            "evidence": [*case.evidence, *(e.model_dump() for e in evidence)],
            "decided_at": ch.now,
            "measure": {Action.CLOSE: "close", Action.BAN: "ban"}.get(act),
        }
        if act is not Action.BAN:
            changes["ended_at"] = ch.now
        old, new = _transition(ch, case, act, reason=reason, evidence=evidence, changes=changes)
        extra: dict[str, Any] = {}
        follow: list[TransitionResult] = []
        if act is Action.CLOSE:
            _close(ch, case, shop)
        elif act is Action.BAN:
            _set_shop_status(ch, shop, "banned")
            storefront.record_change(ch, shop.shop_id, storefront.NOT_PURCHASABLE, case.case_id, "banned")
            claims = _create_claims(ch, case, shop, money, suspect_listing_ids)
            extra = {"claims_created": len(claims), "compensation_owed": sum(c["amount_fen"] for c in claims) / 100}
            _notify_seller(ch, case, shop, "shop_banned", {"claims": len(claims), "owed": extra["compensation_owed"]})
            settled = _maybe_settle(ch, case, shop) if not claims else None
            if settled is not None:
                follow.append(settled)
        else:
            _end_case_restoring(ch, case, shop)
            _notify_seller(ch, case, shop, "case_dismissed", {})
        return _result(case, shop, old, act, new, follow_up=follow, **extra)

    return tx.use_case(session, actor, "case.decide", request, TransitionResult, work, key=idempotency_key, now=now)


def _claim_result(claim: Claim, case: Case, shop: Shop) -> ClaimResult:
    return ClaimResult(
        claim_id=claim.claim_id,
        case_id=case.case_id,
        status=claim.status,
        case_status=case.status,
        shop_status=shop.status,
    )


def record_payment(
    session: Session,
    claim_id: int,
    actor: Actor,
    *,
    payment_ref: str,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> ClaimResult:
    """The shopkeeper (or an admin on their behalf) records paying one claim."""
    if not payment_ref.strip():
        raise InvalidTransition("a payment needs a reference (transfer id)")

    def work(ch: tx.Change) -> ClaimResult:
        claim, case = _lock_claim(session, claim_id)
        shop = _shop(session, claim.shop_id)
        if actor.role is not Role.ADMIN:
            _require_owner(actor, shop)
        before, _ = ch.step(CLAIMS, claim, ClaimAction.PAY, what=f"claim {claim_id}")
        if case.status not in (CaseStatus.BANNED, CaseStatus.APPEALED_BAN):
            raise InvalidTransition(f"case {case.case_id} is {case.status}; claims are paid while the shop is banned")
        claim.paid_at = ch.now
        claim.payment_ref = payment_ref
        ch.audit("claim.pay", "claim", claim_id, {"case_id": case.case_id, "ref": payment_ref, "fen": claim.amount_fen})
        ch.outbox(
            # a payment made again after a dispute is a message of its own
            dedupe_key=f"claim:{claim_id}:paid" + ("" if before == ClaimStatus.OWED else f":{ch.now.isoformat()}"),
            kind="notify_buyer",
            recipient=claim.buyer_id,
            topic="compensation_paid",
            payload={"claim_id": claim_id, "amount": claim.amount_fen / 100, "payment_ref": payment_ref},
        )
        return _claim_result(claim, case, shop)

    request = {"claim_id": claim_id, "actor": actor.actor_id, "ref": payment_ref}
    return tx.use_case(session, actor, "claim.pay", request, ClaimResult, work, key=idempotency_key, now=now)


def confirm_claim(
    session: Session,
    claim_id: int,
    actor: Actor,
    *,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> ClaimResult:
    """The consumer confirms receiving a paid claim; the last confirmation lifts the ban."""

    def work(ch: tx.Change) -> ClaimResult:
        claim, case = _lock_claim(session, claim_id)
        if actor.role is not Role.CONSUMER or actor.actor_id != claim.buyer_id:
            raise Forbidden(f"only consumer '{claim.buyer_id}' may confirm claim {claim_id}")
        ch.step(CLAIMS, claim, ClaimAction.CONFIRM, what=f"claim {claim_id}")
        shop = _shop(session, claim.shop_id)
        claim.confirmed_at = ch.now
        ch.audit("claim.confirm", "claim", claim_id, {"case_id": case.case_id})
        session.flush()
        _maybe_settle(ch, case, shop)
        return _claim_result(claim, case, shop)

    request = {"claim_id": claim_id, "actor": actor.actor_id}
    return tx.use_case(session, actor, "claim.confirm", request, ClaimResult, work, key=idempotency_key, now=now)


def dispute_claim(
    session: Session,
    claim_id: int,
    actor: Actor,
    *,
    reason: str = "payment not received",
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> ClaimResult:
    """The consumer says a claim recorded as paid did not arrive: it is owed again (``disputed``), the
    shopkeeper is told, and past its deadline it escalates the case like an unpaid claim."""

    def work(ch: tx.Change) -> ClaimResult:
        claim, case = _lock_claim(session, claim_id)
        if actor.role is not Role.CONSUMER or actor.actor_id != claim.buyer_id:
            raise Forbidden(f"only consumer '{claim.buyer_id}' may dispute claim {claim_id}")
        ch.step(CLAIMS, claim, ClaimAction.DISPUTE, what=f"claim {claim_id}")
        shop = _shop(session, claim.shop_id)
        ch.audit("claim.dispute", "claim", claim_id, {"case_id": case.case_id, "reason": reason})
        paid = claim.paid_at.isoformat() if claim.paid_at else "never"
        ch.outbox(
            dedupe_key=f"claim:{claim_id}:disputed:{paid}",  # one per payment disputed
            kind="notify_seller",
            recipient=shop.shopkeeper_id,
            topic="compensation_disputed",
            payload={
                "case_id": case.case_id,
                "shop_id": shop.shop_id,
                "claim_id": claim_id,
                "reason": reason,
                "link": notices.seller_link(session, shop.shop_id, shop.shopkeeper_id),
            },
        )
        return _claim_result(claim, case, shop)

    request = {"claim_id": claim_id, "actor": actor.actor_id, "reason": reason}
    return tx.use_case(session, actor, "claim.dispute", request, ClaimResult, work, key=idempotency_key, now=now)


def _lock_claim(session: Session, claim_id: int) -> tuple[Claim, Case]:
    """The claim and its case, both row-locked, case first (the lock order every writer uses).

    Locking the case serialises the confirmations of one case's claims, so the last one always
    sees the others and lifts the ban (no write skew between two final confirmations).
    """
    case_id = session.execute(select(Claim.case_id).where(Claim.claim_id == claim_id)).scalar_one_or_none()
    if case_id is None:
        raise NotFound(f"claim {claim_id} does not exist")
    case = session.get(Case, case_id, populate_existing=True, with_for_update=True)
    claim = session.get(Claim, claim_id, populate_existing=True, with_for_update=True)
    assert case is not None and claim is not None
    return claim, case


def refuse_compensation(
    session: Session,
    case_id: int,
    actor: Actor,
    *,
    reason: str = "seller refuses to compensate",
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> TransitionResult:
    """The shopkeeper refuses to compensate: the case escalates to step 1 (closure)."""

    def work(ch: tx.Change) -> TransitionResult:
        case, shop = _case_and_shop(session, case_id)
        _require_owner(actor, shop)
        old, _ = _transition(ch, case, Action.REFUSE, reason=reason, evidence=[Evidence(kind="refusal", detail=reason)])
        _close(ch, case, shop, why="refuse")
        return _result(case, shop, old, Action.REFUSE)

    request = {"case_id": case_id, "actor": actor.actor_id, "reason": reason}
    return tx.use_case(session, actor, "case.refuse", request, TransitionResult, work, key=idempotency_key, now=now)


def _escalate(ch: tx.Change, case_id: int, reason: str, expected_version: int | None = None) -> TransitionResult:
    """Step 2 → step 1 for one case, inside ``ch``'s transaction: only while a claim is still unpaid
    past its deadline (checked again here, so a payment that lands meanwhile wins)."""
    case, shop = _case_and_shop(ch.session, case_id)
    _check_version(case, expected_version)
    if case.status == CaseStatus.BANNED:
        overdue = ch.session.execute(
            select(func.count()).where(
                Claim.case_id == case_id, Claim.status.in_(sorted(UNPAID_CLAIMS)), Claim.deadline_at < ch.now
            )
        ).scalar_one()
        if not overdue:
            raise InvalidTransition(
                f"case {case_id}: no claim is unpaid past its deadline; the seller still has time to compensate"
            )
    old, _ = _transition(
        ch,
        case,
        Action.ESCALATE,
        reason=reason,
        evidence=[Evidence(kind="deadline_missed", detail=f"unpaid claims past deadline at {ch.now.isoformat()}")],
    )
    _close(ch, case, shop, why="escalate")
    return _result(case, shop, old, Action.ESCALATE)


def escalate_case(
    session: Session,
    case_id: int,
    actor: Actor,
    *,
    reason: str,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> TransitionResult:
    """A reviewer escalates one banned case to closure (step 1) once a claim is unpaid past its deadline.

    The same rule as the deadline job (:func:`escalate_overdue`), for one case, by a person with a
    reason: before the deadline the seller still has time to compensate, and the escalation is refused."""
    require_role(actor, Role.REVIEWER, Role.ADMIN, what="escalate a case")
    if not reason.strip():
        raise InvalidTransition("an escalation needs a reason")
    request = {"case_id": case_id, "actor": actor.actor_id, "reason": reason, "expected_version": expected_version}

    def work(ch: tx.Change) -> TransitionResult:
        return _escalate(ch, case_id, reason, expected_version)

    return tx.use_case(session, actor, "case.escalate", request, TransitionResult, work, key=idempotency_key, now=now)


def escalate_overdue(session: Session, *, now: datetime | None = None, actor: Actor = SYSTEM) -> list[TransitionResult]:
    """Escalate to closure every banned case with a claim still unpaid after its deadline."""
    when = now or tx.utcnow()
    require_role(actor, Role.SYSTEM, Role.REVIEWER, Role.ADMIN, what="escalate overdue cases")
    ids = list(
        session.execute(
            select(Case.case_id)
            .join(Claim, Claim.case_id == Case.case_id)
            .where(
                Case.status == CaseStatus.BANNED,
                Claim.status.in_(sorted(UNPAID_CLAIMS)),
                Claim.deadline_at < when,
            )
            .distinct()
            .order_by(Case.case_id)
        ).scalars()
    )
    session.rollback()
    done = []
    for case_id in ids:

        def work(ch: tx.Change, case_id: int = case_id) -> TransitionResult:
            return _escalate(ch, case_id, "compensation deadline missed")

        try:
            done.append(
                tx.use_case(session, actor, "case.escalate", {"case_id": case_id}, TransitionResult, work, now=when)
            )
        except InvalidTransition:
            continue  # decided otherwise in the meantime
    return done


# --------------------------------------------------------------------------- appeals


def appeal(
    session: Session,
    case_id: int,
    actor: Actor,
    *,
    reason: str,
    evidence: Sequence[Evidence] = (),
    files: Sequence[attachments.CheckedFile] = (),
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> TransitionResult:
    """The shopkeeper appeals a closure or a ban: review reopens, the measure stays meanwhile.

    ``reason`` is the seller's statement; ``files`` (checked by ``attachments.check``, at most
    :data:`MAX_APPEAL_FILES`) are stored with the appeal, each cited in the appeal's evidence and audit
    entry by its sha256, all in the appeal's one transaction."""
    if not reason.strip():
        raise InvalidTransition("an appeal needs a reason")
    if len(files) > MAX_APPEAL_FILES:
        raise attachments.AttachmentRefused(f"an appeal takes at most {MAX_APPEAL_FILES} files, not {len(files)}")
    cited = [
        Evidence(
            kind="appeal",
            ref=f"sha256:{f.sha256}",
            detail=f"{f.filename} ({f.content_type}, {f.size:,} bytes)",
            data={"filename": f.filename, "content_type": f.content_type, "size": f.size, "sha256": f.sha256},
        )
        for f in files
    ]

    def work(ch: tx.Change) -> TransitionResult:
        case, shop = _case_and_shop(session, case_id)
        _require_owner(actor, shop)
        old, _ = _transition(ch, case, Action.APPEAL, reason=reason, evidence=[*evidence, *cited])
        case.ended_at = None
        if files:
            event_id = session.execute(
                select(func.max(CaseEvent.event_id)).where(CaseEvent.case_id == case_id)
            ).scalar_one()
            rows = [
                {
                    "case_id": case_id,
                    "event_id": int(event_id),
                    "actor_id": actor.actor_id,
                    "created_at": ch.now,
                    "filename": f.filename,
                    "content_type": f.content_type,
                    "size": f.size,
                    "sha256": f.sha256,
                    "data": f.data,
                }
                for f in files
            ]
            session.execute(insert(_APPEAL_FILES), rows)
        return _result(case, shop, old, Action.APPEAL)

    request = {"case_id": case_id, "actor": actor.actor_id, "reason": reason, "files": [f.sha256 for f in files]}
    return tx.use_case(session, actor, "case.appeal", request, TransitionResult, work, key=idempotency_key, now=now)


def _reverse(ch: tx.Change, case: Case, shop: Shop, reason: str) -> dict[str, Any]:
    """An upheld appeal's effect: shop restored, unpaid claims void, disclosures withdrawn, seller told."""
    _end_case_restoring(ch, case, shop)
    voided = list(
        ch.session.execute(
            select(Claim).where(Claim.case_id == case.case_id, Claim.status.in_(sorted(UNPAID_CLAIMS)))
        ).scalars()
    )
    for c in voided:
        ch.step(CLAIMS, c, ClaimAction.VOID, what=f"claim {c.claim_id}")
        c.voided_at = ch.now
        ch.audit("claim.void", "claim", c.claim_id, {"case_id": case.case_id})
        ch.outbox(
            dedupe_key=f"claim:{c.claim_id}:void",
            kind="notify_buyer",
            recipient=c.buyer_id,
            topic="compensation_void",
            payload={"claim_id": c.claim_id, "shop_id": shop.shop_id, "reason": "appeal upheld"},
        )
    withdrawn = list(
        ch.session.execute(
            select(Disclosure).where(Disclosure.case_id == case.case_id, Disclosure.status.in_(LIVE_DISCLOSURES))
        ).scalars()
    )
    for d in withdrawn:
        disclosure.withdraw(ch, d, f"appeal upheld: {reason}")
    ch.session.flush()
    campaigns.correct_after_reversal(ch, case.case_id, shop.shop_id, shop.name, disclosed=bool(withdrawn))
    _notify_seller(ch, case, shop, "appeal_upheld", {})
    return {"claims_voided": len(voided), "disclosures_withdrawn": len(withdrawn)}


#: the actions of a person that an appeal contests (the measure and its confirmations)
_APPEALED_DECISIONS = (Action.CLOSE, Action.BAN, Action.ESCALATE, Action.REJECT_APPEAL)


def _deciders(session: Session, case_id: int) -> list[str]:
    """Who decided the measure an appeal of ``case_id`` contests: every reviewer or admin who closed,
    banned or escalated it, or rejected an earlier appeal of it (none of them may decide the appeal)."""
    return list(
        session.execute(
            select(CaseEvent.actor_id)
            .where(
                CaseEvent.case_id == case_id,
                CaseEvent.action.in_([a.value for a in _APPEALED_DECISIONS]),
                CaseEvent.role.in_([Role.REVIEWER.value, Role.ADMIN.value]),
            )
            .distinct()
        ).scalars()
    )


def decide_appeal(
    session: Session,
    case_id: int,
    uphold: bool,
    actor: Actor,
    *,
    reason: str,
    evidence: Sequence[Evidence] = (),
    expected_version: int | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> TransitionResult:
    """Decide an appeal. ``uphold=True`` reverses: shop restored, unpaid claims void, disclosure withdrawn.

    Four eyes: whoever made the decision appealed (closed, banned, escalated, or rejected an earlier
    appeal) may not decide the appeal (Forbidden, nothing written)."""
    if not reason.strip():
        raise InvalidTransition("an appeal decision needs a reason")
    act = Action.REVERSE if uphold else Action.REJECT_APPEAL

    def work(ch: tx.Change) -> TransitionResult:
        case, shop = _case_and_shop(session, case_id)
        _check_version(case, expected_version)
        if case.status in (CaseStatus.APPEALED_CLOSE, CaseStatus.APPEALED_BAN):
            tx.four_eyes(
                session,
                actor,
                _deciders(session, case_id),
                what=f"decide the appeal of case {case_id}",
                first_did="made the decision appealed",
            )
        old, new = _transition(ch, case, act, reason=reason, evidence=evidence)
        extra: dict[str, Any] = {}
        if act is Action.REVERSE:
            extra = _reverse(ch, case, shop, reason)
        else:
            case.ended_at = ch.now if new == CaseStatus.CLOSED else None
            _notify_seller(ch, case, shop, "appeal_rejected", {"status": new})
            session.flush()
            # every claim may have been confirmed while the appeal was pending
            settled = _maybe_settle(ch, case, shop)
            if settled is not None:
                extra = {"follow_up": [settled]}
        return _result(case, shop, old, act, new, **extra)

    request = {"case_id": case_id, "uphold": uphold, "actor": actor.actor_id, "reason": reason}
    return tx.use_case(
        session, actor, "case.appeal_decision", request, TransitionResult, work, key=idempotency_key, now=now
    )


# --------------------------------------------------------------------------- read side


def _claim_view(c: Claim) -> ClaimView:
    return ClaimView(
        claim_id=c.claim_id,
        case_id=c.case_id,
        shop_id=c.shop_id,
        buyer_id=c.buyer_id,
        order_ids=list(c.order_ids),
        category=c.category,
        paid_total=c.paid_total_fen / 100,
        refund=c.refund_fen / 100,
        punitive=c.punitive_fen / 100,
        amount=c.amount_fen / 100,
        status=c.status,
        created_at=c.created_at,
        deadline_at=c.deadline_at,
        paid_at=c.paid_at,
        payment_ref=c.payment_ref,
        confirmed_at=c.confirmed_at,
    )


def _case_view(case: Case, shop: Shop) -> CaseView:
    return CaseView(
        case_id=case.case_id,
        shop_id=case.shop_id,
        shop_name=shop.name,
        shop_status=shop.status,
        category=shop.category,
        status=case.status,
        version=case.version,
        origin=case.origin,
        measure=case.measure,
        score=case.score,
        tier=case.tier,
        threshold=case.threshold,
        model_name=case.model_name,
        model_version=case.model_version,
        reasons=list(case.reasons or []),
        evidence=list(case.evidence or []),
        opened_at=case.opened_at,
        decided_at=case.decided_at,
        updated_at=case.updated_at,
        ended_at=case.ended_at,
    )


def get_case(session: Session, case_id: int) -> CaseView:
    """One case with its full event history and claims (the reviewer's view)."""
    case = _case(session, case_id)
    view = _case_view(case, _shop(session, case.shop_id))
    events = session.execute(
        select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.event_id)
    ).scalars()
    view.events = [
        CaseEventView(
            event_id=e.event_id,
            at=e.at,
            actor_id=e.actor_id,
            role=e.role,
            simulated=e.simulated,
            action=e.action,
            old_status=e.old_status,
            new_status=e.new_status,
            reason=e.reason,
            score=e.score,
            threshold=e.threshold,
            model_name=e.model_name,
            model_version=e.model_version,
            evidence=list(e.evidence or []),
            via=e.via,
        )
        for e in events
    ]
    claims = session.execute(select(Claim).where(Claim.case_id == case_id).order_by(Claim.claim_id)).scalars()
    view.claims = [_claim_view(c) for c in claims]
    view.appeal_files = appeal_files_of(session, case_id)
    return view


def appeal_files_of(session: Session, case_id: int) -> list[AppealFileView]:
    """What the seller attached to the case's appeals (no bytes: those are downloads, ``appeal_file``)."""
    f = _APPEAL_FILES.c
    rows = session.execute(
        select(f.file_id, f.event_id, f.created_at, f.filename, f.content_type, f.size, f.sha256)
        .where(f.case_id == case_id)
        .order_by(f.file_id)
    )
    return [AppealFileView(case_id=case_id, **r._asdict()) for r in rows]


def appeal_file(session: Session, case_id: int, file_id: int) -> tuple[str, str, bytes]:
    """(file name, type, bytes) of one file of the case's appeals; NotFound otherwise."""
    f = _APPEAL_FILES.c
    row = session.execute(
        select(f.filename, f.content_type, f.data).where(f.case_id == case_id, f.file_id == file_id)
    ).first()
    if row is None:
        raise NotFound(f"case {case_id} has no appeal file {file_id}")
    return str(row.filename), str(row.content_type), bytes(row.data)


def list_cases(
    session: Session,
    *,
    status: str | None = None,
    shop_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[CaseView]:
    """Cases, riskiest open first (score descending), then by id."""
    if status is not None:
        CaseStatus(status)
    q = select(Case, Shop).join(Shop, Shop.shop_id == Case.shop_id)
    if status is not None:
        q = q.where(Case.status == status)
    if shop_id is not None:
        q = q.where(Case.shop_id == shop_id)
    q = q.order_by(Case.score.desc().nulls_last(), Case.case_id).limit(limit).offset(offset)
    return [_case_view(c, s) for c, s in session.execute(q).tuples()]


def claims_of(session: Session, case_id: int) -> list[ClaimView]:
    rows = session.execute(select(Claim).where(Claim.case_id == case_id).order_by(Claim.claim_id)).scalars()
    return [_claim_view(c) for c in rows]
