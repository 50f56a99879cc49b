"""``dajia serve`` scores by id from the online store on a marketplace too large to load under its memory
cap: the service's memory does not grow with the number of shops.

The marketplace is the session's (800 shops) repeated ``COPIES`` times with every id suffixed (seconds,
not a generator run); the online store holds each copy's rows (as a sweep leaves it) and says it holds
this marketplace, so ``dajia serve --data`` skips the materialisation and the sanction-store import. The
cap is an address-space limit (``RLIMIT_AS``) set in the child before it execs: loading the marketplace
in memory by the same service (the in-process path that loads it whole and computes every shop's features,
what `dajia serve --data` did before) dies under it; `dajia serve` starts and answers under it.
"""

from __future__ import annotations

import hashlib
import os
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.serving.conftest import Api, dajia_cmd, free_port, wait_http
from tests.serving.tiling import tile_marketplace

COPIES = int(os.environ.get("DAJIA_TEST_COPIES", "60"))
#: the address-space cap of both processes (MiB); DAJIA_TEST_CAP_MB overrides
CAP_MB = int(os.environ.get("DAJIA_TEST_CAP_MB", "2600"))


def _capped(cap_mb: int) -> Callable[[], None]:
    def limit() -> None:
        # thread stacks reserve RLIMIT_STACK of address space each (8 MiB by default): 1 MiB is plenty here
        resource.setrlimit(resource.RLIMIT_STACK, (2**20, 2**20))
        resource.setrlimit(resource.RLIMIT_AS, (cap_mb * 2**20, cap_mb * 2**20))

    return limit


def _fill_store(base: Path, target: Path, copies: int) -> str:
    """The base store's rows once per copy, ids suffixed as the tiled marketplace's; the pipeline digest."""
    conn = sqlite3.connect(target)
    try:
        from features.online_store import OnlineStore

        OnlineStore(target).close()
        conn.execute("ATTACH DATABASE ? AS base", (str(base),))
        digest = conn.execute("SELECT pipeline FROM base.online_rows LIMIT 1").fetchone()[0]
        for i in range(copies):
            conn.execute(
                "INSERT OR REPLACE INTO online_rows SELECT shop_id || ?, pipeline, as_of, refreshed_at, features "
                "FROM base.online_rows WHERE pipeline = ?",
                (f"x{i}", digest),
            )
        conn.commit()
    finally:
        conn.close()
    return str(digest)


@pytest.mark.slow
@pytest.mark.timeout(1500)  # two service start-ups and a 48,000-shop load; minutes on a shared machine
def test_serve_scores_by_id_under_a_cap_the_marketplace_exceeds(api: Api, tmp_path: Path) -> None:
    from dajia.scaleout.partition import partition_marketplace
    from features.online_store import open_online_store

    reg = api.registry
    assert httpx.get(f"{api.base_url}/readyz").json()["ready"]  # the session store holds the base rows
    big = tmp_path / "big"
    t0 = time.perf_counter()
    tile_marketplace(reg.data, big, COPIES)
    shops = pd.read_parquet(big / "shops.parquet", columns=["shop_id"])["shop_id"].astype(str)
    home = tmp_path / "home"
    home.mkdir()
    store_file = home / "online.db"
    digest = _fill_store(reg.home / "online.db", store_file, COPIES)
    # what `dajia serve --data` would find after a sweep: the partitions, and the store saying it holds them
    work = home / "serve-partitions" / hashlib.sha256(str(big.resolve()).encode()).hexdigest()[:12]
    parts = partition_marketplace(str(big), str(work), shops_per_partition=5_000)
    db_url = f"sqlite:///{home / 'dajia.db'}"
    store = open_online_store(store_file)
    store.set_meta(f"materialised:{digest}", parts.fingerprint)
    store.set_meta("imported:" + hashlib.sha256(db_url.encode()).hexdigest()[:16], parts.fingerprint)
    store.close()
    setup_s = time.perf_counter() - t0
    env = {
        **os.environ,
        "DAJIA_HOME": str(home),
        "DATABASE_URL": db_url,
        "MLFLOW_TRACKING_URI": reg.url,
        "MALLOC_ARENA_MAX": "2",
        "OMP_NUM_THREADS": "1",
    }
    # the premise: the same service holding the marketplace in memory (the in-process path, which loads it
    # and computes every shop's features, as `dajia serve --data` did before the online store) dies under the cap
    control_home = tmp_path / "control-home"
    control_home.mkdir()
    old_way = "\n".join(
        [
            "import asyncio, sys, pathlib",
            "from core.settings import get_settings",
            "from serving.app import create_app",
            "from serving.config import ServeOptions",
            "opts = ServeOptions(data_dir=pathlib.Path(sys.argv[1]), outbox_seconds=0)",
            "app = create_app(get_settings(), opts)",
            "async def start():",
            "    async with app.router.lifespan_context(app):",
            "        print('started', flush=True)",
            "asyncio.run(start())",
        ]
    )
    control_env = {
        **env,
        "DAJIA_HOME": str(control_home),
        "DATABASE_URL": f"sqlite:///{control_home / 'dajia.db'}",
    }
    from dajia.db import migrate

    migrate(control_env["DATABASE_URL"])
    control = subprocess.run(
        [sys.executable, "-c", old_way, str(big)],
        env=control_env,
        capture_output=True,
        text=True,
        timeout=900,
        preexec_fn=_capped(CAP_MB),
    )
    assert control.returncode != 0, f"the marketplace was served from memory under {CAP_MB} MiB"
    assert "MemoryError" in control.stderr or "memory" in control.stderr.lower(), control.stderr[-3000:]

    port = free_port()
    cmd = [*dajia_cmd(), "serve", "--host", "127.0.0.1", "--port", str(port), "--data", str(big)]
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_capped(CAP_MB),
        )
    base = f"http://127.0.0.1:{port}"
    try:
        t1 = time.perf_counter()
        try:
            wait_http(f"{base}/healthz", timeout=300, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}; server log:\n{log.read_text()[-3000:]}") from exc
        start_s = time.perf_counter() - t1
        ready = httpx.get(f"{base}/readyz").json()
        assert ready["ready"] is True, ready
        assert ready["marketplace_shops"] == len(shops)
        from tests.serving.conftest import create_keys

        key = create_keys(db_url)["scorer"]
        wanted = [shops.iloc[0], shops.iloc[len(shops) // 2], shops.iloc[-1]]
        r = httpx.post(f"{base}/v1/scores", json={"shop_ids": wanted}, headers={"X-API-Key": key}, timeout=30)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["shop_id"] for x in results] == wanted
        assert all(x["features"]["status"] == "fresh" for x in results)
        status = dict(line.split(":", 1) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines())
        print(
            f"\n{len(shops):,} shops: setup {setup_s:.1f} s, serve ready in {start_s:.1f} s, "
            f"VmPeak {status['VmPeak'].strip()}, VmHWM {status['VmHWM'].strip()} (cap {CAP_MB} MiB)"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
