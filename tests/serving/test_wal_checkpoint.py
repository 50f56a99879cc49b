"""The service's SQLite write-ahead log is checkpointed by a thread of its own (``serving.wal``), never
inside a request's commit: real SQLite files, real threads."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.db import BUSY_TIMEOUT_SECONDS, JOURNAL_SIZE_LIMIT, make_engine
from serving.wal import Checkpoint, WalCheckpointer

#: one commit of this many bytes of text, ~10 pages of the log
ROW = "x" * 40_000


def _engine(path: Path, background: bool = True) -> Engine:
    engine = make_engine(f"sqlite:///{path}", "NORMAL", checkpoint_in_background=background)
    with engine.begin() as conn:
        conn.execute(sa.text("create table if not exists t (id integer primary key, body text)"))
    return engine


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[Path, Engine]]:
    """A database file with a table ``t`` and the service's engine for it (no checkpoint in commits)."""
    path = tmp_path / "d.db"
    engine = _engine(path)
    yield path, engine
    engine.dispose()


def _commits(engine: Engine, n: int) -> None:
    for _ in range(n):
        with engine.begin() as conn:
            conn.execute(sa.text("insert into t (body) values (:b)"), {"b": ROW})


def _wal_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.01)


def test_the_service_connections_never_checkpoint_inside_a_commit(tmp_path: Path) -> None:
    quiet, default = _engine(tmp_path / "a.db"), _engine(tmp_path / "b.db", background=False)
    with quiet.connect() as conn:
        assert conn.execute(sa.text("pragma wal_autocheckpoint")).scalar() == 0
        # a log started over after a burst is cut back to 64 MB rather than kept at its largest
        assert conn.execute(sa.text("pragma journal_size_limit")).scalar() == JOURNAL_SIZE_LIMIT
    with default.connect() as conn:
        assert conn.execute(sa.text("pragma wal_autocheckpoint")).scalar() == 1000
        assert conn.execute(sa.text("pragma journal_size_limit")).scalar() == -1  # SQLite's: no limit
    # SQLite's own checkpoint would keep the log near 1,000 pages (4 MB); without it the log holds all
    _commits(quiet, 150)  # ~6 MB
    _commits(default, 150)
    assert _wal_bytes(tmp_path / "a.db") > 5_000_000
    assert _wal_bytes(tmp_path / "b.db") < 5_000_000
    quiet.dispose()
    default.dispose()


def test_a_passive_checkpoint_copies_the_whole_log_and_the_next_writer_starts_it_over(db: tuple[Path, Engine]) -> None:
    path, engine = db
    _commits(engine, 150)
    grown = _wal_bytes(path)
    result = WalCheckpointer(engine).checkpoint()
    assert result.busy is False and result.log_frames > 1000 and result.checkpointed_frames == result.log_frames
    _commits(engine, 20)  # written from the start of the log again: the file does not grow
    assert _wal_bytes(path) == grown
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from t")).scalar() == 170


def test_the_thread_keeps_the_log_bounded_and_stop_empties_it(db: tuple[Path, Engine]) -> None:
    path, engine = db
    seen: list[Checkpoint] = []
    checkpointer = WalCheckpointer(engine, interval=0.02, observe=seen.append)
    checkpointer.start()
    with pytest.raises(RuntimeError, match="already running"):
        checkpointer.start()
    largest = 0
    for _ in range(10):  # ~16 MB written in all, in rounds with room for checkpoints between them
        _commits(engine, 40)
        largest = max(largest, _wal_bytes(path))
        # room for the thread: wait for its next checkpoint (not a fixed sleep: a loaded machine may not
        # schedule it within one), at most 10 s
        before = len(seen)
        deadline = time.monotonic() + 10.0
        while len(seen) <= before and time.monotonic() < deadline:
            time.sleep(0.01)
    checkpointer.stop()
    assert any(c.checkpointed_frames > 0 for c in seen)
    assert largest < 8_000_000, f"the log reached {largest} bytes"
    assert _wal_bytes(path) == 0  # the last checkpoint (TRUNCATE) emptied the file
    fresh = sa.create_engine(f"sqlite:///{path}")
    with fresh.connect() as conn:
        assert conn.execute(sa.text("select count(*) from t")).scalar() == 400
    fresh.dispose()


def test_a_reader_holding_an_old_snapshot_leaves_the_rest_for_later(db: tuple[Path, Engine]) -> None:
    _, engine = db
    _commits(engine, 5)
    checkpointer = WalCheckpointer(engine)
    reader = engine.connect()
    reader.begin()  # a deferred BEGIN (core.db's engine begins transactions itself); the first read takes the snapshot
    assert reader.exec_driver_sql("select count(*) from t").scalar() == 5  # a snapshot at 5 rows
    _commits(engine, 5)
    held = checkpointer.checkpoint()
    assert held.checkpointed_frames < held.log_frames  # the frames after the reader's snapshot stay
    t0 = time.monotonic()
    assert checkpointer.checkpoint("TRUNCATE", wait_ms=200).busy is True  # cannot empty the log under a reader
    assert time.monotonic() - t0 < 5  # waited its 200 ms, not the connection's busy timeout
    with engine.connect() as conn:  # and the connection's own timeout is back
        assert conn.exec_driver_sql("pragma busy_timeout").scalar() == BUSY_TIMEOUT_SECONDS * 1000
    reader.commit()
    reader.close()
    done = checkpointer.checkpoint()
    assert done.checkpointed_frames == done.log_frames


def test_a_failing_checkpoint_is_reported_and_the_thread_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    engine = _engine(folder / "d.db")
    _commits(engine, 3)
    errors: list[BaseException] = []
    seen: list[Checkpoint] = []
    lock = threading.Lock()

    def failed(mode: str, exc: BaseException) -> None:
        assert mode == "PASSIVE"  # the RESTART step follows only a PASSIVE one that went through
        with lock:
            errors.append(exc)

    checkpointer = WalCheckpointer(engine, interval=0.02, observe=seen.append, on_error=failed)
    engine.dispose()  # no pooled connection: the next checkpoint opens the file again
    shutil.rmtree(folder)
    folder.write_text("a file where the database's folder was")
    checkpointer.start()
    _until(lambda: len(errors) >= 2)
    assert all("unable to open database file" in str(e) for e in errors), [repr(e) for e in errors]
    assert not seen
    folder.unlink()
    folder.mkdir()  # the folder is back (an empty database): checkpoints go through again
    _until(lambda: len(seen) >= 1)
    assert checkpointer._thread is not None and checkpointer._thread.is_alive()
    checkpointer.stop()
    engine.dispose()


def test_only_sqlite_and_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="only a SQLite database"):
        WalCheckpointer(sa.create_engine("postgresql://u@127.0.0.1/none"))
    with pytest.raises(ValueError, match="interval must be > 0"):
        WalCheckpointer(sa.create_engine("sqlite://"), interval=0)


def test_the_log_stays_bounded_under_writes_that_never_pause(db: tuple[Path, Engine]) -> None:
    """A PASSIVE checkpoint only copies what was in the log when it began: with commits arriving all the
    time the log was never started over (2.4 GB in two minutes of load on the real service)."""
    path, engine = db
    row = "y" * 3_000
    stop = threading.Event()
    written = 0
    largest = 0

    def write() -> None:
        nonlocal written
        while not stop.is_set():
            with engine.begin() as conn:
                conn.execute(sa.text("insert into t (body) values (:b)"), {"b": row})
            written += 1

    writer = threading.Thread(target=write)
    checkpointer = WalCheckpointer(engine, interval=0.05, restart_frames=1000)
    checkpointer.start()
    writer.start()
    # run until enough bytes went through the log to tell (~3 s on a quiet machine; a loaded machine
    # writes slower, so the test waits for the bytes, not for the clock)
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and written * len(row) < 60_000_000:
        largest = max(largest, _wal_bytes(path))
        time.sleep(0.02)
    stop.set()
    writer.join()
    checkpointer.stop()
    total = written * len(row)
    assert total > 15_000_000, f"only {total} bytes written in 60 s: too few to tell"
    assert largest < total / 3, f"the log reached {largest} bytes of {total} written"
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from t")).scalar() == written
