"""Prediction-log retention (issue 23): ``dajia predictions prune --older-than DAYS --archive DIR``
archives exactly the rows older than the cut-off to Parquet and deletes them, keeps the rest, and a
rerun changes nothing; SQLite (the command, in its own process) and PostgreSQL (the same function)."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.serving.conftest import dajia_cmd


def _fill(url: str) -> tuple[set[int], set[int]]:
    """300 rows a day apart going back from now: (ids older than 100 days, the other ids)."""
    from core.db import make_engine
    from dajia.db import migrate
    from serving.db import predictions

    engine = make_engine(url)
    migrate(engine)
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        {
            "logged_at": now - timedelta(days=i, hours=1),
            "request_id": f"r{i}",
            "key_id": None,
            "shop_id": f"S{i:05d}",
            "model_name": "m",
            "model_version": "1",
            "feature_digest": "d" * 32,
            "score": i / 300,
            "tier": "low",
            "reasons": [f"reason {i}"],
            "shadow": i % 7 == 0,
        }
        for i in range(300)
    ]
    with engine.begin() as conn:
        conn.execute(predictions.insert(), rows)
        got = conn.execute(sa.select(predictions.c.id, predictions.c.shop_id)).all()
    engine.dispose()
    old = {r.id for r in got if int(r.shop_id[1:]) >= 100}  # 100 days and an hour: old
    return old, {r.id for r in got} - old


def _left(url: str) -> set[int]:
    from core.db import make_engine
    from serving.db import predictions

    engine = make_engine(url)
    with engine.connect() as conn:
        ids = set(conn.execute(sa.select(predictions.c.id)).scalars())
    engine.dispose()
    return ids


def _archived(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f) for f in sorted(folder.glob("predictions-*.parquet"))], ignore_index=True)


def test_prune_archives_and_deletes_by_age_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dajia.db'}"
    old, new = _fill(url)
    env = {**os.environ, "DATABASE_URL": url, "DAJIA_HOME": str(tmp_path)}
    cmd = [*dajia_cmd(), "predictions", "prune", "--older-than", "100", "--archive", str(tmp_path / "a"), "--json"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["archived"] == result["deleted"] == len(old) == 200
    assert _left(url) == new
    archived = _archived(tmp_path / "a")
    assert set(archived["id"]) == old and archived["reasons"].map(len).eq(1).all()
    assert archived["logged_at"].max() < datetime.now() - timedelta(days=100)
    # again: nothing is old enough any more; no file, no row changes
    again = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True).stdout)
    assert again["archived"] == again["deleted"] == 0 and again["files"] == []
    assert len(list((tmp_path / "a").iterdir())) == len(result["files"])
    # a bad argument: exit 2 and one line
    bad = subprocess.run([*dajia_cmd(), "predictions", "prune", "--older-than", "30"], env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


@pytest.mark.postgres
def test_prune_archives_and_deletes_by_age_postgres(postgres_url: str, tmp_path: Path) -> None:
    from core.db import make_engine
    from serving.retention import prune_predictions

    old, new = _fill(postgres_url)
    engine = make_engine(postgres_url)
    try:
        report = prune_predictions(engine, 100, tmp_path / "a", chunk_rows=64)  # several files
        assert report.archived == report.deleted == len(old) and len(report.files) == 4
        assert _left(postgres_url) == new
        assert set(_archived(tmp_path / "a")["id"]) == old
        assert prune_predictions(engine, 100, tmp_path / "a").deleted == 0
    finally:
        engine.dispose()
