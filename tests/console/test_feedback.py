"""Audit-sample findings become training labels through the training package's feedback path."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from tests.console.conftest import Console


def test_findings_join_reviewer_verdicts_in_the_training_marketplace(console: Console) -> None:
    from core.db import session_factory
    from dajia.db import migrate
    from sanctions.labels import reviewer_verdicts
    from sanctions.workflow import Actor, Role
    from serving.console.sample import draw_sample, export_verdicts, record_finding
    from training.feedback import with_feedback

    engine = console.engine()
    migrate(engine)
    with engine.connect() as conn:
        shop = draw_sample(conn, 1)[0].shop_id
    before_snapshot = pd.Timestamp(console.mp.snapshot_at).to_pydatetime() - timedelta(days=2)
    with session_factory(engine)() as s:
        record_finding(
            s, Actor("feedback-reviewer", Role.REVIEWER), shop, "genuine", "looked fine", now=before_snapshot
        )
    rows = pd.concat([reviewer_verdicts(engine), export_verdicts(engine)], ignore_index=True)
    engine.dispose()
    mp = with_feedback(console.mp, rows)
    added = mp.verdicts[mp.verdicts["shop_id"] == shop]
    assert added["outcome"].tolist()[-1] == "genuine"
    assert added["verdict_id"].tolist()[-1].startswith("console-")
    assert (mp.verdicts.dtypes == console.mp.verdicts.dtypes).all()
