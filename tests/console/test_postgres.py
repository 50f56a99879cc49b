"""The console's queries and its finding service on PostgreSQL (the same code the SQLite tests drive)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.orm import Session

pytestmark = pytest.mark.postgres


def test_console_reads_and_findings_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    from core.db import make_engine, session_factory
    from dajia.db import migrate, open_store
    from marketplace.generator import GeneratorConfig, generate
    from marketplace.loader import load_marketplace
    from sanctions.cases import decide
    from sanctions.routing import route_scored
    from sanctions.scored import ScoredShop
    from sanctions.storefront import import_marketplace
    from sanctions.workflow import Actor, Role
    from serving.console.evidence import MarketIndex, load_case_page
    from serving.console.monitor import agreement_by_version, precision_tables
    from serving.console.queue import QueueFilter, load_queue
    from serving.console.sample import draw_sample, export_verdicts, miss_estimate, record_finding

    generate(GeneratorConfig(shops=120, seed=4), tmp_path / "m")
    mp = load_marketplace(tmp_path / "m")
    engine = open_store(postgres_url)
    import_marketplace(engine, mp, detect_evasion=False)
    ids = sorted(str(s) for s in mp.shops["shop_id"])[:12]
    scored = [
        ScoredShop(s, 0.9 - i * 0.01, "suspected", "dajia-shop-risk", str(1 + i % 2), [f"reason {i}"], 0.5)
        for i, s in enumerate(ids)
    ]
    when = pd.Timestamp(mp.snapshot_at).to_pydatetime() + timedelta(days=1)
    sessions = session_factory(engine)
    with sessions() as s:
        route_scored(s, scored, now=when)
    reviewer = Actor("pg-reviewer", Role.REVIEWER)
    serving_engine = make_engine(postgres_url)
    migrate(serving_engine)
    with Session(serving_engine) as s:
        page = load_queue(s.connection(), QueueFilter(), datetime.now())
        assert page.total == 12 and [r.score for r in page.rows] == sorted((r.score for r in page.rows), reverse=True)
        assert dict(page.facets["model_version"]) == {"1": 6, "2": 6}
        assert load_queue(s.connection(), QueueFilter(model_version="2"), datetime.now()).total == 6
        top = page.rows[0].case_id
        case_page = load_case_page(s, top, "reviewer", MarketIndex(mp))
        assert case_page.case.reasons == ["reason 0"] and [a.value for a in case_page.actions] == [
            "close",
            "ban",
            "dismiss",
        ]
    with sessions() as s:
        decide(s, top, "dismiss", reviewer, reason="honest")
    with Session(serving_engine) as s:
        conn = s.connection()
        assert [(a.model_version, a.decided, a.dismissed) for a in agreement_by_version(conn)] == [("1", 1, 1)]
        by_tier, _ = precision_tables(conn)
        assert [(p.group, p.decided, p.sanctioned) for p in by_tier] == [("suspected", 1, 0)]
        sample = draw_sample(conn, 5)
    assert len(sample) == 5 and not {x.shop_id for x in sample} & set(ids)
    with sessions() as s:
        record_finding(s, reviewer, sample[0].shop_id, "genuine", "", idempotency_key="k1")
        record_finding(s, reviewer, sample[0].shop_id, "genuine", "", idempotency_key="k1")  # a retry: once
    with Session(serving_engine) as s:
        est = miss_estimate(s.connection())
    assert (est.checked, est.genuine, est.population) == (1, 1, 120 - 12)
    rows = export_verdicts(serving_engine)
    assert rows["shop_id"].tolist() == [sample[0].shop_id] and rows["outcome"].tolist() == ["genuine"]
    serving_engine.dispose()
    engine.dispose()
