"""The prediction log: every score the service computes, committed before the caller sees it.

Requests hand their rows over and wait; the rows of all requests of one event-loop turn form one
group, and the writer thread takes every group queued since its last commit and writes them in ONE
transaction (group commit), so under load many requests share one commit and one fsync. A response
is only sent after its rows are committed, so killing the process after an answer loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
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


class _Inserter:
    """Appends prediction rows on one connection it keeps for the log's lifetime.

    The INSERT is compiled once for the dialect and run with the DBAPI's ``executemany``, the values
    converted by the columns' own bind processors (what SQLAlchemy itself would send), then one commit.
    Per commit that skips the pool checkout and return, the transaction and execution-context objects:
    measured on SQLite, a commit of one row costs about a third of ``engine.begin()`` + Core insert (the
    service commits small groups under load, so this is most of the log's CPU). A DBAPI error is raised
    as SQLAlchemy's own ``DBAPIError`` (so the API still answers 503 for a lost database) and the
    connection is dropped; the next commit takes a fresh one from the pool.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect
        columns = [c for c in predictions.columns if c.name != "id"]
        compiled = predictions.insert().inline().compile(dialect=dialect, column_keys=[c.name for c in columns])
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        order = list(compiled.positiontup or []) if self.positional else [c.name for c in columns]
        processors = {c.name: c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns}
        self.converters = [(name, processors[name]) for name in order]
        #: SQLite connections of ``core.db.make_engine`` leave beginning to the caller (the driver's own
        #: implicit BEGIN is off): without one, every row of executemany would be a transaction of its own
        self._begin = "BEGIN IMMEDIATE" if dialect.name == "sqlite" else None
        self._conn: Any = None

    def _params(self, rows: list[dict[str, Any]]) -> list[Any]:
        """The driver's parameters, column by column: a value repeated down a column (one request's time,
        empty reasons, the shadow flag) is converted once."""
        columns = [
            [r[k] for r in rows] if f is None else _converted([r[k] for r in rows], f) for k, f in self.converters
        ]
        if self.positional:
            return list(zip(*columns, strict=True))
        names = [k for k, _ in self.converters]
        return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]

    def insert(self, rows: list[dict[str, Any]]) -> None:
        params = self._params(rows)
        if self._conn is None:
            self._conn = self.engine.raw_connection()
        conn = self._conn
        cursor = None
        try:
            cursor = conn.cursor()
            if self._begin is not None:
                cursor.execute(self._begin)
            cursor.executemany(self.sql, params)
            conn.commit()
        except Exception as exc:
            dialect = self.engine.dialect
            error: Any = exc  # a DBAPI error: dialect.loaded_dbapi.Error (the driver's own class)
            is_dbapi = isinstance(error, dialect.loaded_dbapi.Error)
            gone = is_dbapi and dialect.is_disconnect(error, conn.dbapi_connection, cursor)
            self._drop(cursor)
            if is_dbapi:
                raise sa_exc.DBAPIError.instance(
                    self.sql, None, error, dialect.loaded_dbapi.Error, connection_invalidated=gone, dialect=dialect
                ) from exc
            raise
        cursor.close()

    def _drop(self, cursor: Any) -> None:
        """Forget the connection after a failure: its cursor closed and transaction rolled back first (a
        SQLite connection closed with a statement alive stays open, holding its lock, until collected)."""
        conn, self._conn = self._conn, None
        for step in (lambda: cursor is not None and cursor.close(), conn.rollback, conn.invalidate):
            with contextlib.suppress(Exception):  # a connection that cannot be cleaned up is gone already
                step()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _converted(values: list[Any], convert: Callable[[Any], Any]) -> list[Any]:
    """``convert`` of each value, computed once per distinct value (see :func:`_key`); other values are
    converted each time."""
    done: dict[Any, Any] = {}
    out: list[Any] = []
    for v in values:
        key = _key(v)
        if key is None:
            out.append(convert(v))
            continue
        hit = done.get(key, _NOT_YET)
        if hit is _NOT_YET:
            hit = done[key] = convert(v)
        out.append(hit)
    return out


#: scalars whose equality never mixes types once the type is part of the key
_SCALARS = (str, int, float, bool, type(None), datetime)


def _key(v: Any) -> Any:
    """A key under which equal values convert alike: a scalar with its type (1, True and 1.0 apart), a
    list of strings (the reasons) by its items; None for anything else, whose equality could join values
    that convert differently (``[1] == [True]``, but their JSON differs)."""
    t = type(v)
    if t in _SCALARS:
        return (t, v)
    if t is list and set(map(type, v)) <= {str}:
        return (list, tuple(v))
    return None


_NOT_YET = object()


def _resolve(fut: asyncio.Future[None], exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)


def _resolve_all(futures: list[asyncio.Future[None]], exc: BaseException | None) -> None:
    for fut in futures:
        _resolve(fut, exc)


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
        self._queue: queue.SimpleQueue[list[_Batch] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0
        #: commit on the event loop (no thread hop) instead of in the writer thread
        self.inline = inline
        self._pending: list[_Batch] = []
        self._scheduled = False
        self._inserter = _Inserter(engine)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        self._inserter.close()

    async def append(self, rows: list[dict[str, Any]]) -> None:
        """Return once ``rows`` are committed (raises if the commit failed).

        The rows of every request that appends within one turn of the event loop go into one group
        (handed over once that turn ends), committed on the loop (``inline``) or by the writer thread,
        which also joins the groups that queued up while it was committing."""
        if not rows:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._pending.append(_Batch(rows, loop, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._hand_over)
        await fut

    def _hand_over(self) -> None:
        batches, self._pending, self._scheduled = self._pending, [], False
        if not self.inline:
            self._queue.put(batches)
            return
        error = self._commit(batches, sum(len(b.rows) for b in batches))
        _resolve_all([b.future for b in batches], error)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batches = list(first)
            n = sum(len(b.rows) for b in batches)
            while n < self.max_rows_per_commit:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batches += nxt
                n += sum(len(b.rows) for b in nxt)
            error = self._commit(batches, n)
            by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            for b in batches:
                by_loop.setdefault(b.loop, []).append(b.future)
            for loop, futures in by_loop.items():  # one wake-up per event loop, not one per request
                loop.call_soon_threadsafe(_resolve_all, futures, error)

    def _commit(self, batches: list[_Batch], n: int) -> BaseException | None:
        t0 = time.perf_counter()
        try:
            self._inserter.insert([r for b in batches for r in b.rows])
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
