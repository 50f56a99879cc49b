"""The drift history: every sweep appends its drift against the training population (score PSI,
per-feature PSI, sample sizes, as-of, model version) to the store; two sweeps make two points, the same
sweep twice still one. Real sweeps of the session registry's champion over its 800-shop marketplace."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from core.settings import Settings
from tests.serving.conftest import Registry


def _rows(url: str) -> list[dict[str, object]]:
    from dajia.db import open_store
    from serving.console.db import drift_history

    engine = open_store(url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(drift_history).order_by("as_of")).mappings()]
    finally:
        engine.dispose()


def test_two_sweeps_log_two_points_and_a_rerun_logs_none(registry: Registry, tmp_path: Path) -> None:
    from dajia.scaleout.sweep import run_sweep
    from dajia.sweep import load_champion
    from marketplace.loader import load_marketplace
    from marketplace.tables import scoring_time
    from serving.console.drift_history import history

    url = f"sqlite:///{tmp_path / 'dajia.db'}"
    settings = Settings(home=registry.home, DATABASE_URL=url, MLFLOW_TRACKING_URI=registry.store_uri)
    champion = load_champion(settings)
    end = scoring_time(load_marketplace(registry.data).snapshot_at)
    dates = [end - pd.Timedelta(days=28), end]
    results = [
        run_sweep(settings, str(registry.data), str(tmp_path / f"s{i}.parquet"), champion, as_of=d, route=False)
        for i, d in enumerate(dates)
    ]
    assert [r["drift"]["logged"] for r in results] == [True, True]
    rows = _rows(url)
    assert [pd.Timestamp(r["as_of"]) for r in rows] == dates
    for r, result in zip(rows, results, strict=True):
        assert r["model_name"] == champion.name and r["model_version"] == champion.version
        assert r["mode"] == "local" and r["shops"] == result["shops"]
        assert 300 <= int(r["sample_now"]) <= result["shops"] and int(r["sample_ref"]) >= 300
        assert pd.Timestamp(r["reference_as_of"]) < dates[0]
        assert float(r["score_psi"]) == pytest.approx(result["drift"]["score_psi"], abs=1e-4)
        assert len(r["feature_psi"]) == len(champion.model.feature_names)
        assert all(v >= 0 for v in r["feature_psi"].values())
    # the later population is further from the training one (more weeks of events) in at least one feature
    assert rows[0]["feature_psi"] != rows[1]["feature_psi"]

    again = run_sweep(settings, str(registry.data), str(tmp_path / "s1.parquet"), champion, as_of=dates[1], route=False)
    assert again["drift"]["logged"] is False
    assert _rows(url) == rows  # nothing appended, nothing changed

    from dajia.db import open_store

    engine = open_store(url)
    try:
        with engine.connect() as conn:
            points = history(conn, champion.name, champion.version)
            assert [p.as_of for p in points] == [str(d.date()) for d in dates]
            assert history(conn, champion.name, "no such version") == []
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dajia.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_log_and_read_on_both_databases(store_url: str) -> None:
    """The history's rows on SQLite and PostgreSQL: one per (model, version, as-of), read oldest first."""
    from datetime import datetime

    from dajia.db import open_store
    from serving.console.drift_history import SweepDrift, history, log_drift

    def point(day: int, psi: float) -> SweepDrift:
        return SweepDrift(
            "m", "3", datetime(2026, 6, day, 12, 30), "cluster", 5000, 4000, 3500, datetime(2026, 2, 1), psi,
            "stable", False, {"a": psi / 2, "b": psi * 2},
        )  # fmt: skip

    engine = open_store(store_url)
    try:
        assert log_drift(engine, point(9, 0.2)) is True
        assert log_drift(engine, point(2, 0.1)) is True
        assert log_drift(engine, point(9, 0.9)) is False  # the same sweep: the first row stays
        with engine.connect() as conn:
            points = history(conn, "m", "3")
            assert history(conn, "m", "4") == []
    finally:
        engine.dispose()
    assert [(p.as_of, p.shops, p.score_psi) for p in points] == [
        ("2026-06-02 12:30", 4000, 0.1),
        ("2026-06-09 12:30", 4000, 0.2),
    ]
    assert points[1].features == {"a": 0.1, "b": 0.4}
