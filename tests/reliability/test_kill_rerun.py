"""Campaign publishing and outbox delivery SIGKILLed at several points, then rerun: every message is
delivered exactly once as the receiver sees it, none is lost, each kill causes at most one raw
re-send, and a publication killed midway leaves no message at all (the rerun then makes one set).

The killed processes are real ``python -m tests.reliability.test_kill_rerun <publish|deliver>``
children on the test's store (SQLite file or PostgreSQL schema). The child's sender appends each
raw send to ``raw.log`` before filing it in a :class:`FileMailbox`; ``--hang-after N`` makes it
stop inside the N-th send (after filing, before the delivered mark commits) and write a marker
file, so the kill lands on the worst moment for sure; ``--throttle`` lets a kill land anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from core import atomic
from sanctions import cases
from sanctions.audit import verify_chain
from sanctions.campaigns import approve_campaign, create_campaign, publish_campaign
from sanctions.models import AuditEntry, Campaign, OutboxMessage
from sanctions.outbox import FileMailbox, OutboxItem, deliver
from sanctions.routing import route_scored
from sanctions.scored import ScoredShop
from sanctions.storefront import import_marketplace
from sanctions.workflow import Actor, Role
from tests.sanctions.conftest import (  # noqa: F401 (fixtures)
    SNAPSHOT,
    build_marketplace,
    db_url,
    engine,
    postgres_store_url,
    shop_row,
    sqlite_template,
)

SHOPS = 150
BANNED = 6
REVIEWER = Actor("rev-kill", Role.REVIEWER)
ADMIN = Actor("admin-kill", Role.ADMIN)
PUBLISH_KEY = "kill-test-publish"
#: the last statement of the publishing transaction: everything is written, nothing committed yet
LAST_PUBLISH_STATEMENT = "INSERT INTO idempotency_keys"
ROOT = Path(__file__).resolve().parents[2]


# -- the child: publish or deliver, optionally hanging at a chosen point --------------------------
class RecordingMailbox:
    """The receiver of the test: every raw send goes to ``raw.log`` first, then into the mailbox."""

    def __init__(self, folder: Path, hang_after: int = 0, marker: Path | None = None, throttle: float = 0.0):
        self.mailbox = FileMailbox(folder / "mailbox")
        self.raw = os.open(folder / "raw.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.sends = 0
        self.hang_after = hang_after
        self.marker = marker
        self.throttle = throttle

    def __call__(self, item: OutboxItem) -> None:
        os.write(self.raw, f"{item.dedupe_key}\n".encode())
        self.mailbox(item)
        self.sends += 1
        if self.sends == self.hang_after:
            assert self.marker is not None
            atomic.write_text(self.marker, item.dedupe_key)  # tells the parent; appears whole
            time.sleep(600)  # killed here: filed, not yet marked delivered
        if self.throttle:
            time.sleep(self.throttle)

    def close(self) -> None:
        self.mailbox.close()
        os.close(self.raw)


def child_main(argv: list[str]) -> None:
    from dajia.db import open_store

    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("publish", "deliver"))
    ap.add_argument("--db", required=True)
    ap.add_argument("--folder", type=Path, required=True)
    ap.add_argument("--campaign", type=int, default=0)
    ap.add_argument("--hang", action="store_true", help="publish: stop before the commit")
    ap.add_argument("--hang-after", type=int, default=0, help="deliver: stop inside the N-th send")
    ap.add_argument("--throttle", type=float, default=0.0)
    args = ap.parse_args(argv)
    marker = args.folder / "marker"
    eng = open_store(args.db)
    if args.hang:

        @event.listens_for(eng, "before_cursor_execute")
        def _stop(conn: object, cursor: object, statement: str, *_: object) -> None:
            if statement.lstrip().upper().startswith(LAST_PUBLISH_STATEMENT.upper()):
                atomic.write_text(marker, "publishing")
                time.sleep(600)

    with Session(eng, expire_on_commit=False) as s:
        if args.what == "publish":
            publish_campaign(s, args.campaign, ADMIN, idempotency_key=PUBLISH_KEY)
        else:
            receiver = RecordingMailbox(args.folder, args.hang_after, marker, args.throttle)
            try:
                while deliver(s, receiver, limit=1000):
                    pass
            finally:
                receiver.close()
    eng.dispose()


if __name__ == "__main__":
    child_main(sys.argv[1:])
    sys.exit(0)


# -- the scenario (also run by benchmarks/reliability.py) -------------------------------------------
def _spawn(db: str, folder: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "tests.reliability.test_kill_rerun", *args, "--db", db, "--folder", str(folder)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@contextmanager
def _child(db: str, folder: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    proc = _spawn(db, folder, *args)
    try:
        yield proc
    finally:  # a failure must not leave a child sleeping
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def _wait(proc: subprocess.Popen[str], done: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the child ended before {what}: rc {proc.returncode}\n{out}\n{err[-3000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _raw(folder: Path) -> list[str]:
    path = folder / "raw.log"
    return path.read_text().splitlines() if path.exists() else []


def outbox(eng: Engine) -> dict[str, str]:
    """{dedupe_key: status} of every outbox message."""
    with Session(eng) as s:
        return dict(s.execute(select(OutboxMessage.dedupe_key, OutboxMessage.status)).tuples().all())


def approved_campaign(session: Session) -> int:
    """Shops on the marketplace, a few banned (cases, claims, messages), a campaign approved."""
    s = session
    orders = [(f"S{i:03d}", f"S{i:03d}-L0", f"u{i}", 120.0, SNAPSHOT - timedelta(days=3)) for i in range(BANNED)]
    import_marketplace(s, build_marketplace([shop_row(f"S{i:03d}") for i in range(SHOPS)], 1, orders))
    scored = [ScoredShop(f"S{i:03d}", 0.9, "suspected", "m", "1", [], 0.8) for i in range(BANNED + 4)]
    opened = route_scored(s, scored, now=SNAPSHOT).opened_case_ids
    for case_id in opened[:BANNED]:
        cases.decide(s, case_id, "ban", REVIEWER, reason="suspected counterfeits", now=SNAPSHOT)
    camp = create_campaign(s, REVIEWER, title="kill and rerun", now=SNAPSHOT)
    approve_campaign(s, camp.campaign_id, ADMIN, now=SNAPSHOT)
    return camp.campaign_id


def kill_publication(db: str, folder: Path, campaign_id: int) -> None:
    """Publishing SIGKILLed after writing the publication and every warning, before its commit."""
    marker = folder / "marker"
    with _child(db, folder, "publish", "--campaign", str(campaign_id), "--hang") as proc:
        _wait(proc, marker.exists, "the publication hangs before its commit")
        _kill(proc)
    marker.unlink()


def publish(db: str, folder: Path, campaign_id: int) -> None:
    with _child(db, folder, "publish", "--campaign", str(campaign_id)) as proc:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]


@dataclass
class Kills:
    """What the delivery kills did: how many, and the messages in flight (filed, not marked) at each."""

    count: int = 0
    in_flight: list[str] = field(default_factory=list)


def kill_deliveries(engine: Engine, db: str, folder: Path, hang_after: list[int], anywhere: list[int]) -> Kills:  # noqa: F811
    """Delivery SIGKILLed inside its N-th send (after filing, before the mark commits) for each N of
    ``hang_after``, then, for each N of ``anywhere``, after N more sends at whatever point it is at."""
    marker = folder / "marker"
    kills = Kills()
    for n in hang_after:
        with _child(db, folder, "deliver", "--hang-after", str(n)) as proc:
            _wait(proc, marker.exists, f"send {n}")
            _kill(proc)
        kills.count += 1
        kills.in_flight.append(marker.read_text())
        marker.unlink()
        assert outbox(engine)[kills.in_flight[-1]] == "pending"  # filed by the receiver, mark not committed
    for n in anywhere:
        sent_before = len(_raw(folder))
        with _child(db, folder, "deliver", "--throttle", "0.003") as proc:
            _wait(proc, lambda: len(_raw(folder)) >= sent_before + n, f"{n} more sends")  # noqa: B023
            _kill(proc)
        kills.count += 1
    return kills


def finish_delivery(engine: Engine, folder: Path) -> None:  # noqa: F811
    """The rerun, in this process, to the end."""
    receiver = RecordingMailbox(folder)
    with Session(engine) as s:
        try:
            while deliver(s, receiver, limit=1000):
                pass
        finally:
            receiver.close()


@dataclass
class Tally:
    """Messages in the store against what the receiver got: raw sends and, after dedup, filed."""

    messages: dict[str, str]
    raw: Counter[str]
    filed: Counter[str]

    @property
    def resent(self) -> dict[str, int]:
        return {k: n - 1 for k, n in self.raw.items() if n > 1}

    @property
    def lost(self) -> int:
        return len(set(self.messages) - set(self.filed))

    @property
    def filed_twice(self) -> int:
        return sum(1 for n in self.filed.values() if n > 1)


def tally(engine: Engine, folder: Path) -> Tally:  # noqa: F811
    filed = Counter(
        json.loads(line)["dedupe_key"]
        for path in (folder / "mailbox").glob("outbox-*.jsonl")
        for line in path.read_text().splitlines()
    )
    return Tally(outbox(engine), Counter(_raw(folder)), filed)


# -- the tests ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_publish_and_delivery_killed_at_any_point_then_rerun_deliver_each_message_once(
    db_url: str,  # noqa: F811
    engine: Engine,  # noqa: F811
    tmp_path: Path,
) -> None:
    with Session(engine, expire_on_commit=False) as s:
        campaign_id = approved_campaign(s)
    before = outbox(engine)
    assert before and set(before.values()) == {"pending"}

    # 1. publishing killed after writing the publication and every warning, before its commit
    kill_publication(db_url, tmp_path, campaign_id)
    assert outbox(engine) == before, "a killed publication left messages behind"
    with Session(engine) as s:
        assert s.get(Campaign, campaign_id).status == "approved"  # type: ignore[union-attr]
        assert not s.execute(select(AuditEntry).where(AuditEntry.action == "campaign.publish")).first()

    # 2. the rerun publishes one complete set; a second rerun (same key) adds nothing
    publish(db_url, tmp_path, campaign_id)
    publish(db_url, tmp_path, campaign_id)
    published = outbox(engine)
    warnings = {k for k in published if k.startswith(f"warning:{campaign_id}:")}
    assert warnings == {f"warning:{campaign_id}:S{i:03d}" for i in range(SHOPS)}  # banned shops are not closed
    assert set(published) == set(before) | warnings | {f"campaign:{campaign_id}:announcement"}

    # 3. delivery killed inside a send (filed, not yet marked) three times, then once anywhere; 4. rerun
    kills = kill_deliveries(engine, db_url, tmp_path, hang_after=[1, 40, 75], anywhere=[30])
    finish_delivery(engine, tmp_path)

    t = tally(engine, tmp_path)
    assert set(t.messages) == set(published) and set(t.messages.values()) == {"delivered"}
    assert set(t.raw) == set(t.messages), "a message was never sent"
    assert set(kills.in_flight) <= set(t.resent), "a message killed in flight was not sent again"
    assert sum(t.resent.values()) <= kills.count and max(t.resent.values()) == 1, t.resent
    assert t.lost == 0 and t.filed_twice == 0 and set(t.filed) == set(t.messages), "the receiver lost or doubled"
    with Session(engine) as s:
        attempts = set(s.execute(select(OutboxMessage.attempts)).scalars())
        assert attempts == {1}  # a killed attempt rolled back with its mark
        assert verify_chain(s).ok


def test_concurrent_relays_never_send_one_message_twice(engine: Engine) -> None:  # noqa: F811
    """Two relays at once (SQLite: the write lock makes them take turns; PostgreSQL: SKIP LOCKED)."""
    with Session(engine, expire_on_commit=False) as s:
        campaign_id = approved_campaign(s)
        publish_campaign(s, campaign_id, ADMIN, now=SNAPSHOT)
        total = s.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()
    sent: list[tuple[int, str]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def relay(n: int) -> None:
        def send(item: OutboxItem) -> None:
            time.sleep(0.001)  # a send takes time: the other relay must skip what this one holds
            with lock:
                sent.append((n, item.dedupe_key))

        try:
            with Session(engine) as s:
                while deliver(s, send, limit=50, chunk=25):
                    pass
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=relay, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    keys = Counter(k for _, k in sent)
    assert len(keys) == total and set(keys.values()) == {1}, "a message was sent twice or not at all"
    if engine.dialect.name == "postgresql":  # row locks: both relays work at once, each skipping the other's
        assert {n for n, _ in sent} == {0, 1}, "one relay did all the work: the test proved nothing"
    assert set(outbox(engine).values()) == {"delivered"}
