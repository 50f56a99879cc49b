"""Reviewer decisions in the sanction store become verdicts the next training run learns from."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dajia.db import open_store
from marketplace.generator import GeneratorConfig, generate
from marketplace.loader import load_marketplace
from sanctions.cases import appeal, decide, decide_appeal
from sanctions.labels import reviewer_verdicts
from sanctions.models import Case
from sanctions.routing import route_scored
from sanctions.schemas import Evidence
from sanctions.scored import ScoredShop
from sanctions.storefront import import_marketplace
from sanctions.workflow import Actor, Role
from training.examples import label_examples
from training.feedback import with_feedback


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fb_market")
    generate(GeneratorConfig(shops=300, seed=5, chunk_shops=1_000), out)
    return out


def test_reviewer_decisions_become_verdicts_for_the_next_run(market: Path, tmp_path: Path) -> None:
    mp = load_marketplace(market)
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    import_marketplace(engine, mp, detect_evasion=False)
    closed = set(mp.verdicts["shop_id"].astype(str))
    ids = [s for s in mp.shops["shop_id"].astype(str) if s not in closed][:3]
    when = mp.snapshot_at.to_pydatetime()
    scored = [ScoredShop(s, 0.9, "suspected", "dajia-shop-risk", "1", ["x"], 0.5) for s in ids]
    reviewer = Actor("rev-1", Role.REVIEWER)
    with Session(engine) as session:
        route_scored(session, scored, now=when - pd.Timedelta(days=20))
        cases = {c.shop_id: c.case_id for c in session.execute(select(Case)).scalars()}
        decide(
            session,
            cases[ids[0]],
            "close",
            reviewer,
            reason="test buy came back fake",
            evidence=[Evidence(kind="test_buy", ref="order T-1")],
            now=when - pd.Timedelta(days=10),
        )
        decide(session, cases[ids[1]], "ban", reviewer, reason="fake reviews pile up", now=when - pd.Timedelta(days=9))
        decide(
            session, cases[ids[2]], "dismiss", reviewer, reason="authorised reseller", now=when - pd.Timedelta(days=8)
        )
    v = reviewer_verdicts(engine)
    got = {r.shop_id: (r.outcome, r.evidence_kind) for r in v.itertuples()}
    assert got == {
        ids[0]: ("counterfeit", "test_buy"),
        ids[1]: ("counterfeit", "reviewer"),
        ids[2]: ("genuine", "reviewer"),
    }
    assert reviewer_verdicts(engine)["verdict_id"].tolist() == v["verdict_id"].tolist()  # idempotent ids

    # an upheld appeal withdraws the earlier counterfeit verdict and records a genuine one
    keeper = str(mp.shops.set_index(mp.shops["shop_id"].astype(str)).loc[ids[1], "shopkeeper_id"])
    with Session(engine) as session:
        appeal(
            session,
            cases[ids[1]],
            Actor(keeper, Role.SELLER),
            reason="authorised reseller, invoices attached",
            now=when - pd.Timedelta(days=7),
        )
        # four eyes: a second reviewer decides the appeal of the first one's decision
        second = Actor("rev-appeals", Role.REVIEWER)
        decide_appeal(
            session, cases[ids[1]], True, second, reason="invoices check out", now=when - pd.Timedelta(days=6)
        )
    after = reviewer_verdicts(engine)
    ids1 = after[after["shop_id"] == ids[1]]
    assert ids1["outcome"].tolist() == ["genuine"]
    assert len(after) == 3

    merged = with_feedback(mp, v)
    assert len(merged.verdicts) == len(mp.verdicts) + 3
    assert len(with_feedback(merged, v).verdicts) == len(merged.verdicts)  # no duplicates
    # the next run labels those shops from the decisions: as of 15 days before the snapshot
    t = (mp.snapshot_at - pd.Timedelta(days=15)).floor("D")
    ex, _ = label_examples(merged, [t], 30, {t: 0}, seed=0)
    labels = ex.set_index("shop_id")["label"]
    assert labels[ids[0]] == 1.0 and labels[ids[1]] == 1.0 and labels[ids[2]] == 0.0
    engine.dispose()
