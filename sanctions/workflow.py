"""The workflows: a status enum and one transition table per lifecycle, the actors who may move it.

Four lifecycles: cases, compensation claims, campaigns and disclosures. Every change of a status
goes through its :class:`Lifecycle`'s ``check`` (for cases also spelled :func:`check_transition`);
nothing else in the package decides what may follow what. Read a table as "from status, action,
by one of these roles, leads to status".

A wrong state is :class:`~core.errors.InvalidTransition` in every lifecycle. Repeating an action
whose only outcome is the current status (publishing a published campaign, withdrawing a
withdrawn entry, closing a closed case) is :class:`AlreadyDone`: still an InvalidTransition, and
also a :class:`~core.errors.Conflict` with the change that did it first (HTTP 409 either way).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from core.errors import Conflict, Forbidden, InvalidTransition


class Role(StrEnum):
    SYSTEM = "system"
    SCORER = "scorer"
    REVIEWER = "reviewer"
    ADMIN = "admin"
    SELLER = "seller"
    CONSUMER = "consumer"


@dataclass(frozen=True)
class Actor:
    """Who acts: an id, a role, and whether a simulation stands in for a real person."""

    actor_id: str
    role: Role
    simulated: bool = False
    #: the credential the person acts with, recorded beside them in every event and audit entry:
    #: ``key:<key id>`` (the API), ``console:<key id>`` (a console session), ``cli:<os user>`` (the CLI)
    via: str | None = None

    def __post_init__(self) -> None:
        if not self.actor_id or not self.actor_id.strip():
            raise Forbidden("an actor needs a non-empty id")
        object.__setattr__(self, "role", Role(self.role))


SYSTEM = Actor("system", Role.SYSTEM)


class CaseStatus(StrEnum):
    #: opened by a score or by ban evasion; listings frozen; waiting for a reviewer
    OPEN = "open"
    #: step 2: banned until every affected consumer confirms settlement
    BANNED = "banned"
    #: step 1: closed, page and listings withdrawn, data frozen as evidence
    CLOSED = "closed"
    #: the seller appealed a closure / a ban; review reopened
    APPEALED_CLOSE = "appealed_close"
    APPEALED_BAN = "appealed_ban"
    #: reviewer found nothing to sanction
    DISMISSED = "dismissed"
    #: every claim confirmed: ban lifted
    SETTLED = "settled"
    #: appeal upheld: shop restored, unpaid claims void, disclosure withdrawn
    REVERSED = "reversed"


class Action(StrEnum):
    RESCORE = "rescore"
    CLOSE = "close"
    BAN = "ban"
    DISMISS = "dismiss"
    SETTLE = "settle"
    ESCALATE = "escalate"
    APPEAL = "appeal"
    REFUSE = "refuse"
    REJECT_APPEAL = "reject_appeal"
    REVERSE = "reverse"


#: a case in one of these is "open": it holds the shop's one open-case slot and its listings frozen
OPEN_STATUSES: frozenset[str] = frozenset(
    {CaseStatus.OPEN, CaseStatus.BANNED, CaseStatus.APPEALED_CLOSE, CaseStatus.APPEALED_BAN}
)
#: decisions a reviewer makes on an open case (exactly one per case)
DECISIONS: frozenset[Action] = frozenset({Action.CLOSE, Action.BAN, Action.DISMISS})

_REVIEW = frozenset({Role.REVIEWER, Role.ADMIN})
_MACHINE = frozenset({Role.SYSTEM, Role.SCORER})

#: THE transition table: (status, action) -> (new status, roles allowed)
TRANSITIONS: dict[tuple[CaseStatus, Action], tuple[CaseStatus, frozenset[Role]]] = {
    (CaseStatus.OPEN, Action.RESCORE): (CaseStatus.OPEN, _MACHINE),
    (CaseStatus.BANNED, Action.RESCORE): (CaseStatus.BANNED, _MACHINE),
    (CaseStatus.OPEN, Action.CLOSE): (CaseStatus.CLOSED, _REVIEW),
    (CaseStatus.OPEN, Action.BAN): (CaseStatus.BANNED, _REVIEW),
    (CaseStatus.OPEN, Action.DISMISS): (CaseStatus.DISMISSED, _REVIEW),
    (CaseStatus.BANNED, Action.SETTLE): (CaseStatus.SETTLED, frozenset({Role.SYSTEM})),
    (CaseStatus.BANNED, Action.ESCALATE): (CaseStatus.CLOSED, _REVIEW | {Role.SYSTEM}),
    (CaseStatus.BANNED, Action.REFUSE): (CaseStatus.CLOSED, frozenset({Role.SELLER})),
    (CaseStatus.CLOSED, Action.APPEAL): (CaseStatus.APPEALED_CLOSE, frozenset({Role.SELLER})),
    (CaseStatus.BANNED, Action.APPEAL): (CaseStatus.APPEALED_BAN, frozenset({Role.SELLER})),
    (CaseStatus.APPEALED_CLOSE, Action.REJECT_APPEAL): (CaseStatus.CLOSED, _REVIEW),
    (CaseStatus.APPEALED_BAN, Action.REJECT_APPEAL): (CaseStatus.BANNED, _REVIEW),
    (CaseStatus.APPEALED_CLOSE, Action.REVERSE): (CaseStatus.REVERSED, _REVIEW),
    (CaseStatus.APPEALED_BAN, Action.REVERSE): (CaseStatus.REVERSED, _REVIEW),
}


class AlreadyDone(InvalidTransition, Conflict):
    """The action was done already: the thing already is in the only status the action leads to."""


S = TypeVar("S", bound=StrEnum)
A = TypeVar("A", bound=StrEnum)


@dataclass(frozen=True)
class Lifecycle(Generic[S, A]):
    """One lifecycle: its status and action enums and THE table (status, action) -> (new status, roles)."""

    noun: str
    statuses: type[S]
    actions: type[A]
    table: Mapping[tuple[S, A], tuple[S, frozenset[Role]]]

    def check(self, status: str, action: A | str, actor: Actor, *, what: str | None = None) -> S:
        """The status ``action`` leads to from ``status``; AlreadyDone / InvalidTransition / Forbidden otherwise.

        ``what`` names the thing in messages (``"claim 12"``); by default ``"a <noun>"``."""
        act = self.actions(action)
        current = self.statuses(status)
        name = what or f"a {self.noun}"
        entry = self.table.get((current, act))
        if entry is None:
            allowed = ", ".join(sorted(a.value for (s, a) in self.table if s == current)) or "none"
            message = f"cannot {act.value} {name} that is {current.value} (allowed: {allowed})"
            if {new for (_, a), (new, _) in self.table.items() if a == act} == {current}:
                raise AlreadyDone(f"{message}: it is {current.value} already")
            raise InvalidTransition(message)
        new_status, roles = entry
        if actor.role not in roles:
            raise Forbidden(
                f"{actor.role.value} '{actor.actor_id}' may not {act.value} a {self.noun} "
                f"(needs {' or '.join(sorted(r.value for r in roles))})"
            )
        return new_status


CASES: Lifecycle[CaseStatus, Action] = Lifecycle("case", CaseStatus, Action, TRANSITIONS)


def check_transition(status: str, action: Action | str, actor: Actor) -> CaseStatus:
    """The status ``action`` leads to from a case's ``status`` (:data:`CASES`' check)."""
    return CASES.check(status, action, actor)


# --------------------------------------------------------------------------- compensation claims


class ClaimStatus(StrEnum):
    #: created by a ban: the shopkeeper owes it until the deadline
    OWED = "owed"
    #: the shopkeeper (or an admin) recorded the payment
    PAID = "paid"
    #: the consumer confirmed receiving it (the last confirmation lifts the ban)
    CONFIRMED = "confirmed"
    #: an upheld appeal voided it before it was paid
    VOID = "void"
    #: the consumer says the payment did not arrive: owed again (the shopkeeper pays again)
    DISPUTED = "disputed"


class ClaimAction(StrEnum):
    PAY = "pay"
    CONFIRM = "confirm"
    VOID = "void"
    DISPUTE = "dispute"


CLAIMS: Lifecycle[ClaimStatus, ClaimAction] = Lifecycle(
    "claim",
    ClaimStatus,
    ClaimAction,
    {
        (ClaimStatus.OWED, ClaimAction.PAY): (ClaimStatus.PAID, frozenset({Role.SELLER, Role.ADMIN})),
        (ClaimStatus.PAID, ClaimAction.CONFIRM): (ClaimStatus.CONFIRMED, frozenset({Role.CONSUMER})),
        (ClaimStatus.OWED, ClaimAction.VOID): (ClaimStatus.VOID, _REVIEW),
        (ClaimStatus.PAID, ClaimAction.DISPUTE): (ClaimStatus.DISPUTED, frozenset({Role.CONSUMER})),
        (ClaimStatus.DISPUTED, ClaimAction.PAY): (ClaimStatus.PAID, frozenset({Role.SELLER, Role.ADMIN})),
        (ClaimStatus.DISPUTED, ClaimAction.VOID): (ClaimStatus.VOID, _REVIEW),
    },
)
#: claims the shopkeeper has not settled yet (they keep the ban)
OUTSTANDING_CLAIMS: frozenset[str] = frozenset({ClaimStatus.OWED, ClaimStatus.PAID, ClaimStatus.DISPUTED})
#: claims still unpaid as far as the consumer knows (past their deadline, they escalate the case)
UNPAID_CLAIMS: frozenset[str] = frozenset({ClaimStatus.OWED, ClaimStatus.DISPUTED})


# --------------------------------------------------------------------------- campaigns


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    PUBLISHED = "published"


class CampaignAction(StrEnum):
    APPROVE = "approve"
    PUBLISH = "publish"


CAMPAIGNS: Lifecycle[CampaignStatus, CampaignAction] = Lifecycle(
    "campaign",
    CampaignStatus,
    CampaignAction,
    {
        (CampaignStatus.DRAFT, CampaignAction.APPROVE): (CampaignStatus.APPROVED, frozenset({Role.ADMIN})),
        (CampaignStatus.APPROVED, CampaignAction.PUBLISH): (CampaignStatus.PUBLISHED, frozenset({Role.ADMIN})),
    },
)


# --------------------------------------------------------------------------- disclosures


class DisclosureStatus(StrEnum):
    #: drafted by one admin; not public until a second admin approves it
    PROPOSED = "proposed"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


class DisclosureAction(StrEnum):
    APPROVE = "approve"
    WITHDRAW = "withdraw"


DISCLOSURES: Lifecycle[DisclosureStatus, DisclosureAction] = Lifecycle(
    "disclosure",
    DisclosureStatus,
    DisclosureAction,
    {
        #: a second admin (not the drafter: :func:`require_second_person`) publishes a proposed entry
        (DisclosureStatus.PROPOSED, DisclosureAction.APPROVE): (DisclosureStatus.PUBLISHED, frozenset({Role.ADMIN})),
        #: an admin withdraws by hand; a reviewer's upheld appeal withdraws too (proposed entries included)
        (DisclosureStatus.PROPOSED, DisclosureAction.WITHDRAW): (DisclosureStatus.WITHDRAWN, _REVIEW),
        (DisclosureStatus.PUBLISHED, DisclosureAction.WITHDRAW): (DisclosureStatus.WITHDRAWN, _REVIEW),
    },
)
#: disclosure entries that may still become or are public (an upheld appeal withdraws them)
LIVE_DISCLOSURES: frozenset[str] = frozenset({DisclosureStatus.PROPOSED, DisclosureStatus.PUBLISHED})


class PolicyStatus(StrEnum):
    #: names personal fields: waits for a second admin
    PROPOSED = "proposed"
    #: usable for publication (a policy naming no personal field is approved at creation)
    APPROVED = "approved"


class PolicyAction(StrEnum):
    APPROVE = "approve"


POLICIES: Lifecycle[PolicyStatus, PolicyAction] = Lifecycle(
    "disclosure policy",
    PolicyStatus,
    PolicyAction,
    {(PolicyStatus.PROPOSED, PolicyAction.APPROVE): (PolicyStatus.APPROVED, frozenset({Role.ADMIN}))},
)


# --------------------------------------------------------------------------- four eyes


def require_second_person(actor: Actor, person: str, first: Iterable[str], *, what: str, first_did: str) -> None:
    """Four eyes: Forbidden when ``person`` (who ``actor`` is) is among ``first`` (who ``first_did``).

    Publishing a campaign or a disclosure needs an approver who did not draft it, a policy that
    reveals personal fields needs a second admin, and an appeal is decided by someone other than
    whoever made the decision appealed. ``person`` and ``first`` are people, not actor ids
    (``tx.four_eyes`` maps them), so one person's reviewer and admin ids count as one."""
    if person in set(first):
        raise Forbidden(
            f"four eyes: {actor.role.value} '{actor.actor_id}' {first_did} and may not also {what}; "
            "a second person must do it"
        )


def require_role(actor: Actor, *roles: Role, what: str) -> None:
    """Forbidden unless the actor has one of ``roles``."""
    if actor.role not in roles:
        raise Forbidden(f"{actor.role.value} '{actor.actor_id}' may not {what} (needs {' or '.join(roles)})")
