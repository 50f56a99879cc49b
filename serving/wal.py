"""SQLite's write-ahead log checkpointed off the request path.

By default SQLite checkpoints inside the commit that takes the log past 1,000 pages: that commit copies
the log into the database and fsyncs it. Under load the prediction log commits hundreds of groups a
second, so a checkpoint lands in some request's commit every second or so, and every request of that
group waits for it. Measured with ``benchmarks/bench_api.py`` (by id, concurrency 8): p99 13 ms with
SQLite's automatic checkpoints, 4 ms with none in the commits.

So the service's connections never checkpoint (``PRAGMA wal_autocheckpoint=0``, see
``serving.db.make_engine``) and a thread of its own does, every ``interval`` seconds, in two steps:

1. PASSIVE: copies the log into the database and syncs it without blocking readers or writers. It can
   only copy what was in the log when it began, and SQLite starts the log over only once all of it is
   copied; under commits that never pause that never happens (2.4 GB of log in two minutes of load).
2. When the log holds ``restart_frames`` or more: a second PASSIVE catches up with what came in during
   the first, then RESTART waits (at most ``restart_wait_ms``) for the commit in progress or a reader,
   blocks new commits while it copies the little left and syncs, and lets the next commit start the log
   over. This is the only step a commit can wait for.

At stop a TRUNCATE checkpoint empties the log file. A checkpoint that fails (disk full, database locked
by another process) is counted and logged, and the next one tries again; commits go on meanwhile, the
log just grows until a checkpoint gets through.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpoint:
    """One ``PRAGMA wal_checkpoint`` result: its mode, whether it was blocked, the log's frames, the frames
    copied."""

    mode: str
    busy: bool
    log_frames: int
    checkpointed_frames: int


class WalCheckpointer:
    """Checkpoints the SQLite database behind ``engine`` every ``interval`` seconds from its own thread (the
    two steps above). ``observe`` gets each checkpoint; ``on_error`` the mode and exception of each one that
    raised."""

    def __init__(
        self,
        engine: Engine,
        interval: float = 1.0,
        observe: Callable[[Checkpoint], None] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
        restart_frames: int = 16_000,
        restart_wait_ms: int = 20,
    ) -> None:
        if engine.dialect.name != "sqlite":
            raise ValueError(f"only a SQLite database has a write-ahead log to checkpoint, not {engine.dialect.name}")
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        self.engine = engine
        self.interval = interval
        self.restart_frames = restart_frames
        self.restart_wait_ms = restart_wait_ms
        self._observe = observe
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def checkpoint(self, mode: str = "PASSIVE", wait_ms: int | None = None) -> Checkpoint:
        """Run one checkpoint now (``PASSIVE``, ``FULL``, ``RESTART`` or ``TRUNCATE``) on a pooled connection.
        The modes other than PASSIVE wait for readers up to the connection's busy timeout, or ``wait_ms``."""
        if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
            raise ValueError(f"unknown checkpoint mode {mode!r}")
        conn = self.engine.raw_connection()
        try:
            cur = conn.cursor()
            if wait_ms is not None:
                cur.execute("PRAGMA busy_timeout")
                (before,) = cur.fetchone() or (0,)
                cur.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
            try:
                cur.execute(f"PRAGMA wal_checkpoint({mode})")
                row = cur.fetchone()
            finally:
                if wait_ms is not None:
                    cur.execute(f"PRAGMA busy_timeout={int(before)}")
            cur.close()
        finally:
            conn.close()
        if row is None:  # not a WAL database: nothing to checkpoint
            raise RuntimeError("PRAGMA wal_checkpoint gave no result: is the database in WAL mode?")
        busy, frames, copied = row
        result = Checkpoint(mode, bool(busy), int(frames), int(copied))
        if self._observe is not None:
            self._observe(result)
        return result

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the checkpointer is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="dajia-wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, then empty the log file with a last TRUNCATE checkpoint (waiting at most a
        second for a reader: the log left behind is read and checkpointed by the next start)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._attempt("TRUNCATE", wait_ms=1000)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            copied = self._attempt("PASSIVE")
            if copied is None or copied.log_frames < self.restart_frames:
                continue
            # catch up with what came in meanwhile without blocking, so the RESTART has little left to copy
            copied = self._attempt("PASSIVE")
            if copied is not None:
                self._attempt("RESTART", wait_ms=self.restart_wait_ms)

    def _attempt(self, mode: str, wait_ms: int | None = None) -> Checkpoint | None:
        try:
            return self.checkpoint(mode, wait_ms)
        except Exception as exc:  # the next checkpoint tries again; the service goes on
            log.warning("SQLite checkpoint (%s) failed: %s", mode, exc)
            if self._on_error is not None:
                self._on_error(mode, exc)
            return None
