"""Delivery while serving: a background thread relays the sanction outbox, so a decision made through
the API leaves the system within seconds (``ServeOptions.outbox_seconds``, default 1 s; 0 turns it off).

Each tick relays every due message (``sanctions.outbox.deliver`` with a retry policy: a failed send is
tried again with exponential backoff, and after the last attempt it becomes a dead letter) and
refreshes the Prometheus gauges ``dajia_outbox_pending``, ``dajia_outbox_oldest_pending_seconds`` and
``dajia_outbox_dead``. The receiver is the file mailbox under ``<home>/outbox/`` (one JSON line a
message, deduplicated by ``dedupe_key``), the stand-in for the mail/SMS gateway a deployment plugs in
(any callable taking one ``OutboxItem``). Several service processes may run it at once: messages are
claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and under the write lock on SQLite.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("dajia.serving.outbox")


class OutboxDispatcher:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        send: Callable[[Any], None],
        interval: float,
        observe: Callable[[Any], None],
        retry: Any = None,
    ) -> None:
        from sanctions.outbox import Retry

        self.sessions = sessions
        self.send = send
        self.interval = interval
        self.observe = observe
        self.retry = retry or Retry()
        self.delivered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-dispatcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def tick(self) -> int:
        """Relay what is due now and refresh the gauges; returns how many were delivered."""
        from sanctions.outbox import backlog, deliver

        with self.sessions() as session:
            n = 0
            if backlog(session).due:  # a read first: no write lock taken while nothing is due
                n = deliver(session, self.send, limit=5000, retry=self.retry)
            self.observe(backlog(session))
        self.delivered += n
        return n

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the database may be away for a while: log, wait, try again
                log.exception("outbox relay failed; trying again in %.1f s", self.interval)
            self._stop.wait(self.interval)
