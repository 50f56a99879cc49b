"""A model trained from a feature table (``dajia train --table``), promoted and served over HTTP.

The service has no marketplace: ``/readyz`` says the champion accepts feature ``rows`` and names its
features; rows are validated against those names and types; shop ids, records or rows with the wrong
columns get a 422 that says what the champion expects.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from core.settings import get_settings
from dajia.cli import main
from tests.serving.conftest import create_keys, home_settings, serve_in_thread

FEATURES = ["amount", "n_orders", "has_logo", "ratio"]


def _table(path: Path, n: int = 3_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": rng.lognormal(4, 1, n),
            "n_orders": rng.integers(0, 50, n),
            "has_logo": rng.random(n) < 0.3,
            "ratio": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
        }
    )
    logit = -3 + 2.5 * frame["has_logo"] + 3 * frame["ratio"].fillna(0.5) - 0.03 * frame["n_orders"]
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame.to_csv(path, index=False)
    return frame


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from serving.app import create_app
    from serving.config import ServeOptions

    home = tmp_path_factory.mktemp("table_home")
    table = home / "features.csv"
    frame = _table(table)
    with pytest.MonkeyPatch.context() as env:
        for var in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "DASK_SCHEDULER_ADDRESS"):
            env.delenv(var, raising=False)
        env.setenv("DAJIA_HOME", str(home))
        get_settings.cache_clear()
        try:
            assert main(["train", "--table", str(table), "--label", "y", "--no-register", "--json"]) == 0
            assert main(["train", "--table", str(table), "--label", "y", "--seed", "1", "--json"]) == 0
            assert main(["train", "--table", str(table), "--label", "y", "--seed", "2", "--json"]) == 0
            # version 1 is champion, version 2 challenger: promote it (the gate, or forced with a reason)
            if main(["promote", "--version", "2"]) != 0:
                assert main(["promote", "--version", "2", "--force", "--reason", "serving test"]) == 0
        finally:
            get_settings.cache_clear()
    settings = home_settings(home)  # this home's store and registry, whatever the environment says
    keys = create_keys(settings.resolved_database_url)
    app = create_app(settings, ServeOptions(poll_seconds=0.3, wal_checkpoint_seconds=0.2))
    base_url, server, thread = serve_in_thread(app, "dajia-table-api", log_level="warning")
    client = httpx.Client(base_url=base_url, headers={"X-API-Key": keys["scorer"]}, timeout=60.0)
    try:
        yield {"client": client, "base_url": base_url, "frame": frame, "reviewer": keys["reviewer"]}
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=30)


def _row(frame: pd.DataFrame, i: int) -> dict[str, Any]:
    r = frame.iloc[i]
    values = {n: (None if pd.isna(r[n]) else float(r[n])) for n in FEATURES}
    return {"shop_id": f"row-{i}", "features": values}


def test_readyz_says_the_champion_takes_feature_rows(served: dict[str, Any]) -> None:
    body = httpx.get(f"{served['base_url']}/readyz", timeout=10).json()
    assert body["ready"] is True and body["model"]["version"] == "2"
    assert body["inputs"] == ["rows"]
    assert sorted(body["features"]) == sorted(FEATURES)
    assert body["marketplace_shops"] == 0


def test_feature_rows_are_scored_over_http(served: dict[str, Any]) -> None:
    frame = served["frame"]
    risky = frame.index[(frame["has_logo"]) & (frame["ratio"] > 0.9) & (frame["n_orders"] < 10)][:3].tolist()
    safe = frame.index[(~frame["has_logo"]) & (frame["ratio"] < 0.1) & (frame["n_orders"] > 40)][:3].tolist()
    rows = [_row(frame, i) for i in risky + safe]
    rows.append({"shop_id": "nulls", "features": dict.fromkeys(FEATURES)})
    r = served["client"].post("/v1/scores", json={"rows": rows})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["shop_id"] for x in results] == [row["shop_id"] for row in rows]
    assert all(x["model_version"] == "2" for x in results)
    scores = [x["score"] for x in results]
    assert min(scores[:3]) > max(scores[3:6])
    # no marketplace: ranked in the model's own population sample
    reference = r.json()["reference"]
    assert reference["source"] == "training_population" and reference["shops"] > 100
    ranks = [x["rank"] for x in results]
    assert max(ranks[:3]) < min(ranks[3:6]) and all(1 <= k <= reference["shops"] + 1 for k in ranks)
    assert min(x["percentile"] for x in results[:3]) > max(x["percentile"] for x in results[3:6])
    # the logged score is the returned one
    logged = httpx.get(
        f"{served['base_url']}/v1/predictions",
        params={"shop_id": f"row-{risky[0]}", "shadow": False},
        headers={"X-API-Key": served["reviewer"]},
        timeout=10,
    )
    assert logged.status_code == 200, logged.text
    assert logged.json()["predictions"][0]["score"] == pytest.approx(scores[0])


def test_wrong_input_gets_a_422_saying_what_the_champion_expects(served: dict[str, Any]) -> None:
    c = served["client"]
    frame = served["frame"]
    bad = _row(frame, 0)
    bad["features"].pop("ratio")
    bad["features"]["colour"] = 1.0
    r = c.post("/v1/scores", json={"rows": [_row(frame, 1), bad]})
    assert r.status_code == 422, r.text
    body = r.json()
    assert "expects rows with exactly its 4 features" in body["message"]
    assert {e["path"] for e in body["errors"]} == {"body.rows[1].features"}
    messages = " | ".join(e["message"] for e in body["errors"])
    assert "missing feature(s) ratio" in messages and "unknown feature(s) colour" in messages

    # a wrong type is named at its path
    typed = _row(frame, 2)
    typed["features"]["amount"] = "lots"
    r = c.post("/v1/scores", json={"rows": [typed]})
    assert r.status_code == 422
    assert [e["path"] for e in r.json()["errors"]] == ["body.rows[0].features.amount"]

    # shop ids and records are what a marketplace model takes, not this one
    r = c.post("/v1/scores", json={"shop_ids": ["S1"]})
    assert r.status_code == 422, r.text
    assert "trained from a feature table" in r.json()["message"]
    assert "amount" in r.json()["message"] and r.json()["errors"][0]["path"] == "body.shop_ids"
