"""Step 4 — disclose: the public list of closed shops, under a disclosure policy.

By default an entry carries the shop's name and id, its business registration, the measure and
its date, and the business contact (phone, e-mail). The shopkeeper's personal fields (phone,
e-mail, home address, ID number) are masked unless a named policy, created by an admin with a
recorded legal basis and approved by a second admin, lists them. Publishing takes four eyes: an
admin proposes the entries, recording the basis (:func:`propose_disclosures`); a second admin,
who did not draft them, approves them and only then are they public (:func:`approve_disclosures`).
An appeal that succeeds withdraws the entry (``cases.decide_appeal``).

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
from sanctions.workflow import (
    DISCLOSURES,
    POLICIES,
    Actor,
    CaseStatus,
    DisclosureAction,
    DisclosureStatus,
    PolicyAction,
    PolicyStatus,
    Role,
    require_role,
)

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
    status: str
    approved_by: str | None
    approved_at: datetime | None


class DisclosureResult(BaseModel):
    """What :func:`propose_disclosures` drafted: case ids proposed (not yet public)."""

    proposed: list[int]
    skipped_already_published: list[int]
    policy: str
    drafted_by: str
    basis: str


class ApprovalResult(BaseModel):
    """What :func:`approve_disclosures` made public: case ids, who drafted them, who approved."""

    published: list[int]
    drafted_by: list[str]
    approved_by: str


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
            # a policy that reveals personal fields needs a second admin (approve_policy)
            status=(PolicyStatus.PROPOSED if personal_fields else PolicyStatus.APPROVED).value,
        )
        session.add(p)
        session.flush()
        ch.audit(
            "disclosure.policy",
            "policy",
            p.policy_id,
            {
                "name": name,
                "fields": p.personal_fields,
                "basis": legal_basis,
                "status": p.status,
                "case_ids": p.case_ids,
            },
        )
        return PolicyView.model_validate(p, from_attributes=True)

    request = {"name": name}
    return tx.use_case(session, actor, "disclosure.policy", request, PolicyView, work, now=now)


def approve_policy(session: Session, name: str, actor: Actor, *, now: datetime | None = None) -> PolicyView:
    """A second admin approves a policy that reveals personal fields (four eyes: not its author)."""
    require_role(actor, Role.ADMIN, what="approve a disclosure policy")

    def work(ch: tx.Change) -> PolicyView:
        p = _policy(session, name)
        if p.status == PolicyStatus.PROPOSED:
            tx.four_eyes(session, actor, [p.created_by], what=f"approve policy '{name}'", first_did="drafted it")
        ch.step(POLICIES, p, PolicyAction.APPROVE, what=f"disclosure policy '{name}'")
        p.approved_by = actor.actor_id
        p.approved_at = ch.now
        ch.audit("disclosure.policy_approve", "policy", p.policy_id, {"name": name, "drafted_by": p.created_by})
        return PolicyView.model_validate(p, from_attributes=True)

    return tx.use_case(session, actor, "disclosure.policy_approve", {"name": name}, PolicyView, work, now=now)


def _policy(session: Session, name: str) -> DisclosurePolicy:
    pol = session.execute(
        select(DisclosurePolicy).where(DisclosurePolicy.name == name).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if pol is None:
        raise NotFound(f"disclosure policy '{name}' does not exist")
    return pol


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


def propose_disclosures(
    session: Session,
    actor: Actor,
    *,
    basis: str,
    case_ids: Sequence[int] | None = None,
    policy: str | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> DisclosureResult:
    """An admin drafts entries for closed shops (default: every closed case not yet disclosed),
    recording the basis; they stay ``proposed`` (not public) until a second admin approves them
    (:func:`approve_disclosures`). A policy revealing personal fields must be approved first."""
    require_role(actor, Role.ADMIN, what="propose the publication of closed shops")
    if not basis.strip():
        raise InvalidTransition("publishing closed shops needs the basis of the approval")

    def work(ch: tx.Change) -> DisclosureResult:
        pol: DisclosurePolicy | None = None
        if policy is not None and policy != "default":
            pol = _policy(session, policy)
            if pol.status != PolicyStatus.APPROVED:
                raise InvalidTransition(
                    f"disclosure policy '{policy}' reveals personal fields and is not approved yet: "
                    "a second admin must approve it first (dajia disclosure approve-policy)"
                )
        # the policy's personal fields only for the cases its legal basis names
        covered = set(pol.case_ids or []) if pol else set()
        q = select(Case, Shop).join(Shop, Shop.shop_id == Case.shop_id).where(Case.status == CaseStatus.CLOSED)
        if case_ids is not None:
            wanted = sorted(set(case_ids))
            _require_closed(session, wanted)
            q = q.where(Case.case_id.in_(wanted))
        already = set(session.execute(select(Disclosure.case_id)).scalars())
        proposed, skipped = [], []
        for case, shop in session.execute(q.order_by(Case.case_id)).tuples():
            if case.case_id in already:
                skipped.append(case.case_id)
                continue
            own = pol if pol is not None and case.case_id in covered else None
            d = Disclosure(
                case_id=case.case_id,
                shop_id=shop.shop_id,
                policy_id=own.policy_id if own else None,
                status=DisclosureStatus.PROPOSED.value,
                entry=build_entry(shop, case, list(own.personal_fields) if own else []),
                drafted_by=actor.actor_id,
                drafted_at=ch.now,
                basis=basis,
            )
            session.add(d)
            session.flush()
            proposed.append(case.case_id)
            ch.audit(
                "disclosure.propose",
                "disclosure",
                d.disclosure_id,
                {
                    "case_id": case.case_id,
                    "shop_id": shop.shop_id,
                    "policy": own.name if own else "default",
                    "basis": basis,
                },
            )
        return DisclosureResult(
            proposed=proposed,
            skipped_already_published=skipped,
            policy=pol.name if pol else "default",
            drafted_by=actor.actor_id,
            basis=basis,
        )

    cases = sorted(case_ids) if case_ids is not None else None
    request = {"basis": basis, "cases": cases, "policy": policy, "actor": actor.actor_id}
    return tx.use_case(
        session, actor, "disclosure.propose", request, DisclosureResult, work, key=idempotency_key, now=now
    )


def _require_closed(session: Session, wanted: Sequence[int]) -> None:
    found = session.execute(select(Case.case_id, Case.status).where(Case.case_id.in_(wanted)))
    statuses = {cid: st for cid, st in found}
    missing = [c for c in wanted if c not in statuses]
    if missing:
        raise NotFound(f"cases do not exist: {missing[:10]}")
    not_closed = [c for c in wanted if statuses[c] != CaseStatus.CLOSED]
    if not_closed:
        raise InvalidTransition(f"only closed shops are disclosed; cases {not_closed[:10]} are not closed")


def approve_disclosures(
    session: Session,
    actor: Actor,
    *,
    case_ids: Sequence[int] | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> ApprovalResult:
    """A second admin publishes proposed entries (default: every proposed entry).

    Four eyes: if the approver drafted any of them, the whole approval is refused (Forbidden,
    nothing written). Entries whose case is no longer closed (an appeal pending or upheld) are
    refused too. The approver and the time are recorded on each entry, audited, announced."""
    require_role(actor, Role.ADMIN, what="approve the publication of closed shops")

    def work(ch: tx.Change) -> ApprovalResult:
        q = select(Disclosure).where(Disclosure.status == DisclosureStatus.PROPOSED)
        if case_ids is not None:
            wanted = sorted(set(case_ids))
            q = q.where(Disclosure.case_id.in_(wanted))
        rows = list(session.execute(q.order_by(Disclosure.case_id).with_for_update()).scalars())
        if case_ids is not None:
            found = {d.case_id for d in rows}
            absent = [c for c in sorted(set(case_ids)) if c not in found]
            if absent:
                raise InvalidTransition(f"no proposed disclosure for cases {absent[:10]} (propose them first)")
        if not rows:
            raise InvalidTransition("no proposed disclosure to approve")
        drafters = sorted({d.drafted_by or "" for d in rows} - {""})
        own = [d.case_id for d in rows if d.drafted_by == actor.actor_id][:10]
        what = "approve these disclosures"
        tx.four_eyes(session, actor, drafters, what=what, first_did=f"drafted disclosures of cases {own or drafters}")
        _require_closed(session, [d.case_id for d in rows])
        for d in rows:
            ch.step(DISCLOSURES, d, DisclosureAction.APPROVE, what=f"disclosure {d.disclosure_id}")
            d.approved_by = actor.actor_id
            d.published_at = ch.now
            ch.audit(
                "disclosure.publish",
                "disclosure",
                d.disclosure_id,
                {"case_id": d.case_id, "shop_id": d.shop_id, "drafted_by": d.drafted_by, "basis": d.basis},
            )
            _announce(ch, d, "published", "closed_shop_disclosed")
        return ApprovalResult(published=[d.case_id for d in rows], drafted_by=drafters, approved_by=actor.actor_id)

    cases = sorted(set(case_ids)) if case_ids is not None else None
    request = {"cases": cases, "actor": actor.actor_id}
    return tx.use_case(
        session, actor, "disclosure.approve", request, ApprovalResult, work, key=idempotency_key, now=now
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
    was, _ = ch.step(DISCLOSURES, d, DisclosureAction.WITHDRAW, what=f"disclosure {d.disclosure_id}")
    d.withdrawn_at = ch.now
    d.withdrawn_reason = reason
    ch.audit(
        "disclosure.withdraw",
        "disclosure",
        d.disclosure_id,
        {"case_id": d.case_id, "shop_id": d.shop_id, "reason": reason},
    )
    if was == DisclosureStatus.PUBLISHED:  # a proposed entry was never public: nothing to announce
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
