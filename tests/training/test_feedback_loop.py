"""The loop back, end to end: decisions in the store flip labels, and the next model's scores move.

A first model is trained on a generated marketplace. The shops it scores highest among the training
examples nobody investigated are "flagged"; reviewers find half of them genuine (decisions in the real
sanction store, dated inside the training period). The next training reads those decisions from the
store (``dajia.feedback.read_feedback``), the examples they fall on flip from unlabelled to labelled
genuine, and the retrained model scores the other half of the flagged shops, which no reviewer looked
at, lower.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dajia.db import open_store
from dajia.feedback import read_feedback
from marketplace.generator import GeneratorConfig, generate
from marketplace.loader import load_marketplace
from marketplace.tables import Marketplace
from models.thresholds import ThresholdPolicy
from sanctions.cases import decide
from sanctions.models import Case
from sanctions.routing import route_scored
from sanctions.scored import ScoredShop
from sanctions.storefront import import_marketplace
from sanctions.workflow import Actor, Role
from training.booster import BoosterConfig
from training.examples import ExamplePlan
from training.feedback import apply_feedback
from training.marketplace_run import MarketplaceRun, train_marketplace

pytestmark = pytest.mark.slow

PLAN = ExamplePlan(seed=0, train_step_days=28, valid_dates=3, test_dates=2, population_sample=600)
POLICY = ThresholdPolicy(capacity_per_day=50, sweep_days=7)


def _train(mp: Marketplace) -> MarketplaceRun:
    return train_marketplace(mp, PLAN, BoosterConfig(seed=0), POLICY, pipeline_params={"text_folds": 3})


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Marketplace, MarketplaceRun]:
    out = tmp_path_factory.mktemp("loop_market")
    generate(GeneratorConfig(shops=2_000, seed=21, chunk_shops=1_000), out)
    mp = load_marketplace(out)
    return mp, _train(mp)


def _flagged(mp: Marketplace, run: MarketplaceRun, n: int) -> pd.DataFrame:
    """The first model's highest-scored training examples that carry no verdict label."""
    train = run.examples.frame
    train = train[(train["period"] == "train") & ~train["labelled"]]
    rows = []
    for as_of, part in train.groupby("as_of"):
        scored = run.model.score_marketplace(mp, pd.Timestamp(as_of), shop_ids=list(part["shop_id"].astype(str)))
        rows.append(pd.DataFrame({"shop_id": scored.index.astype(str), "as_of": as_of, "score": scored["score"]}))
    allrows = pd.concat(rows, ignore_index=True).sort_values("score", ascending=False)
    return allrows.drop_duplicates("shop_id").head(n).reset_index(drop=True)


def _mean_score(mp: Marketplace, run: MarketplaceRun, rows: pd.DataFrame) -> float:
    out = []
    for as_of, part in rows.groupby("as_of"):
        s = run.model.score_marketplace(mp, pd.Timestamp(as_of), shop_ids=list(part["shop_id"]))
        out.append(s["score"].to_numpy())
    return float(np.concatenate(out).mean())


def test_genuine_decisions_flip_labels_and_lower_the_next_models_scores(
    first: tuple[Marketplace, MarketplaceRun], tmp_path: Path
) -> None:
    mp, run_a = first
    flagged = _flagged(mp, run_a, 120)
    assert flagged["score"].min() > 0.0
    reviewed, similar = flagged.iloc[::2], flagged.iloc[1::2]

    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    import_marketplace(engine, mp, detect_evasion=False)
    reviewer = Actor("rev-1", Role.REVIEWER)
    demo = Actor("sim-reviewer", Role.REVIEWER, simulated=True)
    with Session(engine) as session:
        for r in reviewed.itertuples():
            opened = pd.Timestamp(r.as_of) + pd.Timedelta(days=2)
            route_scored(
                session,
                [ScoredShop(str(r.shop_id), float(r.score), "suspected", "dajia-shop-risk", "1", ["x"], 0.5)],
                now=opened.to_pydatetime(),
            )
        cases = {c.shop_id: c.case_id for c in session.execute(select(Case)).scalars()}
        for r in reviewed.itertuples():
            decide(
                session,
                cases[str(r.shop_id)],
                "dismiss",
                reviewer,
                reason="authorised reseller, invoices check out",
                now=(pd.Timestamp(r.as_of) + pd.Timedelta(days=5)).to_pydatetime(),
            )
        # a simulated decision on a shop of the 'similar' half: counted apart and left out by default
        s0 = similar.iloc[0]
        route_scored(
            session,
            [ScoredShop(str(s0.shop_id), float(s0.score), "suspected", "dajia-shop-risk", "1", ["x"], 0.5)],
            now=(pd.Timestamp(s0.as_of) + pd.Timedelta(days=2)).to_pydatetime(),
        )
        case = session.execute(select(Case).where(Case.shop_id == str(s0.shop_id))).scalar_one()
        decide(
            session,
            case.case_id,
            "dismiss",
            demo,
            reason="[simulated] nothing found",
            now=(pd.Timestamp(s0.as_of) + pd.Timedelta(days=5)).to_pydatetime(),
        )

    labels = read_feedback(engine)
    engine.dispose()
    assert len(labels) == len(reviewed) + 1
    assert int(labels["simulated"].sum()) == 1
    mp_b, _added, report = apply_feedback(mp, labels)
    assert report["read"] == {"all": len(reviewed) + 1, "decision": len(reviewed) + 1}
    assert report["simulated"] == {"all": 1, "decision": 1}
    assert report["left_out"] == {"simulated": 1, "unknown_shop": 0, "after_snapshot": 0, "already_present": 0}
    assert report["added"] == {"all": len(reviewed), "decision": len(reviewed)}
    assert report["added_by_outcome"] == {"genuine": len(reviewed)}
    assert apply_feedback(mp_b, labels)[2]["added"] == {"all": 0}  # re-reading adds nothing twice

    run_b = _train(mp_b)
    # the decisions flip the examples they fall on: unlabelled (weight 0.2) → labelled genuine
    fa = run_a.examples.frame.set_index(["shop_id", "as_of"])
    fb = run_b.examples.frame.set_index(["shop_id", "as_of"])
    keys = [(str(r.shop_id), pd.Timestamp(r.as_of)) for r in reviewed.itertuples()]
    assert not fa.loc[keys, "labelled"].any()
    assert fb.loc[keys, "labelled"].all() and (fb.loc[keys, "label"] == 0.0).all()

    before_similar = _mean_score(mp, run_a, similar)
    after_similar = _mean_score(mp_b, run_b, similar)
    before_reviewed = _mean_score(mp, run_a, reviewed)
    after_reviewed = _mean_score(mp_b, run_b, reviewed)
    print(
        f"flagged shops' mean score, first → next model: reviewed genuine {before_reviewed:.3f} → "
        f"{after_reviewed:.3f}; similar, not reviewed {before_similar:.3f} → {after_similar:.3f}"
    )
    assert after_reviewed < before_reviewed - 0.05
    assert after_similar < before_similar - 0.02


def test_feedback_without_the_contract_columns_is_refused(first: tuple[Marketplace, Any]) -> None:
    from core.errors import DajiaError

    mp, _ = first
    with pytest.raises(DajiaError, match="decided_at"):
        apply_feedback(mp, pd.DataFrame({"verdict_id": ["x"], "shop_id": ["s"]}))
