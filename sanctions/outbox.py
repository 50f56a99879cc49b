"""The outbox relay: messages written with their change, delivered afterwards, each delivery tracked.

A sender is any callable taking one message; delivery is at-least-once (a crash between send
and mark re-sends), so receivers deduplicate by ``dedupe_key``, which is unique per message.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sanctions.models import OutboxMessage
from sanctions.store import unit_of_work
from sanctions.tx import utcnow


class OutboxItem(BaseModel):
    message_id: int
    dedupe_key: str
    kind: str
    recipient: str
    topic: str
    payload: dict[str, object]
    status: str


def counts(session: Session) -> dict[str, dict[str, int]]:
    """{kind: {status: n}}."""
    out: dict[str, dict[str, int]] = {}
    for kind, status, n in session.execute(
        select(OutboxMessage.kind, OutboxMessage.status, func.count()).group_by(
            OutboxMessage.kind, OutboxMessage.status
        )
    ):
        out.setdefault(kind, {})[status] = int(n)
    return out


def deliver(session: Session, send: Callable[[OutboxItem], None], *, limit: int = 1000) -> int:
    """Send up to ``limit`` pending messages in id order; marks each delivered after its send."""
    with unit_of_work(session):
        rows = list(
            session.execute(
                select(OutboxMessage)
                .where(OutboxMessage.status == "pending")
                .order_by(OutboxMessage.message_id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).scalars()
        )
        for m in rows:
            m.attempts += 1
            send(OutboxItem.model_validate(m, from_attributes=True))
            m.status = "delivered"
            m.delivered_at = utcnow()
    return len(rows)
