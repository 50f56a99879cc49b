"""The prediction log on a real SQLite file and a real PostgreSQL: rows committed through the held
connection read back with their types (time, JSON reasons, flags), in both commit modes; a failed
commit reaches the caller as SQLAlchemy's error and the log recovers on a fresh connection."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.db import make_engine
from dajia.db import migrate
from serving.prediction_log import PredictionLog


def _rows(request: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "logged_at": datetime(2026, 5, 1, 12, 30, 15, 123456),
            "request_id": request,
            "key_id": None if i else "k1",
            "shop_id": f"S{i:04d}",
            "model_name": "dajia-shop-risk",
            "model_version": "7",
            "feature_digest": "ab" * 16,
            "score": 0.125 + i / 1000,
            "tier": "suspected" if i == 0 else "low",
            "reasons": ["12 counterfeit complaints in 30 days", "价格低于品牌价 70%"] if i == 0 else [],
            "shadow": i == 1,
        }
        for i in range(n)
    ]


async def _append_concurrently(log: PredictionLog, groups: list[list[dict[str, Any]]]) -> None:
    await asyncio.gather(*(log.append(g) for g in groups))


def _check_round_trip(url: str, inline: bool) -> None:
    engine = make_engine(url, "NORMAL")
    migrate(engine)
    log = PredictionLog(engine, inline=inline)
    log.start()
    try:
        groups = [_rows(f"req-{k}", 3) for k in range(20)]
        asyncio.run(_append_concurrently(log, groups))
        got = log.query(limit=1000)
        assert len(got) == 60
        by_key = {(p.request_id, p.shop_id): p for p in got}
        for row in (r for g in groups for r in g):
            p = by_key[(row["request_id"], row["shop_id"])]
            assert (p.logged_at, p.key_id, p.score, p.tier, p.reasons, p.shadow) == (
                row["logged_at"],
                row["key_id"],
                row["score"],
                row["tier"],
                row["reasons"],
                row["shadow"],
            )
        if inline:  # on the event loop, the appends of one loop iteration share one commit
            assert log.commits == 1

        # the table goes away: the caller gets SQLAlchemy's error, nothing is half-written ...
        with engine.begin() as conn:
            conn.execute(sa.text("alter table serving_predictions rename to serving_predictions_away"))
        with pytest.raises(sa.exc.DBAPIError):
            asyncio.run(_append_concurrently(log, [_rows("lost", 2)]))
        # ... and once it is back, the log commits again on a fresh connection
        with engine.begin() as conn:
            conn.execute(sa.text("alter table serving_predictions_away rename to serving_predictions"))
        asyncio.run(_append_concurrently(log, [_rows("after", 2)]))
        assert [p.request_id for p in log.query(limit=2)] == ["after", "after"]
        assert not [p for p in log.query(limit=1000) if p.request_id == "lost"]
    finally:
        log.stop()
        engine.dispose()


@pytest.mark.parametrize("inline", [False, True], ids=["writer thread", "event loop"])
def test_sqlite_round_trip_and_recovery(tmp_path: Path, inline: bool) -> None:
    _check_round_trip(f"sqlite:///{tmp_path / 'log.db'}", inline)


@pytest.mark.parametrize("inline", [False, True], ids=["writer thread", "event loop"])
def test_postgresql_round_trip_and_recovery(postgres_url: str, inline: bool) -> None:
    _check_round_trip(postgres_url, inline)


def test_column_conversion_converts_each_distinct_value_once() -> None:
    from serving.prediction_log import _converted

    calls: list[Any] = []

    def convert(v: Any) -> str:
        calls.append(v)
        return f"{type(v).__name__}:{v!r}"

    values: list[Any] = [1, True, 1.0, 1, [], [], ["a", "b"], ["a", "b"], ("a", "b"), [{"x": 1}], [{"x": 1}], None]
    values += [[1], [True], [1.0]]  # equal lists whose items convert differently
    assert _converted(values, convert) == [convert(v) for v in values]
    calls.clear()
    _converted(values, convert)
    # 1, True and 1.0 apart; a list of strings once by its items; a tuple, a list holding a dict and the
    # lists of numbers each time
    assert len(calls) == 12, calls
