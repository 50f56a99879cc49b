"""Step 4 — disclose: the public list of closed shops, under a disclosure policy.

By default an entry carries the shop's name and id, its business registration, the measure and
its date, and the business contact (phone, e-mail). The shopkeeper's personal fields (phone,
e-mail, home address, ID number) are masked unless a named policy, created by an admin with a
recorded legal basis, lists them. Publishing needs an admin, who records the basis of the
publication; an appeal that succeeds withdraws the entry (``cases.decide_appeal``).

Masking happens twice: when the entry is materialised at publication, and again whenever the
public read model serves it (so an entry written under an older, laxer rule still comes out
masked unless its policy allows the field).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidTransition, NotFound
from marketplace.schema import PERSONAL_FIELDS
from sanctions import tx
from sanctions.models import Case, Disclosure, DisclosurePolicy, Shop
from sanctions.workflow import DISCLOSURES, Actor, CaseStatus, DisclosureAction, DisclosureStatus, Role, require_role

MASK = "***"
#: always published (the default policy)
BUSINESS_FIELDS = ("shop_id", "name", "business_registration", "business_phone", "business_email")


class PolicyView(BaseModel):
    policy_id: int
    name: str
    personal_fields: list[str]
    legal_basis: str
    case_ids: list[int] | None = None
    created_by: str
    created_at: datetime


class DisclosureResult(BaseModel):
    published: list[int]
    skipped_already_published: list[int]
    policy: str
    approved_by: str
    basis: str


def create_policy(
    session: Session,
    actor: Actor,
    *,
    name: str,
    personal_fields: Sequence[str],
    legal_basis: str,
    case_ids: Sequence[int] | None = None,
    now: datetime | None = None,
) -> PolicyView:
    """An admin names the personal fields that may go out, the legal basis for it and the cases that
    basis is for: a publication under this policy shows those fields only in those cases' entries
    (every other case of the batch is published under the default policy, masked)."""
    require_role(actor, Role.ADMIN, what="create a disclosure policy")
    unknown = [f for f in personal_fields if f not in PERSONAL_FIELDS]
    if unknown:
        raise InvalidTransition(f"not personal fields: {unknown}; choose among {', '.join(PERSONAL_FIELDS)}")
    if not legal_basis.strip():
        raise InvalidTransition("a disclosure policy needs a recorded legal basis")
    if not name.strip() or name == "default":
        raise InvalidTransition("a disclosure policy needs a name other than 'default'")
    if personal_fields and not case_ids:
        raise InvalidTransition(
            "a disclosure policy that names personal fields needs the cases its legal basis is for (case_ids)"
        )

    def work(ch: tx.Change) -> PolicyView:
        if session.execute(select(DisclosurePolicy).where(DisclosurePolicy.name == name)).first():
            raise Conflict(f"disclosure policy '{name}' exists already")
        p = DisclosurePolicy(
            name=name,
            personal_fields=sorted(set(personal_fields)),
            legal_basis=legal_basis,
            case_ids=sorted(set(case_ids)) if case_ids else None,
            created_by=actor.actor_id,
            created_at=ch.now,
        )
        session.add(p)
        session.flush()
        ch.audit(
            "disclosure.policy",
            "policy",
            p.policy_id,
            {"name": name, "fields": p.personal_fields, "basis": legal_basis, "case_ids": p.case_ids},
        )
        return PolicyView.model_validate(p, from_attributes=True)

    request = {"name": name}
    return tx.use_case(session, actor, "disclosure.policy", request, PolicyView, work, now=now)


def build_entry(shop: Shop, case: Case, allowed_personal: Sequence[str]) -> dict[str, Any]:
    """One public entry: business fields, the measure and its date, personal fields masked unless allowed."""
    entry: dict[str, Any] = {f: getattr(shop, f) for f in BUSINESS_FIELDS}
    entry["case_id"] = case.case_id
    entry["category"] = shop.category
    entry["measure"] = "closed"
    measure_date = case.decided_at or case.updated_at
    entry["measure_date"] = measure_date.date().isoformat()
    entry["personal"] = {f: (getattr(shop, f) if f in allowed_personal else MASK) for f in PERSONAL_FIELDS}
    return entry


def _announce(ch: tx.Change, d: Disclosure, event: str, topic: str) -> None:
    """The public is told (outbox ``publication``) that entry ``d`` was published or withdrawn."""
    ch.outbox(
        dedupe_key=f"disclosure:{d.disclosure_id}:{event}",
        kind="publication",
        recipient="public",
        topic=topic,
        payload={"disclosure_id": d.disclosure_id, "shop_id": d.shop_id},
    )


def publish_disclosures(
    session: Session,
    actor: Actor,
    *,
    basis: str,
    case_ids: Sequence[int] | None = None,
    policy: str | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> DisclosureResult:
    """An admin publishes closed shops (default: every closed case not yet disclosed), recording the basis."""
    require_role(actor, Role.ADMIN, what="approve the publication of closed shops")
    if not basis.strip():
        raise InvalidTransition("publishing closed shops needs the basis of the approval")

    def work(ch: tx.Change) -> DisclosureResult:
        pol: DisclosurePolicy | None = None
        if policy is not None and policy != "default":
            pol = session.execute(select(DisclosurePolicy).where(DisclosurePolicy.name == policy)).scalar_one_or_none()
            if pol is None:
                raise NotFound(f"disclosure policy '{policy}' does not exist")
        # the policy's personal fields only for the cases its legal basis names
        covered = set(pol.case_ids or []) if pol else set()
        q = select(Case, Shop).join(Shop, Shop.shop_id == Case.shop_id).where(Case.status == CaseStatus.CLOSED)
        if case_ids is not None:
            wanted = sorted(set(case_ids))
            statuses = {
                cid: st
                for cid, st in session.execute(select(Case.case_id, Case.status).where(Case.case_id.in_(wanted)))
            }
            missing = [c for c in wanted if c not in statuses]
            if missing:
                raise NotFound(f"cases do not exist: {missing[:10]}")
            not_closed = [c for c in wanted if statuses[c] != CaseStatus.CLOSED]
            if not_closed:
                raise InvalidTransition(f"only closed shops are disclosed; cases {not_closed[:10]} are not closed")
            q = q.where(Case.case_id.in_(wanted))
        already = set(session.execute(select(Disclosure.case_id)).scalars())
        published, skipped = [], []
        for case, shop in session.execute(q.order_by(Case.case_id)).tuples():
            if case.case_id in already:
                skipped.append(case.case_id)
                continue
            own = pol if pol is not None and case.case_id in covered else None
            d = Disclosure(
                case_id=case.case_id,
                shop_id=shop.shop_id,
                policy_id=own.policy_id if own else None,
                status=DisclosureStatus.PUBLISHED.value,
                entry=build_entry(shop, case, list(own.personal_fields) if own else []),
                approved_by=actor.actor_id,
                basis=basis,
                published_at=ch.now,
            )
            session.add(d)
            session.flush()
            published.append(case.case_id)
            ch.audit(
                "disclosure.publish",
                "disclosure",
                d.disclosure_id,
                {
                    "case_id": case.case_id,
                    "shop_id": shop.shop_id,
                    "policy": own.name if own else "default",
                    "basis": basis,
                },
            )
            _announce(ch, d, "published", "closed_shop_disclosed")
        return DisclosureResult(
            published=published,
            skipped_already_published=skipped,
            policy=pol.name if pol else "default",
            approved_by=actor.actor_id,
            basis=basis,
        )

    cases = sorted(case_ids) if case_ids is not None else None
    request = {"basis": basis, "cases": cases, "policy": policy, "actor": actor.actor_id}
    return tx.use_case(
        session, actor, "disclosure.publish", request, DisclosureResult, work, key=idempotency_key, now=now
    )


class WithdrawalResult(BaseModel):
    disclosure_id: int
    case_id: int
    shop_id: str
    status: str
    withdrawn_by: str
    reason: str


def withdraw(ch: tx.Change, d: Disclosure, reason: str) -> None:
    """Take one published entry off the public list inside ``ch``'s transaction: kept with status
    ``withdrawn``, when and why, audited, and announced through the outbox. Shared by
    :func:`withdraw_disclosure` and an upheld appeal (``cases.decide_appeal``)."""
    ch.step(DISCLOSURES, d, DisclosureAction.WITHDRAW, what=f"disclosure {d.disclosure_id}")
    d.withdrawn_at = ch.now
    d.withdrawn_reason = reason
    ch.audit(
        "disclosure.withdraw",
        "disclosure",
        d.disclosure_id,
        {"case_id": d.case_id, "shop_id": d.shop_id, "reason": reason},
    )
    _announce(ch, d, "withdrawn", "disclosure_withdrawn")


def withdraw_disclosure(
    session: Session,
    disclosure_id: int,
    actor: Actor,
    *,
    reason: str,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> WithdrawalResult:
    """An admin takes a published entry off the public list (a court order, an error found), with a reason.

    The entry is kept (status ``withdrawn``) with who, when and why; the public list no longer shows it.
    An upheld appeal withdraws entries the same way (``cases.decide_appeal``)."""
    require_role(actor, Role.ADMIN, what="withdraw a disclosure")
    if not reason.strip():
        raise InvalidTransition("withdrawing a disclosure needs a reason")

    def work(ch: tx.Change) -> WithdrawalResult:
        d = session.get(Disclosure, disclosure_id, with_for_update=True)
        if d is None:
            raise NotFound(f"disclosure {disclosure_id} does not exist")
        withdraw(ch, d, reason)
        return WithdrawalResult(
            disclosure_id=d.disclosure_id,
            case_id=d.case_id,
            shop_id=d.shop_id,
            status=d.status,
            withdrawn_by=actor.actor_id,
            reason=reason,
        )

    request = {"disclosure_id": disclosure_id, "reason": reason, "actor": actor.actor_id}
    return tx.use_case(
        session, actor, "disclosure.withdraw", request, WithdrawalResult, work, key=idempotency_key, now=now
    )
