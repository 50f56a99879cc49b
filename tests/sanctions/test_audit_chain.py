"""The audit log is append-only and hash-chained: tampering is caught by the real ``dajia audit verify``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.orm import Session

from core.errors import DajiaError
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


# --------------------------------------------------------------------------- signed checkpoints


def _rewrite_history_from(session: Session, seq: int) -> None:
    """A forger with the database: entry ``seq``'s payload changed, every later hash and the head
    recomputed, so the chain alone verifies."""
    rows = [
        dict(r)
        for r in session.execute(
            select(AuditEntry.__table__).where(AuditEntry.seq >= seq).order_by(AuditEntry.seq)
        ).mappings()
    ]
    session.rollback()
    prev = rows[0]["prev_hash"]
    rows[0]["payload"] = '{"forged":true}'
    with session.begin():
        for row in rows:
            row["prev_hash"] = prev
            row["hash"] = prev = audit.entry_hash(prev, row)
            session.execute(
                update(AuditEntry)
                .where(AuditEntry.seq == row["seq"])
                .values(payload=row["payload"], prev_hash=row["prev_hash"], hash=row["hash"])
            )
        session.execute(text("UPDATE audit_head SET hash = :h WHERE id = 1"), {"h": prev})


def test_a_rewritten_history_is_caught_against_the_checkpoint_published_with_the_announcement(
    decided: dict[str, int], session: Session, db_url: str, tmp_path: Path
) -> None:
    from sanctions.campaigns import approve_campaign, create_campaign, publish_campaign
    from sanctions.checkpoint import Checkpoint, verify_against

    camp = create_campaign(session, Actor("rev-1", Role.REVIEWER), title="t", now=SNAPSHOT)
    approve_campaign(session, camp.campaign_id, Actor("adm-1", Role.ADMIN), now=SNAPSHOT)
    pub = publish_campaign(session, camp.campaign_id, Actor("adm-2", Role.ADMIN), now=SNAPSHOT)
    assert pub.announcement is not None
    cp = Checkpoint.model_validate(pub.announcement["checkpoint"])
    session.rollback()
    head_before_publication = session.execute(select(func.max(AuditEntry.seq))).scalar_one() - 1
    assert cp.seq == head_before_publication  # the head as it stood when the announcement was made
    assert verify_against(session, cp).ok
    session.rollback()
    html = session.execute(text("SELECT html FROM campaigns")).scalar_one()
    session.rollback()
    assert f"<code>{cp.hash}</code>" in html and cp.signature in html  # published with the announcement
    published = tmp_path / "checkpoint.json"
    published.write_text(cp.model_dump_json(), encoding="utf-8")

    _rewrite_history_from(session, 2)
    assert audit.verify_chain(session).ok  # inside the database, the forgery holds
    session.rollback()
    report = verify_against(session, cp)
    assert not report.ok and report.first_bad_seq == cp.seq and "rewritten" in (report.problem or "")
    session.rollback()
    env = {**os.environ, "DATABASE_URL": db_url}
    proc = subprocess.run(
        [sys.executable, "-m", "dajia.cli", "audit", "verify", "--checkpoint", str(published)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and f"audit chain broken at entry {cp.seq}" in proc.stderr, proc.stderr
    # a checkpoint altered after signing is refused
    forged = cp.model_copy(update={"hash": "0" * 64})
    with pytest.raises(DajiaError, match="signature does not verify"):
        verify_against(session, forged)


def test_the_cli_signs_a_checkpoint_and_checks_it(decided: dict[str, int], db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": db_url}
    out = tmp_path / "cp.json"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dajia.cli", "audit", *args], env=env, capture_output=True, text=True, timeout=120
        )

    signed = cli("checkpoint", "--out", str(out), "--json")
    assert signed.returncode == 0, signed.stderr
    cp = json.loads(out.read_text(encoding="utf-8"))
    assert cp["seq"] > 0 and len(cp["signature"]) == 128
    ok = cli("verify", "--checkpoint", str(out), "--key", cp["public_key"], "--json")
    assert ok.returncode == 0 and '"ok": true' in ok.stdout, ok.stderr
    other = cli("verify", "--checkpoint", str(out), "--key", "ab" * 32)
    assert other.returncode == 2 and "not by the trusted key" in other.stderr
