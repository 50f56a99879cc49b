"""Issue 17 point 7: the running service delivers the outbox (SQLite and PostgreSQL): a decision made
through the API is delivered within seconds, the gauges say what waits; a failing receiver is retried
with backoff and ends as a dead letter."""

from __future__ import annotations

import json
import time

from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from sanctions.models import OutboxMessage
from sanctions.outbox import OutboxItem, Retry, backlog, deliver
from sanctions.routing import route_scored
from sanctions.scored import ScoredShop
from sanctions.storefront import import_marketplace
from tests.sanctions.api_support import Served, decide, scores, served
from tests.sanctions.conftest import build_marketplace, shop_row

__all__ = ["served"]  # the fixture


def test_a_decision_made_through_the_api_is_delivered_within_seconds(served: Served) -> None:
    served.client("scorer").post("/v1/cases/routing", json=scores({"S4": 0.9}))
    started = time.monotonic()
    case_id = decide(served.client("reviewer"), "S4", "ban")["case_id"]
    filed: dict[str, dict[str, object]] = {}
    while time.monotonic() - started < 20:
        path = served.outbox / "outbox-notify_buyer.jsonl"
        if path.exists():
            filed = {m["recipient"]: m for m in map(json.loads, path.read_text().splitlines())}
        if {"B1", "B2"} <= set(filed):
            break
        time.sleep(0.1)
    took = time.monotonic() - started
    assert {"B1", "B2"} <= set(filed), "the buyers' notices were not delivered in 20 s"
    assert took < 5, f"delivered after {took:.1f} s"
    assert filed["B1"]["payload"]["case_id"] == case_id  # type: ignore[index]
    with served.session() as s:
        statuses = set(s.execute(select(OutboxMessage.status)).scalars())
    assert statuses == {"delivered"}
    metrics = served.client().get("/metrics").text
    assert "dajia_outbox_pending 0.0" in metrics and "dajia_outbox_dead 0.0" in metrics
    assert "dajia_outbox_oldest_pending_seconds 0.0" in metrics


def test_a_failing_receiver_is_retried_with_backoff_then_dead_lettered(session: Session) -> None:
    import_marketplace(session, build_marketplace([shop_row("D1"), shop_row("D2")]), detect_evasion=False)
    route_scored(session, [ScoredShop(sid, 0.9, "suspected", "m", "1", [], 0.5) for sid in ("D1", "D2")])
    tries: list[str] = []

    def broken(item: OutboxItem) -> None:
        tries.append(item.dedupe_key)
        raise ConnectionError("mail gateway refused")

    fast = Retry(max_attempts=3, base_seconds=0.0)
    for _ in (1, 2):
        assert deliver(session, broken, retry=fast) == 0
        b = backlog(session)
        assert (b.pending, b.dead, b.due) == (2, 0, 2) and b.oldest_pending_seconds >= 0
    assert deliver(session, broken, retry=fast) == 0
    b = backlog(session)
    assert (b.pending, b.dead) == (0, 2)
    assert len(tries) == 6  # two messages, three attempts each
    rows = session.execute(select(OutboxMessage)).scalars().all()
    assert {(m.status, m.attempts) for m in rows} == {("dead", 3)}
    assert all(m.last_error == "ConnectionError: mail gateway refused" for m in rows)
    session.rollback()
    # backoff: after a failure the message waits before it is tried again
    route_scored(session, [ScoredShop("D1", 0.95, "suspected", "m", "2", [], 0.5)])  # a rescore: no message
    import_marketplace(session, build_marketplace([shop_row("D3")]), detect_evasion=False)
    route_scored(session, [ScoredShop("D3", 0.9, "suspected", "m", "1", [], 0.5)])
    slow = Retry(max_attempts=5, base_seconds=60.0)
    assert deliver(session, broken, retry=slow) == 0
    assert deliver(session, broken, retry=slow) == 0  # not due yet: not tried
    assert len(tries) == 7
    b = backlog(session)
    assert (b.pending, b.due) == (1, 0)
    delivered: list[str] = []
    session.execute(OutboxMessage.__table__.update().values(next_attempt_at=None))  # the backoff elapsed
    session.commit()
    assert deliver(session, lambda m: delivered.append(m.dedupe_key), retry=slow) == 1
    assert delivered == ["case:3:opened"] and backlog(session).pending == 0


def test_an_idle_dispatcher_polls_less_and_a_commit_wakes_it(engine: Engine) -> None:
    """Issue 25: idle, the wait between ticks doubles up to ``idle_seconds``; a commit of a workflow
    session of the same process (what an API decision does) makes it tick at once and deliver."""
    from serving.outbox_dispatcher import OutboxDispatcher

    sessions = sessionmaker(engine, expire_on_commit=False)
    sent: list[str] = []
    seen: list[object] = []
    dispatcher = OutboxDispatcher(
        sessions, lambda m: sent.append(m.dedupe_key), interval=0.05, observe=seen.append, idle_seconds=0.4
    )
    dispatcher.start()
    try:
        time.sleep(1.5)
        idle_ticks = dispatcher.ticks
        # at a fixed 0.05 s it would have ticked ~30 times; doubling to 0.4 s: 0.05+0.1+0.2+0.4+0.4+0.4 ~ 6-7
        assert 3 <= idle_ticks <= 10, idle_ticks
        with sessions() as s:
            import_marketplace(s, build_marketplace([shop_row("W1")]), detect_evasion=False)
            route_scored(s, [ScoredShop("W1", 0.9, "suspected", "m", "1", [], 0.5)])
        started = time.monotonic()
        while not sent and time.monotonic() - started < 5:
            time.sleep(0.01)
        assert sent == ["case:1:opened"]
        assert time.monotonic() - started < 0.3, "the commit did not wake the dispatcher"
    finally:
        dispatcher.stop()
    assert not event.contains(sessions, "after_commit", dispatcher._after_commit)
