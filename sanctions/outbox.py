"""The outbox relay: messages written with their change, delivered afterwards, each delivery tracked.

A sender is any callable taking one message. Each message is claimed, sent and marked delivered
in its own short transaction (row lock ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on
SQLite), so concurrent relays never send one message twice and a relay killed at any point re-sends
at most the one message it had in flight: delivery is at-least-once with at most one duplicate
per killed relay. On PostgreSQL the delivered mark alone commits with ``synchronous_commit`` off
(saves a WAL flush a message): a crash of the database server itself (not of the relay) may lose
the marks of its last instants (up to about three ``wal_writer_delay``), and those messages are
sent again. Receivers deduplicate by ``dedupe_key`` (unique per message); :class:`FileMailbox`,
the file receiver the crackdown delivers to, does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from core.db import WRITE_OPTION, end_read_transaction
from core.errors import disk_full
from sanctions.models import OutboxMessage
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


#: built once (building a statement costs more than running it on SQLite); ``:mid`` is the message id
_CLAIM = (
    select(
        OutboxMessage.message_id,
        OutboxMessage.dedupe_key,
        OutboxMessage.kind,
        OutboxMessage.recipient,
        OutboxMessage.topic,
        OutboxMessage.payload,
        OutboxMessage.status,
        OutboxMessage.attempts,
    )
    .where(OutboxMessage.message_id == bindparam("mid"), OutboxMessage.status == "pending")
    .with_for_update(skip_locked=True)
)
_PENDING = (
    select(OutboxMessage.message_id)
    .where(
        OutboxMessage.status == "pending",
        OutboxMessage.message_id > bindparam("after"),
        or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= bindparam("now")),
    )
    .order_by(OutboxMessage.message_id)
    .limit(bindparam("n"))
)
_MARK = (
    update(OutboxMessage)
    .where(OutboxMessage.message_id == bindparam("mid"))
    .values(status="delivered", delivered_at=bindparam("at"), attempts=OutboxMessage.attempts + 1)
)


@dataclass(frozen=True)
class Retry:
    """What a relay does when a send fails: try again after ``base_seconds`` × 2^(attempts-1) (at most
    ``max_seconds``), and after ``max_attempts`` failed attempts give up: status ``dead`` (the
    dead letters, counted by :func:`backlog`, left for an operator)."""

    max_attempts: int = 8
    base_seconds: float = 2.0
    max_seconds: float = 3600.0

    def delay(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.base_seconds * 2 ** max(attempts - 1, 0), self.max_seconds))


_FAILED = (
    update(OutboxMessage)
    .where(OutboxMessage.message_id == bindparam("mid"), OutboxMessage.status == "pending")
    .values(
        attempts=OutboxMessage.attempts + 1,
        last_error=bindparam("error"),
        next_attempt_at=bindparam("next_at"),
        status=bindparam("status"),
    )
)


def _deliver_one(
    conn: Connection, message_id: int, send: Callable[[OutboxItem], None], retry: Retry | None = None
) -> bool:
    attempts, sending = 0, False
    try:
        with conn.begin():
            if conn.dialect.name == "postgresql":
                # this mark only: a database crash may lose the last instants of marks (those messages are
                # sent again, which receivers absorb); a killed relay loses none; saves an fsync a message
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO off")
            row = conn.execute(_CLAIM, {"mid": message_id}).mappings().one_or_none()
            if row is None:
                return False
            attempts = int(row["attempts"])
            sending = True
            send(OutboxItem.model_validate(dict(row)))
            sending = False
            conn.execute(_MARK, {"mid": message_id, "at": utcnow()})
    except Exception as exc:
        if retry is None or not sending:  # only a failed send is retried; the store's own errors surface
            raise
        tried = attempts + 1
        dead = tried >= retry.max_attempts
        with conn.begin():
            conn.execute(
                _FAILED,
                {
                    "mid": message_id,
                    "error": f"{type(exc).__name__}: {exc}"[:2000],
                    "next_at": None if dead else utcnow() + retry.delay(tried),
                    "status": "dead" if dead else "pending",
                },
            )
        return False
    return True


class Backlog(BaseModel):
    pending: int
    #: of ``pending``: those due now (not waiting for a retry's backoff)
    due: int
    #: seconds since the oldest pending message was written (0 when none)
    oldest_pending_seconds: float
    dead: int


def backlog(session: Session) -> Backlog:
    """What is waiting to leave: pending messages, the age of the oldest, and the dead letters."""
    now = utcnow()
    waiting = OutboxMessage.next_attempt_at.is_not(None) & (OutboxMessage.next_attempt_at > now)
    pending, oldest, backing_off = session.execute(
        select(func.count(), func.min(OutboxMessage.created_at), func.count().filter(waiting)).where(
            OutboxMessage.status == "pending"
        )
    ).one()
    dead = session.execute(select(func.count()).where(OutboxMessage.status == "dead")).scalar_one()
    session.rollback()
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    return Backlog(
        pending=int(pending), due=int(pending) - int(backing_off), oldest_pending_seconds=max(age, 0.0), dead=int(dead)
    )


def deliver(
    session: Session,
    send: Callable[[OutboxItem], None],
    *,
    limit: int = 1000,
    chunk: int = 500,
    retry: Retry | None = None,
) -> int:
    """Send up to ``limit`` pending messages in id order, each claimed, sent and committed as delivered
    in its own transaction (see the module doc); returns how many were sent. A message another relay
    holds is skipped. Runs on a connection of its own from the session's engine. A failed send raises,
    unless ``retry`` is given: then it is recorded (attempts, last error, the next attempt's time, or
    ``dead`` after the last) and the relay goes on with the next message."""
    end_read_transaction(session, "deliver")
    engine = session.get_bind()
    if not isinstance(engine, Engine):
        raise TypeError("deliver: the session must be bound to an engine (it opens a connection of its own)")
    sent = 0
    after = 0
    with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
        while sent < limit:
            with conn.begin():
                params = {"after": after, "n": min(chunk, limit - sent), "now": utcnow()}
                ids = list(conn.execute(_PENDING, params).scalars())
            if not ids:
                break
            for message_id in ids:
                sent += _deliver_one(conn, message_id, send, retry)
            after = ids[-1]
    return sent


class FileMailbox:
    """An idempotent receiver: each message becomes one JSON line in ``DIR/outbox-<kind>.jsonl``, at
    most once per ``dedupe_key``.

    Opening reads the keys already filed (a re-sent message is acknowledged without a second line)
    and cuts a torn last line (a kill or a full disk in mid-write). Each line reaches the operating
    system before ``send`` returns, so a killed relay loses nothing; ``fsync=True`` also forces it
    to the disk (survives a power cut, ~0.5 ms a message). A full disk raises ``DiskFull`` and
    leaves the file as it was.
    """

    def __init__(self, folder: Path, *, fsync: bool = False):
        self.folder = Path(folder)
        self.fsync = fsync
        self.keys: set[str] = set()
        #: re-sent messages recognised by their dedupe_key (not filed again)
        self.duplicates = 0
        self.filed = 0
        self._fds: dict[str, int] = {}
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.folder.glob("outbox-*.jsonl")):
            self._load(path)

    def _load(self, path: Path) -> None:
        data = path.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) != len(data):
            os.truncate(path, len(whole))  # a torn last line: that message was never acknowledged
        for line in whole.splitlines():
            self.keys.add(str(json.loads(line)["dedupe_key"]))

    def path(self, kind: str) -> Path:
        return self.folder / f"outbox-{kind}.jsonl"

    def __call__(self, item: OutboxItem) -> None:
        if item.dedupe_key in self.keys:
            self.duplicates += 1
            return
        if item.kind not in self._fds:
            self._fds[item.kind] = os.open(self.path(item.kind), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fd = self._fds[item.kind]
        line = (json.dumps(item.model_dump(), ensure_ascii=False, default=str) + "\n").encode("utf-8")
        size = os.fstat(fd).st_size
        try:
            view = memoryview(line)
            while view:  # a short write is followed by the one that reports why (ENOSPC)
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
        except OSError as exc:
            os.ftruncate(fd, size)  # no torn line left behind
            full = disk_full(exc, self.path(item.kind))
            if full is None:
                raise
            raise full from exc
        self.keys.add(item.dedupe_key)
        self.filed += 1

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> FileMailbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
