"""Benchmark: load + validate a marketplace folder, against a bare ``pandas.read_parquet`` of the same files.

Writes a synthetic *valid* marketplace of N shops (simple random tables built with numpy/Arrow,
~29 rows per shop: listings, edits, orders, complaints, reviews; independent of the generator),
then measures, each in a fresh subprocess so peak memory is its own:

* anchor: ``pandas.read_parquet`` of every table file (no checks);
* ``load_marketplace`` (read, coerce, every contract check, pandas frames out).

Prints rows/s, peak RSS and the ratio of our time to the anchor's.

    .venv/bin/python benchmarks/bench_loader.py --shops 100000
    .venv/bin/python benchmarks/bench_loader.py --quick            # 20,000 shops
    .venv/bin/python benchmarks/bench_loader.py --shops 1000000 --format csv
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from marketplace.io import arrow_schema, write_manifest  # noqa: E402
from marketplace.schema import CATEGORIES, COMPLAINT_KINDS, COMPLAINT_SOURCES, TABLES_BY_NAME  # noqa: E402

SNAPSHOT = np.datetime64("2025-06-30T00:00:00", "us")
DAY_US = 86_400 * 1_000_000

TITLES = [
    "Acme 托特包 正品",
    "Lumiere handbag genuine leather",
    "运动鞋 男款 透气",
    "Running shoes size 42",
    "二手 名牌包 九成新",
    "Vintage watch, serviced",
    "口红 套装 礼盒",
    "Wireless earbuds 蓝牙耳机",
    "儿童 积木 玩具",
    "Yoga mat non-slip",
]
REVIEWS = ["很好", "fast delivery", "假货, fake!", "质量一般", "as described", "不错 推荐"]


def _ids(prefix: str, n: int) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(np.arange(n, dtype=np.int64)), pa.string()), "")


def _pick(values: list[str] | tuple[str, ...], idx: np.ndarray) -> pa.Array:
    return pa.array(list(values), type=pa.string()).take(pa.array(idx))


def _ts(values: np.ndarray) -> pa.Array:
    return pa.array(values.astype("datetime64[us]"), type=pa.timestamp("us"))


def _counts(rng: np.random.Generator, n: int, mean: float) -> np.ndarray:
    """Heavy-tailed per-shop counts (log-normal activity) with the given mean."""
    raw = rng.lognormal(mean=0.0, sigma=1.0, size=n)
    return rng.poisson(raw * mean / np.exp(0.5))


def build(n_shops: int, seed: int = 0) -> dict[str, pa.Table]:
    """A valid random marketplace as Arrow tables (keys unique, references and time order consistent)."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2020-01-01T00:00:00", "us").astype(np.int64)
    span3y = 3 * 365 * DAY_US

    shop_ids = _ids("s", n_shops)
    opened = start + rng.integers(0, span3y, n_shops)
    cat_idx = rng.integers(0, len(CATEGORIES), n_shops)
    keeper = _ids("k", n_shops)
    shops = {
        "shop_id": shop_ids,
        "shopkeeper_id": keeper,
        "name": _pick(TITLES, rng.integers(0, len(TITLES), n_shops)),
        "opened_at": _ts(opened),
        "category": _pick(CATEGORIES, cat_idx),
        "business_registration": _ids("91310000MA", n_shops),
        "business_phone": _ids("021-", n_shops),
        "business_email": _ids("shop@", n_shops),
        "owner_phone": _ids("138", n_shops),
        "owner_email": _ids("owner@", n_shops),
        "owner_address": _ids("上海市 ", n_shops),
        "id_number_hash": _ids("h", n_shops),
        "bank_account_hash": _ids("b", n_shops),
        "device_id": _ids("d", n_shops),
    }
    n_brands = max(10, n_shops // 500)
    brand_names = _ids("brand-", n_brands)
    brands = {
        "brand": brand_names,
        "category": _pick(CATEGORIES, rng.integers(0, len(CATEGORIES), n_brands)),
        "reference_price": pa.array(np.round(rng.lognormal(6, 1.2, n_brands) + 1, 2)),
        "premium": pa.array(rng.random(n_brands) < 0.2),
    }
    n_auth = n_shops // 5
    auth_shop = rng.choice(n_shops, n_auth, replace=False)
    authorisations = {
        "brand": brand_names.take(pa.array(rng.integers(0, n_brands, n_auth))),
        "shop_id": shop_ids.take(pa.array(auth_shop)),
        "granted_at": _ts(opened[auth_shop]),
    }

    per_shop = _counts(rng, n_shops, 5.0)
    l_shop = np.repeat(np.arange(n_shops), per_shop)
    n_l = len(l_shop)
    l_created = opened[l_shop] + rng.integers(0, 365 * DAY_US, n_l)
    delisted = np.where(rng.random(n_l) < 0.2, l_created + rng.integers(0, 365 * DAY_US, n_l), 0)
    has_brand = rng.random(n_l) < 0.6
    l_brand = brand_names.take(pa.array(rng.integers(0, n_brands, n_l)))
    listings = {
        "listing_id": _ids("l", n_l),
        "shop_id": shop_ids.take(pa.array(l_shop)),
        "created_at": _ts(l_created),
        "title": _pick(TITLES, rng.integers(0, len(TITLES), n_l)),
        "description": _pick(TITLES, rng.integers(0, len(TITLES), n_l)),
        "brand": pc.if_else(pa.array(has_brand), l_brand, pa.scalar(None, pa.string())),
        "category": _pick(CATEGORIES, cat_idx[l_shop]),
        "price": pa.array(np.round(rng.lognormal(5, 1.3, n_l) + 0.01, 2)),
        "delisted_at": pa.array(
            np.where(delisted > 0, delisted, 0).astype("datetime64[us]"), mask=delisted == 0, type=pa.timestamp("us")
        ),
    }
    n_e = n_l // 5
    e_l = rng.integers(0, n_l, n_e)
    listing_edits = {
        "edit_id": _ids("e", n_e),
        "listing_id": listings["listing_id"].take(pa.array(e_l)),
        "edited_at": _ts(l_created[e_l] + rng.integers(0, 180 * DAY_US, n_e)),
        "title": _pick(TITLES, rng.integers(0, len(TITLES), n_e)),
        "price": pa.array(np.round(rng.lognormal(5, 1.3, n_e) + 0.01, 2)),
    }
    per_listing = rng.poisson(3.0 * rng.lognormal(0, 1, n_l) / np.exp(0.5))
    o_l = np.repeat(np.arange(n_l), per_listing)
    n_o = len(o_l)
    o_at = l_created[o_l] + rng.integers(0, 365 * DAY_US, n_o)
    refunded = rng.random(n_o) < 0.05
    refund_at = o_at + rng.integers(0, 30 * DAY_US, n_o)
    orders = {
        "order_id": _ids("o", n_o),
        "shop_id": shop_ids.take(pa.array(l_shop[o_l])),
        "listing_id": listings["listing_id"].take(pa.array(o_l)),
        "buyer_id": _ids("u", n_o),
        "ordered_at": _ts(o_at),
        "amount": pa.array(np.round(rng.lognormal(5, 1.3, n_o) + 0.01, 2)),
        "refunded_at": pa.array(refund_at.astype("datetime64[us]"), mask=~refunded, type=pa.timestamp("us")),
    }
    n_r = int(n_o * 0.4)
    r_o = rng.choice(n_o, n_r, replace=False)
    reviews = {
        "review_id": _ids("r", n_r),
        "shop_id": orders["shop_id"].take(pa.array(r_o)),
        "order_id": orders["order_id"].take(pa.array(r_o)),
        "created_at": _ts(o_at[r_o] + rng.integers(0, 60 * DAY_US, n_r)),
        "rating": pa.array(rng.integers(1, 6, n_r)),
        "text": _pick(REVIEWS, rng.integers(0, len(REVIEWS), n_r)),
    }
    n_c = n_o // 15
    c_o = rng.integers(0, n_o, n_c)
    about_order = rng.random(n_c) < 0.8
    complaints = {
        "complaint_id": _ids("c", n_c),
        "shop_id": orders["shop_id"].take(pa.array(c_o)),
        "order_id": pc.if_else(
            pa.array(about_order), orders["order_id"].take(pa.array(c_o)), pa.scalar(None, pa.string())
        ),
        "filed_at": _ts(o_at[c_o] + rng.integers(0, 60 * DAY_US, n_c)),
        "kind": _pick(COMPLAINT_KINDS, rng.integers(0, len(COMPLAINT_KINDS), n_c)),
        "source": _pick(COMPLAINT_SOURCES, rng.integers(0, len(COMPLAINT_SOURCES), n_c)),
    }
    n_v = n_shops // 20
    v_shop = rng.choice(n_shops, n_v, replace=False)
    verdicts = {
        "verdict_id": _ids("v", n_v),
        "shop_id": shop_ids.take(pa.array(v_shop)),
        "decided_at": _ts(SNAPSHOT.astype(np.int64) - rng.integers(0, 365 * DAY_US, n_v)),
        "outcome": _pick(("counterfeit", "genuine"), rng.integers(0, 2, n_v)),
        "evidence_kind": _pick(("test_buy", "brand_owner", "reviewer"), rng.integers(0, 3, n_v)),
    }
    raw = {
        "shops": shops,
        "brands": brands,
        "authorisations": authorisations,
        "listings": listings,
        "listing_edits": listing_edits,
        "orders": orders,
        "complaints": complaints,
        "reviews": reviews,
        "verdicts": verdicts,
    }
    out = {}
    for name, cols in raw.items():
        schema = arrow_schema(TABLES_BY_NAME[name])
        out[name] = pa.table([cols[f.name] for f in schema], schema=schema)
    return out


def write(tables: dict[str, pa.Table], folder: Path, fmt: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        if fmt == "parquet":
            pq.write_table(table, folder / f"{name}.parquet", compression="zstd", row_group_size=256_000)
        else:
            pacsv.write_csv(table, folder / f"{name}.csv")
    import pandas as pd

    write_manifest(folder, pd.Timestamp(SNAPSHOT), generator="bench_loader")


def _measure(folder: Path, what: str, fmt: str) -> dict[str, float]:
    """Runs in a child process: one measurement, its wall time and the process's peak RSS."""
    import pandas as pd

    started = time.perf_counter()
    cpu0 = time.process_time()
    if what == "anchor":
        rows = 0
        for name in TABLES_BY_NAME:
            path = folder / f"{name}.{fmt}"
            frame = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
            rows += len(frame)
            del frame
    else:
        from marketplace.loader import load_marketplace

        mp = load_marketplace(folder)
        rows = sum(len(mp.table(n)) for n in mp.table_names())
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "cpu_seconds": cpu, "rows": rows, "peak_gib": peak_kib / 2**20}


def _child(folder: Path, what: str, fmt: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", what, "--dir", str(folder), "--format", fmt],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shops", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="20,000 shops")
    ap.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    ap.add_argument("--dir", type=Path, default=None, help="keep the marketplace here (default: a temp folder)")
    ap.add_argument("--child", choices=("anchor", "load"), default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_measure(args.dir, args.child, args.format)))
        return
    n = 20_000 if args.quick else args.shops
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        folder = args.dir or Path(tmp) / "mp"
        t0 = time.perf_counter()
        tables = build(n)
        rows = sum(t.num_rows for t in tables.values())
        write(tables, folder, args.format)
        del tables
        build_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
        print(f"marketplace: {n:,} shops, {rows:,} rows, {size:,.0f} MiB of {args.format} (built in {build_s:.1f} s)")
        anchor = _child(folder, "anchor", args.format)
        ours = _child(folder, "load", args.format)
    assert int(ours["rows"]) == rows == int(anchor["rows"])
    anchor_name = "pandas.read_parquet" if args.format == "parquet" else "pandas.read_csv"
    print(
        f"anchor  {anchor_name:<22} {anchor['seconds']:8.2f} s  {rows / anchor['seconds']:>12,.0f} rows/s  "
        f"cpu {anchor['cpu_seconds']:7.2f} s  peak {anchor['peak_gib']:.2f} GiB"
    )
    print(
        f"ours    {'load_marketplace':<22} {ours['seconds']:8.2f} s  {rows / ours['seconds']:>12,.0f} rows/s  "
        f"cpu {ours['cpu_seconds']:7.2f} s  peak {ours['peak_gib']:.2f} GiB"
    )
    print(
        f"ratio   load+validate / bare read: time {ours['seconds'] / anchor['seconds']:.2f}x, "
        f"cpu {ours['cpu_seconds'] / anchor['cpu_seconds']:.2f}x, "
        f"peak memory {ours['peak_gib'] / anchor['peak_gib']:.2f}x"
    )


if __name__ == "__main__":
    main()
