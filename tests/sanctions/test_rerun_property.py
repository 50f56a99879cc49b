"""Property: after any sequence of sweeps, decisions (close, ban, dismiss), settlements, reversals and
ban-evasion sweeps, routing the last sweep's scores again changes nothing (no case opened or
rescored, no row written, nothing frozen), and neither does routing them once more."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import InvalidTransition
from dajia.crackdown import store_footprint
from dajia.db import open_store
from sanctions import cases
from sanctions.models import Case, Claim
from sanctions.routing import detect_ban_evasion, route_scored
from sanctions.schemas import Evidence
from sanctions.scored import ScoredShop
from sanctions.storefront import import_marketplace
from sanctions.workflow import Actor, Role
from tests.sanctions.conftest import SNAPSHOT, build_marketplace, shop_row

SHOPS = ["P0", "P1", "P2", "P3", "P4"]
REVIEWER = Actor("prop-reviewer", Role.REVIEWER)
#: four eyes: an appeal is decided by someone other than whoever made the decision appealed
APPEALS_REVIEWER = Actor("prop-appeals-reviewer", Role.REVIEWER)
PROOF = Evidence(kind="test_buy", ref="TB-P", detail="fake")

scores = st.dictionaries(st.sampled_from(SHOPS), st.floats(0.0, 1.0, allow_nan=False), min_size=1)
sweep = st.tuples(st.just("sweep"), scores)
decision = st.tuples(st.just("decide"), st.tuples(st.sampled_from(SHOPS), st.sampled_from(["close", "ban", "dismiss"])))
settle = st.tuples(st.just("settle"), st.sampled_from(SHOPS))
reverse = st.tuples(st.just("reverse"), st.sampled_from(SHOPS))
evasion = st.tuples(st.just("evasion"), st.just(""))
programs = st.lists(st.one_of(sweep, decision, decision, settle, reverse, evasion), max_size=14)


def _scored(values: dict[str, float], version: str) -> list[ScoredShop]:
    return [
        ScoredShop(sid, v, "suspected" if v >= 0.5 else "low", "m", version, [], 0.5)
        for sid, v in sorted(values.items())
    ]


def _latest(s: Session, shop: str) -> Case | None:
    q = select(Case).where(Case.shop_id == shop).order_by(Case.case_id.desc()).limit(1)
    return s.execute(q).scalar_one_or_none()


def _run(s: Session, program: list[tuple[str, object]]) -> None:
    import_marketplace(
        s,
        build_marketplace(
            [shop_row(sid, owner_phone="shared" if sid in ("P3", "P4") else f"p-{sid}") for sid in SHOPS],
            orders=[(sid, f"{sid}-L0", f"B-{sid}", 30.0, SNAPSHOT) for sid in SHOPS],
        ),
        detect_evasion=False,
    )
    last: list[ScoredShop] = []
    for n, (op, arg) in enumerate(program):
        if op == "sweep":
            assert isinstance(arg, dict)
            last = _scored(arg, str(n))
            route_scored(s, last)
            continue
        if op == "evasion":
            detect_ban_evasion(s)
            continue
        assert isinstance(arg, (tuple, str))
        shop, action = arg if isinstance(arg, tuple) else (arg, op)
        case = _latest(s, str(shop))
        s.rollback()
        if case is None:
            continue
        try:
            if op == "decide" and case.status == "open":
                evidence = [PROOF] if action == "close" else []
                cases.decide(s, case.case_id, str(action), REVIEWER, reason="r", evidence=evidence)
            elif op == "settle" and case.status == "banned":
                for claim in s.execute(select(Claim).where(Claim.case_id == case.case_id)).scalars().all():
                    s.rollback()
                    keeper = Actor(f"keeper-{shop}", Role.SELLER)
                    cases.record_payment(s, claim.claim_id, keeper, payment_ref="t")
                    cases.confirm_claim(s, claim.claim_id, Actor(claim.buyer_id, Role.CONSUMER))
            elif op == "reverse" and case.status in ("closed", "banned"):
                cases.appeal(s, case.case_id, Actor(f"keeper-{shop}", Role.SELLER), reason="appeal")
                cases.decide_appeal(s, case.case_id, True, APPEALS_REVIEWER, reason="upheld")
        except InvalidTransition:
            s.rollback()
    before = store_footprint(s)
    for _ in range(2):
        again = route_scored(s, last)
        assert (again.opened, again.rescored, again.reopened) == (0, 0, 0), (program, again)
        assert store_footprint(s) == before
        assert again.unchanged + again.kept_decided + again.skipped_closed + again.skipped_in_appeal == (
            again.seen - again.below_tier
        )


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=scores, program=programs)
def test_the_same_routing_twice_the_second_changes_nothing(
    backend: str,
    first: dict[str, float],
    program: list[tuple[str, object]],
    sqlite_template: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    if backend == "sqlite":
        target = tmp_path / f"{uuid.uuid4().hex}.db"
        shutil.copyfile(sqlite_template, target)
        url = f"sqlite:///{target}"
    else:
        from tests.sanctions.conftest import _emptied

        url = _emptied(str(request.getfixturevalue("postgres_store_url")))
    engine = open_store(url)
    try:
        with Session(engine, expire_on_commit=False) as s:
            _run(s, [("sweep", first), *program])
    finally:
        engine.dispose()
