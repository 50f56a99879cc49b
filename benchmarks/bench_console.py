"""Reviewer console: how long the queue page takes with 10,000 open cases (target: at most 300 ms).

Builds a real store with the real services (a generated marketplace imported into the sanction store,
every shop routed as a scored shop so each has an open case), serves the real app with uvicorn on
loopback, signs in as a reviewer and times full HTTP GETs of the queue page (first page, a filtered
page, a deep page). The anchor, measured in the same run on the same database: the bare SQL query
that fetches one page of the queue (the 50 rows, no count, no facets, no HTML).

    .venv/bin/python benchmarks/bench_console.py            # 10,000 open cases
    .venv/bin/python benchmarks/bench_console.py --quick    # 2,000, for a smoke run
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pandas as pd
import sqlalchemy as sa


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(root: Path, n: int) -> tuple[object, object, str]:
    from core.db import make_engine, session_factory
    from core.settings import Settings
    from dajia.db import migrate, open_store
    from marketplace.generator import GeneratorConfig, generate
    from marketplace.loader import load_marketplace
    from sanctions.routing import route_scored
    from sanctions.scored import ScoredShop
    from sanctions.storefront import import_marketplace
    from serving.auth import ApiKeyStore

    t0 = time.perf_counter()
    generate(GeneratorConfig(shops=n, seed=3), root / "market")
    mp = load_marketplace(root / "market")
    home = root / "home"
    home.mkdir()
    settings = Settings(
        home=home, DATABASE_URL=f"sqlite:///{home / 'dajia.db'}", MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}"
    )
    engine = open_store(settings.resolved_database_url)
    import_marketplace(engine, mp, detect_evasion=False)
    ids = [str(s) for s in mp.shops["shop_id"]]
    rng = __import__("numpy").random.default_rng(0)
    scores = rng.uniform(0.5, 1.0, len(ids))
    scored = [
        ScoredShop(
            shop_id=sid,
            score=float(sc),
            tier="suspected",
            model_name="dajia-shop-risk",
            model_version=str(1 + i % 3),
            reasons=[f"{i % 17} counterfeit complaints in 30 days", "prices far below the brand reference"],
            suspected_threshold=0.5,
        )
        for i, (sid, sc) in enumerate(zip(ids, scores, strict=True))
    ]
    snapshot = pd.Timestamp(mp.snapshot_at).to_pydatetime().replace(tzinfo=None)
    with session_factory(engine)() as s:
        report = route_scored(s, scored, now=snapshot + timedelta(days=1))
    engine.dispose()
    sengine = make_engine(settings.resolved_database_url)
    migrate(sengine)
    _, secret = ApiKeyStore(sengine).create("reviewer", "bench reviewer")
    sengine.dispose()
    print(f"store: {report.opened} open cases over {n} shops, built in {time.perf_counter() - t0:.1f} s")
    return settings, mp, secret


def timed(fn: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=10_000, help="open cases (one per shop)")
    ap.add_argument("--quick", action="store_true", help="2,000 cases, fewer repetitions")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--with-index", action="store_true", help="then add an index on cases (status, score) and rerun")
    args = ap.parse_args()
    n = 2000 if args.quick else args.cases
    repeat = 10 if args.quick else args.repeat

    import os

    import uvicorn

    from serving.app import create_app
    from serving.config import ServeOptions

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with tempfile.TemporaryDirectory() as tmp:
        settings, mp, secret = build(Path(tmp), n)
        app = create_app(settings, ServeOptions(poll_seconds=3600, registry_timeout_seconds=2), marketplace=mp)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                httpx.get(base + "/healthz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        client = httpx.Client(base_url=base, timeout=30)
        form = client.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        r = client.post("/console/login", data={"csrf_token": token.group(1), "api_key": secret})
        assert r.status_code == 303, r.text
        first = client.get("/console/queue")
        total = re.search(r'<span class="count">(\d+) case', first.text)
        assert first.status_code == 200 and total is not None
        print(f"queue shows {total.group(1)} open cases")

        # the anchor: the bare SQL of one page, on the same database, same process
        from serving.console.queue import PAGE_SIZE

        engine = sa.create_engine(settings.resolved_database_url)
        page_sql = sa.text(
            "SELECT c.case_id, c.shop_id, s.name, s.category, c.status, c.origin, c.score, c.tier, "
            "c.model_version, c.opened_at, c.reasons FROM cases c JOIN shops s ON s.shop_id = c.shop_id "
            "WHERE c.status IN ('open', 'appealed_close', 'appealed_ban') "
            "ORDER BY c.score DESC, c.case_id LIMIT :n OFFSET 0"
        )
        with engine.connect() as conn:
            conn.execute(page_sql, {"n": PAGE_SIZE}).all()
            anchor = timed(lambda: conn.execute(page_sql, {"n": PAGE_SIZE}).all(), repeat)
        engine.dispose()

        pages = {
            "queue, first page": "/console/queue",
            "queue, category filter": "/console/queue?category=apparel",
            "queue, page 100": "/console/queue?page=100",
            "queue, tier + version + age": "/console/queue?tier=suspected&model_version=2&age=older7d",
        }
        a = statistics.median(anchor)
        print(f"\nanchor: bare SQL for one page of {PAGE_SIZE} rows: median {a:.2f} ms")
        print(f"{'page':32} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'× anchor':>9}  target ≤ 300 ms")
        worst = 0.0
        for label, path in pages.items():
            client.get(path)
            ms = timed(lambda p=path: client.get(p).raise_for_status(), repeat)
            med, p95 = statistics.median(ms), sorted(ms)[max(0, int(len(ms) * 0.95) - 1)]
            worst = max(worst, p95)
            ok = "ok" if p95 <= 300 else "SLOW"
            print(f"{label:32} {med:10.1f} {p95:8.1f} {max(ms):8.1f} {med / a:9.1f}  {ok}")
        if args.with_index:
            # what an index on cases (status, score) would give (not in the sanction migrations today)
            eng = sa.create_engine(settings.resolved_database_url)
            with eng.begin() as conn:
                conn.execute(sa.text("CREATE INDEX bench_cases_status_score ON cases (status, score)"))
            eng.dispose()
            print("\nwith an index on cases (status, score):")
            for label, path in pages.items():
                client.get(path)
                ms = timed(lambda p=path: client.get(p).raise_for_status(), repeat)
                print(f"{label:32} {statistics.median(ms):10.1f} {sorted(ms)[max(0, int(len(ms) * 0.95) - 1)]:8.1f}")
        client.close()
        server.should_exit = True
        thread.join(timeout=30)
    print(f"\nworst p95 {worst:.1f} ms with {n} open cases: {'within' if worst <= 300 else 'OVER'} the 300 ms target")
    return 0 if worst <= 300 else 1


if __name__ == "__main__":
    sys.exit(main())
