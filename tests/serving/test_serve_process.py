"""``dajia serve`` as a real process: a cold start with the registry down serves the cached last good
model (and says so), and a score answered just before the process is killed is in the log."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import sqlalchemy as sa

from tests.serving.conftest import Api, dajia_cmd, free_port, wait_http


def test_cold_start_registry_down_uses_cache_and_log_survives_kill(api: Api, tmp_path: Path) -> None:
    # the session server has already loaded version 1 from the registry, so it is in the disk cache
    assert httpx.get(f"{api.base_url}/readyz").json()["model"]["version"] == "1"
    reg = api.registry
    port = free_port()
    dead = free_port()
    env = {
        **os.environ,
        "DAJIA_HOME": str(reg.home),
        "DATABASE_URL": f"sqlite:///{reg.home / 'dajia.db'}",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{dead}",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
    }
    cmd = [*dajia_cmd(), "serve", "--host", "127.0.0.1", "--port", str(port), "--data", str(reg.data)]
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_http(f"{base}/healthz", timeout=180, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}; server log:\n{log.read_text()[-3000:]}") from exc
        ready = httpx.get(f"{base}/readyz").json()
        assert ready["ready"] is True
        assert ready["model"]["version"] == "1"
        assert ready["model"]["source"] == "cache" and ready["model"]["cached_fallback"] is True
        assert "registry unreachable" in ready["last_error"]
        shops = _some_shops(reg.data, 5)
        r = httpx.post(f"{base}/v1/scores", json={"shop_ids": shops}, headers={"X-API-Key": api.keys["scorer"]})
        assert r.status_code == 200, r.text
        rid = r.json()["request_id"]
        proc.kill()  # SIGKILL right after the answer: no shutdown hook runs
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    engine = sa.create_engine(f"sqlite:///{reg.home / 'dajia.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select shop_id, model_version from serving_predictions where request_id = :r"), {"r": rid}
        ).all()
    engine.dispose()
    assert sorted(r.shop_id for r in rows) == sorted(shops)
    assert {r.model_version for r in rows} == {"1"}


def _some_shops(data: object, n: int) -> list[str]:
    import pandas as pd

    frame = pd.read_parquet(f"{data}/shops.parquet", columns=["shop_id"])
    return [str(s) for s in frame["shop_id"].head(n)]
