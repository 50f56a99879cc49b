"""The online feature store: point-lookup latency of the candidate stores, and ``dajia serve``'s start-up
time and memory against the number of shops the store holds.

(1) ``--lookups``: N shop rows of F float64 features in each candidate store, then single-row reads by
    primary key from one Python thread, as the service reads them (random ids, p50/p99 in microseconds):
    SQLite (``features.online_store.OnlineStore``: embedded, WAL, mmap), Redis (``GET``, one connection,
    127.0.0.1), PostgreSQL (psycopg 3, a prepared ``SELECT`` by primary key, 127.0.0.1). Redis needs the
    ``redis`` client (``pip install redis``; not a dependency of dajia).
(2) ``--serve``: a home with a champion (``bench_api.py --prepare-only --work W``) and its marketplace:
    the marketplace's rows materialised once, then copied with suffixed ids into stores of each size in
    ``--sizes`` (what a sweep of a marketplace that large leaves); ``dajia serve`` (no ``--data``: it
    reads the store) started on each, timed to ready, scored by id, and its peak RSS (VmHWM) read.

    .venv/bin/python benchmarks/bench_online.py --lookups --rows 200000
    .venv/bin/python benchmarks/bench_online.py --serve --home W/home --data W/market --sizes 20000,200000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_api import env_for, free_port, stop, wait_http  # noqa: E402


def _pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p))


def _time_reads(fn: Callable[[str], object], ids: list[str], reps: int) -> dict[str, float]:
    for s in ids[:200]:
        fn(s)
    out: list[float] = []
    clock = time.perf_counter_ns
    for s in ids[:reps]:
        t0 = clock()
        fn(s)
        out.append((clock() - t0) / 1000)
    return {
        "p50_us": round(_pct(out, 50), 1),
        "p99_us": round(_pct(out, 99), 1),
        "mean_us": round(statistics.fmean(out), 1),
    }


def lookups(rows: int, features: int, reps: int) -> None:
    from features.online_store import OnlineStore

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, features))
    ids = [f"S{i:09d}" for i in range(rows)]
    probe = [ids[i] for i in rng.integers(0, rows, size=reps + 200)]
    work = Path(tempfile.mkdtemp(prefix="bench_online_"))
    results: dict[str, dict[str, float]] = {}
    try:
        store = OnlineStore(work / "online.db")
        t0 = time.perf_counter()
        import pandas as pd

        store.put_rows("bench", pd.Timestamp("2026-01-01"), ids, X)
        print(f"sqlite: wrote {rows:,} rows in {time.perf_counter() - t0:.1f} s", flush=True)
        results["sqlite (embedded, this store)"] = _time_reads(store.get, probe, reps)
        store.close()
        try:
            import redis

            r: Any = redis.Redis(host="127.0.0.1", port=6379, db=15)
            r.flushdb()
            pipe = r.pipeline(transaction=False)
            for i, s in enumerate(ids):
                pipe.set(f"bench:{s}", X[i].tobytes())
                if i % 10_000 == 9_999:
                    pipe.execute()
            pipe.execute()
            results["redis (127.0.0.1, GET)"] = _time_reads(
                lambda s: np.frombuffer(r.get(f"bench:{s}"), np.float64), probe, reps
            )
            r.flushdb()
        except Exception as exc:  # a store that is not there is reported, not fatal
            print(f"redis: skipped ({type(exc).__name__}: {exc})")
        try:
            import psycopg

            with psycopg.connect("host=127.0.0.1 dbname=test user=postgres", autocommit=True) as conn:
                conn.execute("DROP TABLE IF EXISTS bench_online")
                conn.execute("CREATE TABLE bench_online (shop_id text PRIMARY KEY, features bytea NOT NULL)")
                with conn.cursor() as cur, cur.copy("COPY bench_online (shop_id, features) FROM STDIN") as cp:
                    for i, s in enumerate(ids):
                        cp.write_row((s, X[i].tobytes()))
                conn.execute("ANALYZE bench_online")
                cur = conn.cursor()

                def pg_get(s: str) -> object:
                    cur.execute("SELECT features FROM bench_online WHERE shop_id = %s", (s,), prepare=True)
                    row = cur.fetchone()
                    return np.frombuffer(row[0], np.float64) if row else None

                results["postgresql (127.0.0.1, prepared)"] = _time_reads(pg_get, probe, reps)
                conn.execute("DROP TABLE bench_online")
        except Exception as exc:
            print(f"postgresql: skipped ({type(exc).__name__}: {exc})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\npoint lookups: {rows:,} rows x {features} float64 features, {reps:,} random reads, one thread")
    for name, res in results.items():
        print(f"  {name:38s} p50 {res['p50_us']:8.1f} us   p99 {res['p99_us']:8.1f} us   mean {res['mean_us']:8.1f} us")


def _vm(pid: int) -> dict[str, str]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {k: status[k].strip() for k in ("VmHWM", "VmRSS")}


def serve_sizes(home: Path, data: Path, sizes: list[int]) -> None:
    from core.settings import Settings
    from features.online_store import OnlineStore, materialise
    from marketplace.loader import load_marketplace
    from marketplace.tables import scoring_time
    from training.promotion import load_version
    from training.tracking import current_alias_version, setup_mlflow

    env = env_for(home)
    settings = Settings(home=home, DATABASE_URL=env["DATABASE_URL"], MLFLOW_TRACKING_URI=env["MLFLOW_TRACKING_URI"])
    client = setup_mlflow(settings)
    version = current_alias_version(client, settings.model_name, "champion")
    model = load_version(settings, str(version))
    mp = load_marketplace(data)
    work = Path(tempfile.mkdtemp(prefix="bench_online_serve_"))
    base = work / "base.db"
    store = OnlineStore(base)
    materialise(store, model.pipeline, mp, scoring_time(mp.snapshot_at))
    store.close()
    n_base = len(mp.shops)
    base_ids = mp.shops["shop_id"].astype(str).tolist()
    del mp
    from core.db import make_engine
    from dajia.db import migrate
    from serving.auth import ApiKeyStore

    engine = make_engine(env["DATABASE_URL"])
    migrate(engine)
    _, secret = ApiKeyStore(engine).create("scorer", "bench_online")
    engine.dispose()
    print(f"base: {n_base:,} shops materialised", flush=True)
    try:
        for size in sizes:
            target = work / f"online-{size}.db"
            OnlineStore(target).close()
            conn = sqlite3.connect(target)
            conn.execute("ATTACH DATABASE ? AS base", (str(base),))
            copies = -(-size // n_base)
            for i in range(copies):
                conn.execute(
                    "INSERT OR REPLACE INTO online_rows SELECT shop_id || ?, pipeline, as_of, refreshed_at, features "
                    "FROM base.online_rows",
                    (f"x{i}",),
                )
                conn.commit()
            held = conn.execute("SELECT count(*) FROM online_rows").fetchone()[0]
            conn.close()
            port = free_port()
            senv = {**env, "DAJIA_ONLINE_STORE": f"sqlite:///{target}"}
            log = work / f"serve-{size}.log"
            t0 = time.perf_counter()
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "dajia.cli", "serve", "--port", str(port)], env=senv, stdout=out, stderr=out
                )
            try:
                wait_http(f"http://127.0.0.1:{port}/readyz", proc)
                while not httpx.get(f"http://127.0.0.1:{port}/readyz").json().get("ready"):
                    time.sleep(0.05)
                ready_s = time.perf_counter() - t0
                rng = np.random.default_rng(1)
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": secret}) as c:
                    lat = []
                    for _ in range(500):
                        sid = f"{base_ids[int(rng.integers(n_base))]}x{int(rng.integers(copies))}"
                        t1 = time.perf_counter()
                        r = c.post("/v1/scores", json={"shop_ids": [sid]})
                        lat.append((time.perf_counter() - t1) * 1000)
                        assert r.status_code == 200, r.text
                vm = _vm(proc.pid)
                print(
                    f"{held:>10,} shops in the store: dajia serve ready in {ready_s:5.1f} s, VmHWM {vm['VmHWM']}, "
                    f"VmRSS {vm['VmRSS']}; by id (python client, c=1) p50 {_pct(lat, 50):.2f} ms",
                    flush=True,
                )
            finally:
                stop(proc)
            target.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lookups", action="store_true")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--features", type=int, default=85)
    ap.add_argument("--reps", type=int, default=20_000)
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--home")
    ap.add_argument("--data")
    ap.add_argument("--sizes", default="20000,200000")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.lookups:
        lookups(args.rows, args.features, args.reps)
    if args.serve:
        if not args.home or not args.data:
            ap.error("--serve needs --home and --data (bench_api.py --prepare-only --work W)")
        serve_sizes(Path(args.home), Path(args.data), [int(s) for s in args.sizes.split(",")])


if __name__ == "__main__":
    main()
