"""The prediction log: every score the service computes, committed before the caller sees it.

Requests hand their rows to one writer thread and wait; the writer takes everything queued since
its last commit and writes it in ONE transaction (group commit), so under load many requests share
one fsync. A response is only sent after its rows are committed, so killing the process after an
answer loses nothing.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from serving.db import predictions


@dataclass
class _Batch:
    rows: list[dict[str, Any]]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


@dataclass(frozen=True)
class LoggedPrediction:
    id: int
    logged_at: datetime
    request_id: str
    key_id: str | None
    shop_id: str
    model_name: str
    model_version: str
    feature_digest: str
    score: float
    tier: str
    reasons: list[str] = field(default_factory=list)
    shadow: bool = False


def _resolve(fut: asyncio.Future[None], exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)


class PredictionLog:
    """Durable, batch-efficient append of scored rows; queryable by shop."""

    def __init__(
        self,
        engine: Engine,
        max_rows_per_commit: int = 20_000,
        observe: Callable[[float, int], None] | None = None,
        inline: bool = False,
    ) -> None:
        """``observe(seconds, rows)`` is called after each commit (for metrics)."""
        self.engine = engine
        self.observe = observe
        self.max_rows_per_commit = max_rows_per_commit
        self._queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0
        #: commit on the event loop (no thread hop) instead of in the writer thread
        self.inline = inline
        self._pending: list[_Batch] = []
        self._scheduled = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    async def append(self, rows: list[dict[str, Any]]) -> None:
        """Return once ``rows`` are committed (raises if the commit failed)."""
        if not rows:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if self.inline:
            self._pending.append(_Batch(rows, loop, fut))
            if not self._scheduled:
                self._scheduled = True
                loop.call_soon(self._flush_inline)
        else:
            self._queue.put(_Batch(rows, loop, fut))
        await fut

    def _flush_inline(self) -> None:
        batches, self._pending, self._scheduled = self._pending, [], False
        error = self._commit(batches, sum(len(b.rows) for b in batches))
        for b in batches:
            _resolve(b.future, error)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batches = [first]
            n = len(first.rows)
            while n < self.max_rows_per_commit:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batches.append(nxt)
                n += len(nxt.rows)
            error = self._commit(batches, n)
            for b in batches:
                b.loop.call_soon_threadsafe(_resolve, b.future, error)

    def _commit(self, batches: list[_Batch], n: int) -> BaseException | None:
        t0 = time.perf_counter()
        try:
            with self.engine.begin() as conn:
                conn.execute(predictions.insert(), [r for b in batches for r in b.rows])
        except Exception as exc:
            return exc
        self.commits += 1
        if self.observe is not None:
            self.observe(time.perf_counter() - t0, n)
        return None

    def query(
        self, shop_id: str | None = None, limit: int = 100, before_id: int | None = None, shadow: bool | None = None
    ) -> list[LoggedPrediction]:
        """Newest first; ``before_id`` pages backwards."""
        stmt = sa.select(predictions).order_by(predictions.c.id.desc()).limit(limit)
        if shop_id is not None:
            stmt = stmt.where(predictions.c.shop_id == shop_id)
        if before_id is not None:
            stmt = stmt.where(predictions.c.id < before_id)
        if shadow is not None:
            stmt = stmt.where(predictions.c.shadow == shadow)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            LoggedPrediction(
                id=r.id,
                logged_at=r.logged_at,
                request_id=r.request_id,
                key_id=r.key_id,
                shop_id=r.shop_id,
                model_name=r.model_name,
                model_version=r.model_version,
                feature_digest=r.feature_digest,
                score=r.score,
                tier=r.tier,
                reasons=list(r.reasons or []),
                shadow=bool(r.shadow),
            )
            for r in rows
        ]
