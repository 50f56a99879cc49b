"""The case workflow: one status enum, one transition table, the actors who may move it.

Every change of a case's status goes through :func:`check_transition`; nothing else in the
package decides what may follow what. Read the table as "from status, action, by one of these
roles, leads to status".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.errors import Forbidden, InvalidTransition


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


def check_transition(status: str, action: Action | str, actor: Actor) -> CaseStatus:
    """The status ``action`` leads to from ``status``; Forbidden / InvalidTransition otherwise."""
    act = Action(action)
    entry = TRANSITIONS.get((CaseStatus(status), act))
    if entry is None:
        allowed = sorted(a.value for (s, a) in TRANSITIONS if s == status)
        raise InvalidTransition(f"cannot {act.value} a case that is {status} (allowed: {', '.join(allowed) or 'none'})")
    new_status, roles = entry
    if actor.role not in roles:
        raise Forbidden(
            f"{actor.role.value} '{actor.actor_id}' may not {act.value} a case "
            f"(needs {' or '.join(sorted(r.value for r in roles))})"
        )
    return new_status


def require_role(actor: Actor, *roles: Role, what: str) -> None:
    """Forbidden unless the actor has one of ``roles``."""
    if actor.role not in roles:
        raise Forbidden(f"{actor.role.value} '{actor.actor_id}' may not {what} (needs {' or '.join(roles)})")
