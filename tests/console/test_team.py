"""The team's services (claims, next case, notes, attachments, tags, snoozes) on SQLite and PostgreSQL.

Many threads race for the same cases through the real services on a real database: the database
decides who holds a case, and no case ever has two holders.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from core.errors import Conflict, DajiaError


def _store(url: str, root: Path, n_cases: int = 30) -> Any:
    from core.db import session_factory
    from dajia.db import open_store
    from marketplace.generator import GeneratorConfig, generate
    from marketplace.loader import load_marketplace
    from sanctions.routing import route_scored
    from sanctions.scored import ScoredShop
    from sanctions.storefront import import_marketplace

    generate(GeneratorConfig(shops=80, seed=5), root / "m")
    mp = load_marketplace(root / "m")
    engine = open_store(url)
    import_marketplace(engine, mp, detect_evasion=False)
    ids = sorted(str(s) for s in mp.shops["shop_id"])[:n_cases]
    scored = [ScoredShop(s, 0.95 - i * 0.01, "suspected", "m", "1", [f"r{i}"], 0.5) for i, s in enumerate(ids)]
    with session_factory(engine)() as s:
        route_scored(s, scored, now=pd.Timestamp(mp.snapshot_at).to_pydatetime() + timedelta(days=1))
    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'team.db'}"
        e = _store(url, tmp_path)
        yield e
        e.dispose()
    else:
        url = request.getfixturevalue("postgres_url")
        e = _store(url, tmp_path)
        yield e
        e.dispose()


def _people(n: int) -> list[Any]:
    from sanctions.workflow import Actor, Role

    return [Actor(f"api-key:rev{i}", Role.REVIEWER) for i in range(n)]


def test_racing_claims_one_holder_and_next_case_never_shared(engine: Any) -> None:
    from core.db import session_factory
    from sanctions.cases import decide
    from serving.console.db import claims
    from serving.console.team import claim, next_case, release

    sessions = session_factory(engine)
    with engine.connect() as conn:
        case_ids = [int(i) for i in conn.execute(sa.text("select case_id from cases order by case_id")).scalars()]
    people = _people(8)
    target = case_ids[5]
    wins: list[str] = []
    losses: list[str] = []
    gate = threading.Barrier(len(people))

    def grab(actor: Any) -> None:
        gate.wait()
        with sessions() as s:
            try:
                claim(s, actor, target)
                wins.append(actor.actor_id)
            except Conflict as exc:
                losses.append(str(exc))

    threads = [threading.Thread(target=grab, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == len(people) - 1
    assert all(f"claimed by {wins[0]}" in m for m in losses)
    with engine.connect() as conn:
        assert conn.execute(sa.select(claims.c.actor_id).where(claims.c.case_id == target)).scalar_one() == wins[0]

    # a released case is free again; a lapsed claim can be taken over
    loser = next(p for p in people if p.actor_id != wins[0])
    holder_actor = next(p for p in people if p.actor_id == wins[0])
    with sessions() as s:
        with pytest.raises(Conflict):
            claim(s, loser, target)
        assert release(s, holder_actor, target)
        assert not release(s, holder_actor, target)  # twice changes nothing
        claim(s, loser, target)
        later = pd.Timestamp.now().to_pydatetime() + timedelta(hours=2)
        claim(s, holder_actor, target, now=later)  # the loser's claim lapsed by then
        with pytest.raises(Conflict):
            claim(s, loser, target, now=later)

    # everyone takes "next case" and decides it until the queue is empty: each case to exactly one person
    got: dict[str, list[int]] = {p.actor_id: [] for p in people}

    def work(actor: Any) -> None:
        gate.wait()
        with sessions() as s:
            while True:
                cid = next_case(s, actor)
                if cid is None or cid in got[actor.actor_id]:
                    return
                got[actor.actor_id].append(cid)
                decide(s, cid, "dismiss", actor, reason="checked")

    threads = [threading.Thread(target=work, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = [c for cs in got.values() for c in cs]
    assert len(taken) == len(set(taken)) + 0, "a case was handed to two people"
    assert set(taken) == set(case_ids), "every waiting case was handed out"
    assert got[wins[0]][0] == target  # the holder's own claim comes first
    with engine.connect() as conn:
        holders = dict(conn.execute(sa.select(claims.c.case_id, claims.c.actor_id)).tuples().all())
        deciders = dict(
            conn.execute(sa.text("select case_id, actor_id from case_events where action = 'dismiss'")).tuples().all()
        )
    assert {c: a for a, cs in got.items() for c in cs} == holders == deciders


def test_notes_attachments_tags_snooze_are_audited(engine: Any) -> None:
    from core.db import session_factory
    from sanctions.audit import verify_chain
    from sanctions.workflow import Actor, Role
    from serving.console.team import (
        MAX_ATTACHMENT,
        add_attachment,
        add_note,
        attachment,
        case_extras,
        next_case,
        set_tag,
        snooze,
    )

    sessions = session_factory(engine)
    me = _people(1)[0]
    with engine.connect() as conn:
        cid = int(conn.execute(sa.text("select min(case_id) from cases")).scalar_one())
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    with sessions() as s:
        add_note(s, me, cid, "called the brand owner", key="k1")
        add_note(s, me, cid, "called the brand owner", key="k1")  # a retried form: stored once
        add_attachment(s, me, cid, "../../etc/photo one.png", "image/png", png)
        with pytest.raises(DajiaError, match="not image/png"):
            add_attachment(s, me, cid, "x.png", "image/png", b"GIF89a")
        with pytest.raises(DajiaError, match="not accepted"):
            add_attachment(s, me, cid, "x.html", "text/html", b"<script>")
        with pytest.raises(DajiaError, match="over the limit"):
            add_attachment(s, me, cid, "x.txt", "text/plain", b"a" * (MAX_ATTACHMENT + 1))
        with pytest.raises(DajiaError, match="empty"):
            add_note(s, me, cid, "   ")
        set_tag(s, me, cid, "brand-owner")
        set_tag(s, me, cid, "Brand-Owner")  # twice changes nothing
        with pytest.raises(DajiaError, match="tag"):
            set_tag(s, me, cid, "no spaces please")
        now = pd.Timestamp.now().to_pydatetime()
        with pytest.raises(DajiaError, match="not in the future"):
            snooze(s, me, cid, now - timedelta(days=1))
        snooze(s, me, cid, now + timedelta(days=3))
        other = Actor("api-key:other", Role.REVIEWER)
        assert next_case(s, other) != cid  # snoozed: not handed out
    with engine.connect() as conn:
        extras = case_extras(conn, cid, pd.Timestamp.now().to_pydatetime())
        assert [i.kind for i in extras["items"]] == ["note", "attachment"]
        assert extras["items"][1].text == "photo_one.png"
        assert extras["items"][1].sha256 == hashlib.sha256(png).hexdigest()
        assert extras["tags"] == ["brand-owner"] and extras["snoozed_until"] is not None
        assert attachment(conn, cid, extras["items"][1].attachment_id or 0) == ("photo_one.png", png)
        actions = [
            r[0]
            for r in conn.execute(
                sa.text("select action from audit_log where entity_id = :c order by seq"), {"c": str(cid)}
            )
        ]
    assert actions.count("case.note") == 1 and actions.count("case.tag") == 1
    assert "case.attachment" in actions and "case.snooze" in actions
    with sessions() as s:
        assert verify_chain(s).ok
