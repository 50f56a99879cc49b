"""The four lifecycles (cases, claims, campaigns, disclosures): one table each, one checker, one
wrong-state error; routing's rescore goes through the case table; one case-event builder."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Conflict, Forbidden, InvalidTransition
from sanctions import cases, tx
from sanctions.models import Case, CaseEvent
from sanctions.routing import route_scored
from sanctions.workflow import (
    CAMPAIGNS,
    CASES,
    CLAIMS,
    DISCLOSURES,
    Actor,
    AlreadyDone,
    CampaignAction,
    CampaignStatus,
    ClaimAction,
    ClaimStatus,
    DisclosureAction,
    DisclosureStatus,
    Lifecycle,
    Role,
)
from tests.sanctions.conftest import SNAPSHOT
from tests.sanctions.test_paths import REVIEWER, TEST_BUY, open_case, scored, seller, world  # noqa: F401

LIFECYCLES: list[Lifecycle] = [CASES, CLAIMS, CAMPAIGNS, DISCLOSURES]  # type: ignore[type-arg]


def actor(role: Role) -> Actor:
    return Actor(f"someone-{role.value}", role)


@pytest.mark.parametrize("life", LIFECYCLES, ids=lambda life: life.noun)
def test_every_entry_of_every_table_is_what_check_says(life: Lifecycle) -> None:  # type: ignore[type-arg]
    for (status, action), (new, roles) in life.table.items():
        for role in Role:
            if role in roles:
                assert life.check(status, action, actor(role)) is new
            else:
                with pytest.raises(Forbidden, match=f"may not {action.value} a {life.noun}"):
                    life.check(status, action, actor(role))


@pytest.mark.parametrize("life", LIFECYCLES, ids=lambda life: life.noun)
def test_every_pair_outside_the_table_is_the_same_wrong_state_error(life: Lifecycle) -> None:  # type: ignore[type-arg]
    anyone = [actor(r) for r in Role]
    for status in life.statuses:
        for action in life.actions:
            if (status, action) in life.table:
                continue
            targets = {new for (_, a), (new, _) in life.table.items() if a == action}
            for who in anyone:
                with pytest.raises(InvalidTransition, match=f"cannot {action.value} .* that is {status.value}") as info:
                    life.check(status, action, who)
                # a repeat (the action only ever leads here) is also a Conflict; any other wrong state is not
                assert isinstance(info.value, AlreadyDone) == (targets == {status})
                assert isinstance(info.value, Conflict) == (targets == {status})


def test_the_tables_of_claims_campaigns_and_disclosures() -> None:
    admin, seller_, consumer = actor(Role.ADMIN), actor(Role.SELLER), actor(Role.CONSUMER)
    assert CLAIMS.check("owed", ClaimAction.PAY, seller_) is ClaimStatus.PAID
    assert CLAIMS.check("paid", ClaimAction.CONFIRM, consumer) is ClaimStatus.CONFIRMED
    assert CLAIMS.check("owed", ClaimAction.VOID, actor(Role.REVIEWER)) is ClaimStatus.VOID
    with pytest.raises(InvalidTransition, match="cannot confirm claim 7 that is owed"):
        CLAIMS.check("owed", ClaimAction.CONFIRM, consumer, what="claim 7")
    with pytest.raises(AlreadyDone):
        CLAIMS.check("paid", ClaimAction.PAY, seller_)
    assert CAMPAIGNS.check("draft", CampaignAction.APPROVE, admin) is CampaignStatus.APPROVED
    assert CAMPAIGNS.check("approved", CampaignAction.PUBLISH, admin) is CampaignStatus.PUBLISHED
    with pytest.raises(InvalidTransition, match=r"allowed: approve") as wrong:
        CAMPAIGNS.check("draft", CampaignAction.PUBLISH, admin)
    assert not isinstance(wrong.value, Conflict)
    with pytest.raises(Conflict, match="published already"):
        CAMPAIGNS.check("published", CampaignAction.PUBLISH, admin)
    assert DISCLOSURES.check("published", DisclosureAction.WITHDRAW, admin) is DisclosureStatus.WITHDRAWN
    with pytest.raises(Conflict, match="withdrawn already"):
        DISCLOSURES.check("withdrawn", DisclosureAction.WITHDRAW, admin)
    with pytest.raises(ValueError):
        CLAIMS.check("lost", ClaimAction.PAY, seller_)  # an unknown status is not silently "not allowed"


def test_the_case_event_builder_fills_every_column_of_case_events() -> None:
    columns = {c.name for c in CaseEvent.__table__.columns} - {"event_id"}
    row = tx.case_event(1, REVIEWER, SNAPSHOT, "close", "open", "closed", "proof", evidence=[])
    assert set(row) == columns
    assert (row["actor_id"], row["role"], row["simulated"]) == ("rev-1", "reviewer", False)


def test_routing_leaves_a_case_in_appeal_with_the_score_it_was_decided_on(world: Session) -> None:  # noqa: F811
    s = world
    case_id = open_case(s, "S1")
    cases.decide(s, case_id, "close", REVIEWER, reason="proof", evidence=[TEST_BUY], now=SNAPSHOT)
    cases.appeal(s, case_id, seller("S1"), reason="another shop's item", now=SNAPSHOT)
    report = route_scored(s, [scored("S1", 0.99, version="9")], now=SNAPSHOT)
    assert (report.skipped_in_appeal, report.rescored, report.opened) == (1, 0, 0)
    case = s.execute(select(Case).where(Case.case_id == case_id)).scalar_one()
    assert (case.status, case.score, case.model_version) == ("appealed_close", 0.93, "7")
    actions = s.execute(select(CaseEvent.action).where(CaseEvent.case_id == case_id).order_by(CaseEvent.event_id))
    assert list(actions.scalars()) == ["open", "close", "appeal"]
