"""The simulated humans of the crackdown demo: reviewers, sellers, consumers and two admins.

A real deployment has people at these steps; the demo stands in for them, and says so: every
actor here is created with ``simulated=True``, which the case events and the audit log record.
What they do is driven by the generator's ground truth and seeded random draws, at the documented
rates of :class:`SimulationRates`. Every draw comes from a generator seeded by (run seed, step, item):
one per case (its shop) and one per claim (its shop and buyer), never from one stream shared by the
step. So what a simulated person does to one item does not depend on which items came before it, and a
step killed part-way and resumed (the crackdown keeps the step's item list in its state) draws exactly
what an unbroken run draws:

- reviewers decide the cases the sweep opened, highest score first, and stop part-way: they
  decide the share ``review_share`` of them (at least one case stays open), so the console opens on
  a real queue. For a true counterfeiter a
  test buy succeeds with probability ``test_buy_rate``: the shop is closed on that proof (step 1);
  otherwise the reviewer agrees without proof and bans it (step 2). An honest shop is dismissed,
  except that a reviewer errs with probability ``reviewer_error_rate`` and bans it;
- a banned seller refuses to compensate with probability ``seller_refusal_rate`` (escalated to
  step 1), ignores the deadline with probability ``seller_ignore_rate`` (escalated when it passes),
  and otherwise pays every claim; each consumer confirms a paid claim with probability
  ``consumer_confirm_rate`` (the ban lifts only when all have);
- every honest shop that was banned appeals and the appeal is upheld (the reviewer's error is
  reversed); a closed counterfeiter appeals with probability ``counterfeiter_appeal_rate`` and is
  rejected; appeals are decided by a second reviewer (four eyes: whoever decided a case may not decide
  its appeal), and the last appeal filed is left pending, for a person to decide;
- one admin drafts the campaign over the cases the sweep opened and the disclosure of closed shops; a
  second admin approves them (four eyes), and the campaign is then published; a second campaign (the
  ban-evasion closures) is left as a draft awaiting approval.

Time is simulated too: the sweep runs ``lead_days`` (45) before the marketplace snapshot
(``dajia.crackdown.CrackdownConfig``), decisions a day later, payments and confirmations over the
following weeks, and the deadline check just after the compensation deadline — all before the
snapshot, so the decisions label the next training (``dajia train --feedback``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import DajiaError
from sanctions import cases as wf
from sanctions.consumer import confirm as confirm_by_link
from sanctions.models import Case, Claim, OutboxMessage, Shop
from sanctions.notices import LINK_PATH
from sanctions.schemas import Evidence
from sanctions.workflow import Actor, CaseStatus, Role

REVIEWER = Actor("sim-reviewer", Role.REVIEWER, simulated=True)
#: four eyes: appeals go to another reviewer than the one who decided the case
APPEALS_REVIEWER = Actor("sim-appeals-reviewer", Role.REVIEWER, simulated=True)
#: drafts the campaign and the disclosure
ADMIN = Actor("sim-admin", Role.ADMIN, simulated=True)
#: four eyes: approves what ADMIN drafted
SECOND_ADMIN = Actor("sim-second-admin", Role.ADMIN, simulated=True)
#: the people the demo stands in for, registered before they act (names say they are simulated)
SIMULATED_PEOPLE: tuple[tuple[Actor, str], ...] = (
    (REVIEWER, "Simulated reviewer Wang Fang"),
    (APPEALS_REVIEWER, "Simulated appeals reviewer Li Na"),
    (ADMIN, "Simulated admin Zhang Wei"),
    (SECOND_ADMIN, "Simulated second admin Chen Jie"),
)


def register_people(session: Session, now: datetime) -> list[str]:
    """Register the simulated reviewers and admins as people (each their own person); the ones already
    registered are left alone, so a resumed crackdown registers nobody twice. Returns who was registered."""
    from sanctions import people
    from sanctions.models import ActorRow
    from sanctions.workflow import SYSTEM

    done = []
    for who, name in SIMULATED_PEOPLE:
        row = session.get(ActorRow, who.actor_id)
        if row is not None and row.person_id is not None:
            continue
        people.register(
            session, SYSTEM, person_id=who.actor_id, name=name, role=who.role, actor_id=who.actor_id,
            simulated=True, now=now,
        )  # fmt: skip
        done.append(who.actor_id)
    return done


@dataclass(frozen=True)
class SimulationRates:
    test_buy_rate: float = 0.6
    reviewer_error_rate: float = 0.05
    seller_refusal_rate: float = 0.15
    seller_ignore_rate: float = 0.1
    consumer_confirm_rate: float = 0.9
    counterfeiter_appeal_rate: float = 0.2
    #: share of the sweep's open cases the reviewers decide (highest score first); the rest stay open
    review_share: float = 0.9

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= value <= 1.0:
                raise DajiaError(f"simulation rate '{name}' = {value!r}: must be between 0 and 1")


@dataclass(frozen=True)
class Seeds:
    """The randomness of one step of one run: a generator per item, seeded by (seed, step, item)."""

    seed: int
    step: str

    def rng(self, *item: object) -> np.random.Generator:
        """The generator of ``item`` (e.g. a shop id, or a shop and a buyer): the same in every process."""
        return np.random.default_rng([self.seed, _word(self.step), *(_word(str(i)) for i in item)])


def _word(text: str) -> int:
    """A stable 64-bit number for ``text`` (Python's ``hash`` of a str changes from process to process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def _seller(shopkeeper_id: str) -> Actor:
    """The shop's keeper (the workflow lets only the shopkeeper act for a shop), simulated."""
    return Actor(shopkeeper_id, Role.SELLER, simulated=True)


Progress = Callable[[int, int], None]


def open_cases(session: Session, share: float = 1.0, origin: str | None = None) -> list[int]:
    """The open cases reviewers will decide, highest score first: with ``share`` below 1 that share of
    them (rounded down), leaving at least one open. ``origin``: only the cases opened so
    (``score``, ``ban_evasion``)."""
    ids = [
        int(c)
        for c in session.execute(
            select(Case.case_id)
            .where(Case.status == CaseStatus.OPEN, *([Case.origin == origin] if origin else []))
            .order_by(Case.score.desc().nulls_last(), Case.case_id)
        ).scalars()
    ]
    session.rollback()
    if share < 1.0:
        ids = ids[: min(int(len(ids) * share), max(len(ids) - 1, 0))]
    return ids


def decide_cases(
    session: Session,
    truth: pd.DataFrame,
    rates: SimulationRates,
    seeds: Seeds,
    now: datetime,
    progress: Progress | None = None,
    share: float = 1.0,
    origin: str | None = None,
    case_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Reviewers decide the open cases (highest score first) from test-buy evidence and truth.

    ``case_ids``: the cases to decide, in order (default ``open_cases(session, share, origin)``). A case
    decided already (a resumed step) is replayed by its idempotency key: nothing changes, it is counted."""
    is_fake = truth.set_index(truth["shop_id"].astype(str))["is_counterfeiter"].astype(bool).to_dict()
    ids = list(open_cases(session, share, origin) if case_ids is None else case_ids)
    found = {
        int(r[0]): r
        for r in session.execute(
            select(Case.case_id, Case.shop_id, Case.origin, Case.reasons).where(Case.case_id.in_(ids))
        ).all()
    }
    rows = [found[i] for i in ids if i in found]
    out = {"decided": 0, "closed_on_test_buy": 0, "banned": 0, "dismissed": 0, "wrongly_banned": 0}
    for i, (case_id, shop_id, opened_by, reasons) in enumerate(rows):
        fake = bool(is_fake.get(str(shop_id), False))
        rng = seeds.rng(shop_id)
        why = "; ".join(reasons or []) or opened_by
        if fake and rng.random() < rates.test_buy_rate:
            wf.decide(
                session,
                case_id,
                "close",
                REVIEWER,
                reason=f"[simulated] test buy confirmed counterfeit goods ({why})",
                evidence=[Evidence(kind="test_buy", ref=f"sim-testbuy-{case_id}", detail="simulated test buy")],
                idempotency_key=f"sim-decide-{case_id}",
                now=now,
            )
            out["closed_on_test_buy"] += 1
        elif fake or rng.random() < rates.reviewer_error_rate:
            wf.decide(
                session,
                case_id,
                "ban",
                REVIEWER,
                reason=f"[simulated] reviewer agrees with the flags, no proof yet ({why})",
                evidence=[Evidence(kind="consumer_reports", ref=f"sim-review-{case_id}")],
                idempotency_key=f"sim-decide-{case_id}",
                now=now,
            )
            out["banned"] += 1
            out["wrongly_banned"] += int(not fake)
        else:
            wf.decide(
                session,
                case_id,
                "dismiss",
                REVIEWER,
                reason="[simulated] reviewer found nothing to sanction",
                idempotency_key=f"sim-decide-{case_id}",
                now=now,
            )
            out["dismissed"] += 1
        out["decided"] += 1
        if progress is not None:
            progress(i + 1, len(rows))
    return out


def _link_token(session: Session, claim_id: int) -> str:
    """The token of the link in claim ``claim_id``'s notice (what the consumer received)."""
    payload = session.execute(
        select(OutboxMessage.payload).where(OutboxMessage.dedupe_key == f"claim:{claim_id}:created")
    ).scalar_one()
    session.rollback()
    return str(payload["link"]).removeprefix(LINK_PATH)


def banned_cases(session: Session) -> list[int]:
    """The banned cases whose sellers now pay, refuse or ignore, in case order."""
    ids = [
        int(c)
        for c in session.execute(
            select(Case.case_id).where(Case.status == CaseStatus.BANNED).order_by(Case.case_id)
        ).scalars()
    ]
    session.rollback()
    return ids


def settle_claims(
    session: Session,
    truth: pd.DataFrame,
    rates: SimulationRates,
    seeds: Seeds,
    now: datetime,
    deadline_days: int,
    progress: Progress | None = None,
    case_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Banned sellers pay, refuse or ignore; consumers confirm (or never do); the deadline passes.

    ``case_ids``: the banned cases (default ``banned_cases(session)``); what was done already (a resumed
    step) is replayed by idempotency key, so the counts are the whole step's."""
    honest = set(truth.loc[~truth["is_counterfeiter"].astype(bool), "shop_id"].astype(str))
    ids = list(banned_cases(session) if case_ids is None else case_ids)
    found = {
        int(r[0]): r
        for r in session.execute(
            select(Case.case_id, Case.shop_id, Shop.shopkeeper_id)
            .join(Shop, Shop.shop_id == Case.shop_id)
            .where(Case.case_id.in_(ids))
        ).all()
    }
    banned = [found[i] for i in ids if i in found]
    out = {
        "sellers_paid": 0,
        "sellers_refused": 0,
        "sellers_ignored": 0,
        "claims_paid": 0,
        "claims_confirmed": 0,
        "claims_confirmed_via_links": 0,
    }
    for i, (case_id, shop_id, keeper) in enumerate(banned):
        if str(shop_id) in honest:
            continue  # a wrongly banned honest seller appeals instead (see appeals)
        draw = seeds.rng(shop_id).random()
        if draw < rates.seller_refusal_rate:
            wf.refuse_compensation(
                session, case_id, _seller(keeper), idempotency_key=f"sim-refuse-{case_id}", now=now + timedelta(days=3)
            )
            out["sellers_refused"] += 1
            continue
        if draw < rates.seller_refusal_rate + rates.seller_ignore_rate:
            out["sellers_ignored"] += 1
            continue
        out["sellers_paid"] += 1
        # every claim of the case (all owed when the step first starts; paid already when it resumes)
        claims = session.execute(
            select(Claim.claim_id, Claim.buyer_id).where(Claim.case_id == case_id).order_by(Claim.claim_id)
        ).all()
        for claim_id, buyer_id in claims:
            rng = seeds.rng(shop_id, buyer_id)
            paid_at = now + timedelta(days=int(rng.integers(2, max(3, deadline_days - 5))))
            wf.record_payment(
                session,
                claim_id,
                _seller(keeper),
                payment_ref=f"sim-pay-{claim_id}",
                idempotency_key=f"sim-pay-{claim_id}",
                now=paid_at,
            )
            out["claims_paid"] += 1
            if rng.random() < rates.consumer_confirm_rate:
                # the consumer follows the link in their notice (no account), as a real one would
                confirm_by_link(
                    session,
                    _link_token(session, claim_id),
                    simulated=True,
                    idempotency_key=f"sim-confirm-{claim_id}",
                    now=paid_at + timedelta(days=1),
                )
                out["claims_confirmed"] += 1
                out["claims_confirmed_via_links"] += 1
        if progress is not None:
            progress(i + 1, len(banned))
    escalated = wf.escalate_overdue(session, now=now + timedelta(days=deadline_days + 1))
    out["escalated_after_deadline"] = len(escalated)
    return out


def appealable_cases(session: Session) -> list[tuple[int, str]]:
    """(case id, status) of the banned and closed cases whose sellers may appeal, in case order."""
    rows = [
        (int(c), str(CaseStatus(st).value))
        for c, st in session.execute(
            select(Case.case_id, Case.status)
            .where(Case.status.in_((CaseStatus.BANNED, CaseStatus.CLOSED)))
            .order_by(Case.case_id)
        ).all()
    ]
    session.rollback()
    return rows


def appeals(
    session: Session,
    truth: pd.DataFrame,
    rates: SimulationRates,
    seeds: Seeds,
    now: datetime,
    cases: Sequence[tuple[int, str]] | None = None,
) -> dict[str, Any]:
    """Wrongly banned honest sellers appeal and win; some closed counterfeiters appeal and lose.

    ``cases``: (case id, status) when the step first started (default ``appealable_cases(session)``);
    what was done already (a resumed step) is replayed by idempotency key.
    The last appeal filed stays pending (no reviewer decides it), for a person to decide."""
    honest = set(truth.loc[~truth["is_counterfeiter"].astype(bool), "shop_id"].astype(str))
    plan = [(int(c), str(st)) for c, st in (appealable_cases(session) if cases is None else cases)]
    found = {
        int(c): (shop, keeper)
        for c, shop, keeper in session.execute(
            select(Case.case_id, Case.shop_id, Shop.shopkeeper_id)
            .join(Shop, Shop.shop_id == Case.shop_id)
            .where(Case.case_id.in_([c for c, _ in plan]))
        ).all()
    }
    out = {"appeals": 0, "reversed": 0, "rejected": 0, "pending": 0}
    filed: list[tuple[int, bool]] = []
    for case_id, status in plan:
        if case_id not in found:
            continue
        shop_id, keeper = found[case_id]
        wrongly = str(shop_id) in honest
        closed = status == CaseStatus.CLOSED.value
        if not wrongly and not (closed and seeds.rng(shop_id).random() < rates.counterfeiter_appeal_rate):
            continue
        filed.append((case_id, wrongly))
        wf.appeal(
            session,
            case_id,
            _seller(keeper),
            reason="[simulated] the goods are genuine; invoices attached" if wrongly else "[simulated] we object",
            evidence=[Evidence(kind="appeal", ref=f"sim-appeal-{case_id}")],
            idempotency_key=f"sim-appeal-{case_id}",
            now=now,
        )
        out["appeals"] += 1
    for n, (case_id, wrongly) in enumerate(filed):
        if n == len(filed) - 1:
            out["pending"] += 1  # left for a person: the console's queue shows it
            break
        wf.decide_appeal(
            session,
            case_id,
            uphold=wrongly,
            actor=APPEALS_REVIEWER,
            reason="[simulated] invoices check out: reversed" if wrongly else "[simulated] test buy stands: rejected",
            idempotency_key=f"sim-appeal-decision-{case_id}",
            now=now + timedelta(days=2),
        )
        out["reversed" if wrongly else "rejected"] += 1
    return out
