"""Benchmark: route N scored shops into cases, and single decisions, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/bench_routing.py              # 100,000 shops, both databases
    .venv/bin/python benchmarks/bench_routing.py --quick      # 10,000 shops
    .venv/bin/python benchmarks/bench_routing.py --no-postgres
    .venv/bin/python benchmarks/bench_routing.py --features 0   # without feature rows in the snapshots

Targets: routing 100,000 scored shops in at most 60 s on each database; a single decision's p99
at most 20 ms. The anchor, measured in the same run on the same database, is a bare
``executemany`` INSERT of N rows of the same width as a case into a scratch table in one
transaction: the floor any set-based routing has to pay for writing one row per case. Routing
writes four rows per case (case, event, outbox, audit entry) plus the listing freeze.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dajia.db import open_store
from marketplace.schema import TABLES_BY_NAME
from marketplace.tables import Marketplace
from sanctions import cases
from sanctions.routing import route_scored
from sanctions.schemas import Evidence
from sanctions.scored import ScoredShop
from sanctions.storefront import import_marketplace
from sanctions.workflow import Actor, Role

NOW = datetime(2026, 6, 30, 12, 0, 0)
PG_ADMIN = os.environ.get("DAJIA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def marketplace(n: int, shops_with_orders: int) -> Marketplace:
    ids = pd.Series([f"S{i:07d}" for i in range(n)], dtype="string")
    shops = pd.DataFrame(
        {
            "shop_id": ids,
            "shopkeeper_id": "K" + ids,
            "name": "Shop " + ids,
            "opened_at": pd.Series([NOW - timedelta(days=400)] * n, dtype="datetime64[us]"),
            "category": pd.Series(
                np.array(["bags", "shoes", "watches", "cosmetics"])[np.arange(n) % 4], dtype="string"
            ),
            "business_registration": "BR" + ids,
            "business_phone": "010" + ids,
            "business_email": ids + "@biz.example",
            "owner_phone": "138" + ids,
            "owner_email": ids + "@mail.example",
            "owner_address": ids + " Road",
            "id_number_hash": "id" + ids,
            "bank_account_hash": "bk" + ids,
            "device_id": "dv" + ids,
        }
    )
    listings = pd.DataFrame(
        {
            "listing_id": ids + "-L0",
            "shop_id": ids,
            "created_at": pd.Series([NOW - timedelta(days=300)] * n, dtype="datetime64[us]"),
            "title": pd.Series(["高仿 luxury bag"] * n, dtype="string"),
            "description": pd.Series(["d"] * n, dtype="string"),
            "brand": pd.Series([None] * n, dtype="string"),
            "category": shops["category"],
            "price": 199.0,
            "delisted_at": pd.Series([pd.NaT] * n, dtype="datetime64[us]"),
        }
    )
    k = shops_with_orders
    oid = pd.Series([f"O{i:07d}-{j}" for i in range(k) for j in range(3)], dtype="string")
    shop_of = pd.Series([ids[i] for i in range(k) for _ in range(3)], dtype="string")
    orders = pd.DataFrame(
        {
            "order_id": oid,
            "shop_id": shop_of,
            "listing_id": shop_of + "-L0",
            "buyer_id": pd.Series([f"B{j}-{i % 97}" for i in range(k) for j in range(3)], dtype="string"),
            "ordered_at": pd.Series([NOW - timedelta(days=10)] * (3 * k), dtype="datetime64[us]"),
            "amount": 199.0,
            "refunded_at": pd.Series([pd.NaT] * (3 * k), dtype="datetime64[us]"),
        }
    )
    empty = {name: pd.DataFrame({c: [] for c in t.column_names}) for name, t in TABLES_BY_NAME.items()}
    return Marketplace(
        shops=shops,
        brands=empty["brands"],
        authorisations=empty["authorisations"],
        listings=listings,
        listing_edits=empty["listing_edits"],
        orders=orders,
        complaints=empty["complaints"],
        reviews=empty["reviews"],
        verdicts=empty["verdicts"],
        snapshot_at=pd.Timestamp(NOW),
    )


def anchor_insert(engine: sa.Engine, n: int) -> float:
    """A bare executemany INSERT of n case-wide rows in one transaction."""
    md = sa.MetaData()
    t = sa.Table(
        f"bench_anchor_{uuid.uuid4().hex[:8]}",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("shop_id", sa.String(64)),
        sa.Column("status", sa.String(24)),
        sa.Column("version", sa.Integer),
        sa.Column("origin", sa.String(16)),
        sa.Column("score", sa.Float),
        sa.Column("tier", sa.String(16)),
        sa.Column("threshold", sa.Float),
        sa.Column("model_name", sa.String(200)),
        sa.Column("model_version", sa.String(64)),
        sa.Column("route_key", sa.String(64)),
        sa.Column("opened_at", sa.DateTime),
        sa.Column("updated_at", sa.DateTime),
    )
    md.create_all(engine)
    rows = [
        {
            "shop_id": f"S{i:07d}",
            "status": "open",
            "version": 1,
            "origin": "score",
            "score": 0.9,
            "tier": "suspected",
            "threshold": 0.8,
            "model_name": "dajia-shop-risk",
            "model_version": "1",
            "route_key": f"{i:032d}",
            "opened_at": NOW,
            "updated_at": NOW,
        }
        for i in range(n)
    ]
    t0 = time.perf_counter()
    with engine.begin() as conn:
        for i in range(0, n, 5000):
            conn.execute(sa.insert(t), rows[i : i + 5000])
    took = time.perf_counter() - t0
    md.drop_all(engine)
    return took


def run(label: str, url: str, n: int, decisions: int, features: int = 60) -> dict[str, float]:
    engine = open_store(url)
    mp = marketplace(n, shops_with_orders=decisions)
    t0 = time.perf_counter()
    with Session(engine) as s:
        imp = import_marketplace(s, mp, detect_evasion=False)
    t_import = time.perf_counter() - t0
    t_anchor = anchor_insert(engine, n)
    rng = np.random.default_rng(7)
    names = [f"feature_{j:02d}" for j in range(features)]
    values = rng.random((n, features)).round(6).tolist() if features else [[] for _ in range(n)]
    scored = [
        ScoredShop(
            f"S{i:07d}", 0.9, "suspected", "dajia-shop-risk", "1", ["r1", "r2", "r3"], 0.8,
            features=dict(zip(names, values[i], strict=True)) if features else None,
        )
        for i in range(n)
    ]  # fmt: skip
    with Session(engine) as s:
        t0, c0 = time.perf_counter(), time.process_time()
        rep = route_scored(s, scored, now=NOW)
        t_route, c_route = time.perf_counter() - t0, time.process_time() - c0
        assert rep.opened == n, rep
        t0 = time.perf_counter()
        rerun = route_scored(s, scored, now=NOW)
        t_rerun = time.perf_counter() - t0
        assert rerun.unchanged == n and rerun.opened == 0
    reviewer = Actor("bench-reviewer", Role.REVIEWER)
    proof = [Evidence(kind="test_buy", ref="TB-1")]
    lat: list[float] = []
    cpu: list[float] = []
    with Session(engine) as s:
        for i in range(decisions):
            case_id = i + 1  # the first shops have orders: a ban creates 3 claims
            action = ("ban", "close", "dismiss")[i % 3]
            t0, c0 = time.perf_counter(), time.process_time()
            cases.decide(s, case_id, action, reviewer, reason="bench", evidence=proof, now=NOW)
            lat.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    engine.dispose()
    lat_ms = sorted(x * 1000 for x in lat)
    p50 = statistics.median(lat_ms)
    p99 = lat_ms[min(len(lat_ms) - 1, round(0.99 * (len(lat_ms) - 1)))]
    cpu_ms = sorted(x * 1000 for x in cpu)
    cpu_p50 = statistics.median(cpu_ms)
    cpu_p99 = cpu_ms[min(len(cpu_ms) - 1, round(0.99 * (len(cpu_ms) - 1)))]
    print(
        f"[{label}] import {imp.shops_added:,} shops + {imp.listings_added:,} listings + {imp.orders_added:,} orders: "
        f"{t_import:.2f} s"
    )
    print(f"[{label}] anchor: bare executemany INSERT of {n:,} case-wide rows: {t_anchor:.2f} s")
    print(
        f"[{label}] route {n:,} scored shops ({features} feature values each) into cases: {t_route:.2f} s "
        f"({n / t_route:,.0f} cases/s; {t_route / t_anchor:.1f}x the anchor; target <= 60 s: "
        f"{'PASS' if t_route <= 60 else 'FAIL'}); this process's CPU: {c_route:.2f} s"
    )
    print(f"[{label}] rerun of the same sweep (all unchanged): {t_rerun:.2f} s ({t_rerun / t_anchor:.1f}x the anchor)")
    print(
        f"[{label}] single decision (ban/close/dismiss, {decisions}): p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
        f"max {lat_ms[-1]:.2f} ms (target p99 <= 20 ms: {'PASS' if p99 <= 20 else 'FAIL'}); "
        f"client CPU per decision p50 {cpu_p50:.2f} ms, p99 {cpu_p99:.2f} ms"
    )
    return {"route_s": t_route, "anchor_s": t_anchor, "p50_ms": p50, "p99_ms": p99}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shops", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="10,000 shops, 150 decisions")
    ap.add_argument("--decisions", type=int, default=600)
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--features", type=int, default=60, help="feature values per scored shop (the snapshot keeps them)")
    args = ap.parse_args()
    n, decisions = (10_000, 150) if args.quick else (args.shops, args.decisions)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)")
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            run("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", n, decisions, args.features)
    if not args.no_postgres:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'create schema "{schema}"'))
        try:
            sep = "&" if "?" in PG_ADMIN else "?"
            run("postgres", f"{PG_ADMIN}{sep}options=-csearch_path%3D{schema}", n, decisions, args.features)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'drop schema "{schema}" cascade'))
            admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
