"""The audit log is append-only and hash-chained: tampering is caught by the real ``dajia audit verify``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.orm import Session

from core.settings import get_settings
from dajia.cli import main
from sanctions import audit
from sanctions.models import AuditEntry
from sanctions.routing import route_scored
from sanctions.scored import ScoredShop
from sanctions.storefront import import_marketplace
from sanctions.tx import utcnow
from sanctions.workflow import Actor, Role
from tests.sanctions.conftest import SNAPSHOT, build_marketplace, shop_row


def _cli_verify(db_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url}
    return subprocess.run(
        [sys.executable, "-m", "dajia.cli", "audit", "verify"], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def chain(session: Session) -> int:
    import_marketplace(session, build_marketplace([shop_row(f"S{i}") for i in range(6)]))
    route_scored(session, [ScoredShop(f"S{i}", 0.9, "suspected", "m", "1", [], 0.5) for i in range(6)], now=SNAPSHOT)
    n = session.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
    session.rollback()
    assert n == 6
    return int(n)


def test_verify_passes_on_an_untouched_chain(
    chain: int, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        assert main(["audit", "verify", "--json"]) == 0
    finally:
        get_settings.cache_clear()
    assert '"ok": true' in capsys.readouterr().out


def test_an_updated_row_is_caught(chain: int, engine: Engine, db_url: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(actor_id="someone-else"))
    proc = _cli_verify(db_url)
    assert proc.returncode == 2, proc.stderr
    assert "entry 3" in proc.stderr and "does not match its hash" in proc.stderr


def test_an_updated_row_with_a_recomputed_hash_is_caught_at_the_next_entry(chain: int, session: Session) -> None:
    row = dict(session.execute(select(AuditEntry.__table__).where(AuditEntry.seq == 2)).mappings().one())
    row["payload"] = '{"forged":true}'
    forged = audit.entry_hash(row["prev_hash"], row)
    session.rollback()
    with session.begin():
        session.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(payload=row["payload"], hash=forged))
    report = audit.verify_chain(session)
    assert not report.ok and report.first_bad_seq == 3 and "prev_hash" in (report.problem or "")


def test_a_deleted_row_is_caught(
    chain: int, engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with engine.begin() as conn:
        conn.execute(delete(AuditEntry).where(AuditEntry.seq == 4))
    # the CLI's own entry point in this process (the subprocess path is exercised above)
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        assert main(["audit", "verify"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert "entry 4" in err and "missing" in err


def test_deleting_the_last_rows_is_caught_by_the_head(chain: int, session: Session) -> None:
    with session.begin():
        session.execute(delete(AuditEntry).where(AuditEntry.seq >= chain - 1))
    report = audit.verify_chain(session)
    assert not report.ok and report.first_bad_seq == chain - 1 and "deleted" in (report.problem or "")


@pytest.mark.postgres
def test_concurrent_appends_never_fork_the_chain(postgres_url: str) -> None:
    from dajia.db import open_store

    engine = open_store(postgres_url, pool_size=8)
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            actor = Actor(f"w{w}", Role.SYSTEM)
            with Session(engine) as s:
                for i in range(25):
                    with s.begin():
                        audit.append(s, [audit.AuditRecord(actor, "test.append", "w", f"{w}-{i}", {"i": i}, utcnow())])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Session(engine) as s:
        report = audit.verify_chain(s)
        assert report.ok and report.entries == 200
        assert s.execute(text("select count(distinct prev_hash) from audit_log")).scalar_one() == 200
    engine.dispose()


# --------------------------------------------------------------------------- the chain binds the rows


@pytest.fixture
def decided(session: Session) -> dict[str, int]:
    """S1 banned (two claims, one paid), S2 closed on proof: cases, events, claims, actors in the chain."""
    from sanctions import cases
    from sanctions.schemas import Evidence

    orders = [
        ("S1", "S1-L0", "B1", 100.0, SNAPSHOT - timedelta(days=3)),
        ("S1", "S1-L1", "B2", 50.0, SNAPSHOT - timedelta(days=3)),
    ]
    import_marketplace(session, build_marketplace([shop_row("S1"), shop_row("S2")], orders=orders))
    r = route_scored(session, [ScoredShop(f"S{i}", 0.9, "suspected", "m", "1", [], 0.5) for i in (1, 2)], now=SNAPSHOT)
    s1, s2 = r.opened_case_ids
    rev = Actor("rev-1", Role.REVIEWER)
    cases.decide(session, s1, "ban", rev, reason="suspected", now=SNAPSHOT)
    proof = Evidence(kind="test_buy", ref="TB-1", detail="fake")
    cases.decide(session, s2, "close", rev, reason="proof", evidence=[proof], now=SNAPSHOT)
    claim = cases.claims_of(session, s1)[0].claim_id
    cases.record_payment(session, claim, Actor("keeper-S1", Role.SELLER), payment_ref="T-1", now=SNAPSHOT)
    assert audit.verify_chain(session).ok
    session.rollback()
    return {"s1": s1, "s2": s2, "claim": claim}


def latest_entry(session: Session, table: str, key: object) -> int:
    """The last entry that bound ``table``'s rows of ``key`` (what verify must name)."""
    found = [
        seq
        for seq, rows in session.execute(select(AuditEntry.seq, AuditEntry.rows).order_by(AuditEntry.seq))
        if rows and str(key) in json.loads(rows).get(table, {})
    ]
    session.rollback()
    assert found, (table, key)
    return found[-1]


def _tampered(db_url: str, expected_seq: int, *words: str) -> None:
    proc = _cli_verify(db_url)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"audit chain broken at entry {expected_seq}:" in proc.stderr, proc.stderr
    for w in words:
        assert w in proc.stderr, proc.stderr


def test_editing_a_claim_amount_is_caught(
    decided: dict[str, int], session: Session, engine: Engine, db_url: str
) -> None:
    seq = latest_entry(session, "claims", decided["claim"])
    with engine.begin() as conn:
        conn.execute(text("UPDATE claims SET amount_fen = 1 WHERE claim_id = :c"), {"c": decided["claim"]})
    _tampered(db_url, seq, f"claims rows of claim {decided['claim']}", "no longer match")


def test_deleting_a_case_event_is_caught(
    decided: dict[str, int], session: Session, engine: Engine, db_url: str
) -> None:
    seq = latest_entry(session, "case_events", decided["s2"])
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM case_events WHERE case_id = :c AND action = 'open'"),
            {"c": decided["s2"]},
        )
    _tampered(db_url, seq, f"case_events rows of case {decided['s2']}")


def test_editing_a_persons_role_is_caught(
    decided: dict[str, int], session: Session, engine: Engine, db_url: str
) -> None:
    seq = latest_entry(session, "actors", "rev-1")
    with engine.begin() as conn:
        conn.execute(text("UPDATE actors SET role = 'admin' WHERE actor_id = 'rev-1'"))
    _tampered(db_url, seq, "actors rows of actor rev-1")


def test_deleting_a_claim_and_adding_rows_outside_the_workflow_are_caught(
    decided: dict[str, int], session: Session, engine: Engine, db_url: str
) -> None:
    with engine.begin() as conn:  # a person registered behind the workflow's back
        conn.execute(
            text("INSERT INTO actors (actor_id, role, simulated, created_at) VALUES ('ghost', 'admin', false, :t)"),
            {"t": SNAPSHOT},
        )
    report = audit.verify_chain(session)
    assert not report.ok and report.first_bad_seq is None
    assert "actors rows of actor ghost were written outside the audit chain" in (report.problem or "")
    session.rollback()
    seq = latest_entry(session, "claims", decided["claim"])
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM claims WHERE claim_id = :c"), {"c": decided["claim"]})
    report = audit.verify_chain(session)
    assert not report.ok and report.first_bad_seq == seq and "were deleted" in (report.problem or "")
