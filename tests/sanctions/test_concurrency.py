"""Many workers on the same cases at once (PostgreSQL): one decision per case, no claim lost or doubled."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidTransition
from dajia.db import open_store
from sanctions import cases
from sanctions.audit import verify_chain
from sanctions.models import Case, CaseEvent, Claim
from sanctions.routing import route_scored
from sanctions.schemas import Evidence
from sanctions.scored import ScoredShop
from sanctions.storefront import import_marketplace
from sanctions.workflow import Actor, Role
from tests.sanctions.conftest import SNAPSHOT, build_marketplace, shop_row

WORKERS = 8
SHOPS = 16
BUYERS = 3

pytestmark = pytest.mark.postgres


def _run(workers: int, job: Callable[[int, Session], None], engine: object) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(workers)

    def body(w: int) -> None:
        try:
            with Session(engine) as s:  # type: ignore[call-overload]
                barrier.wait()
                job(w, s)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_many_workers_deciding_and_settling_the_same_cases(postgres_url: str) -> None:
    engine = open_store(postgres_url, pool_size=WORKERS + 2)
    shops = [shop_row(f"S{i:02d}") for i in range(SHOPS)]
    orders = [
        (f"S{i:02d}", f"S{i:02d}-L{b % 2}", f"buyer-{i}-{b}", 50.0 + b, SNAPSHOT - timedelta(days=b + 1))
        for i in range(SHOPS)
        for b in range(BUYERS)
    ]
    with Session(engine) as s:
        import_marketplace(s, build_marketplace(shops, orders=orders))
        route_scored(s, [ScoredShop(x["shop_id"], 0.9, "suspected", "m", "1", [], 0.5) for x in shops], now=SNAPSHOT)  # type: ignore[arg-type]
        case_ids = list(s.execute(select(Case.case_id).order_by(Case.case_id)).scalars())
    assert len(case_ids) == SHOPS
    wins: Counter[int] = Counter()
    lock = threading.Lock()

    def decide(w: int, s: Session) -> None:
        rng = random.Random(w)
        order = case_ids[:]
        rng.shuffle(order)
        reviewer = Actor(f"rev-{w}", Role.REVIEWER)
        for case_id in order:
            # even cases are banned, odd ones closed; every worker tries every case
            action = "ban" if case_id % 2 == 0 else "close"
            try:
                cases.decide(
                    s,
                    case_id,
                    action,
                    reviewer,
                    reason=f"worker {w}",
                    evidence=[Evidence(kind="test_buy", ref=f"TB-{case_id}")],
                    now=SNAPSHOT,
                )
            except (Conflict, InvalidTransition):
                continue
            with lock:
                wins[case_id] += 1

    errors = _run(WORKERS, decide, engine)
    assert errors == []
    assert wins == Counter(dict.fromkeys(case_ids, 1))
    with Session(engine) as s:
        per_case = Counter(
            s.execute(select(CaseEvent.case_id).where(CaseEvent.action.in_(["ban", "close", "dismiss"]))).scalars()
        )
        assert per_case == Counter(dict.fromkeys(case_ids, 1))
        banned = [c for c in case_ids if c % 2 == 0]
        claims = s.execute(select(Claim.case_id, Claim.buyer_id, Claim.claim_id)).all()
        assert len(claims) == len(banned) * BUYERS
        assert Counter(c for c, _, _ in claims) == Counter(dict.fromkeys(banned, BUYERS))
        claim_rows = [(claim_id, buyer, case_id) for case_id, buyer, claim_id in claims]
        keeper = {
            case_id: f"keeper-{shop_id}" for case_id, shop_id in s.execute(select(Case.case_id, Case.shop_id)).tuples()
        }

    # every worker pays and confirms every claim, with the same idempotency keys (retries racing)
    def settle(w: int, s: Session) -> None:
        rng = random.Random(100 + w)
        order = claim_rows[:]
        rng.shuffle(order)
        for claim_id, buyer, case_id in order:
            paid = cases.record_payment(
                s,
                claim_id,
                Actor(keeper[case_id], Role.SELLER),
                payment_ref=f"T-{claim_id}",
                idempotency_key=f"pay-{claim_id}",
                now=SNAPSHOT,
            )
            assert paid.claim_id == claim_id
            confirmed = cases.confirm_claim(
                s, claim_id, Actor(buyer, Role.CONSUMER), idempotency_key=f"confirm-{claim_id}", now=SNAPSHOT
            )
            assert confirmed.status == "confirmed"

    errors = _run(WORKERS, settle, engine)
    assert errors == []
    with Session(engine) as s:
        statuses = Counter(s.execute(select(Case.status)).scalars())
        assert statuses == Counter({"settled": len(banned), "closed": SHOPS - len(banned)})
        assert s.execute(select(func.count()).where(Claim.status != "confirmed")).scalar_one() == 0
        settles = s.execute(select(func.count()).where(CaseEvent.action == "settle")).scalar_one()
        assert settles == len(banned)
        report = verify_chain(s)
        assert report.ok, report
    engine.dispose()
