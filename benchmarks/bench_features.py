"""Feature building at scale, one shop online, and seller history vs DuckDB SQL on the same Parquet.

    .venv/bin/python benchmarks/bench_features.py --shops 100000 [--data DIR] [--quick]

Prints: batch transform time and peak memory for all shops; the online path (records -> frames ->
transform) median over many different shops; the seller-history aggregates (orders, GMV, refunds,
complaints by kind and source, reviews, in 7/30/90/365-day windows) by our builder and by DuckDB SQL,
both starting from the Parquet files, and our time as a ratio of DuckDB's.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from features.history import WINDOWS, SellerHistoryFeatures
from features.io import read_feature_tables
from features.pipeline import ShopFeaturePipeline
from marketplace.loader import load_marketplace
from marketplace.records import CHILD_TABLES, records_from_frames
from marketplace.schema import TABLES_BY_NAME


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def rss_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def history_tables(folder: Path) -> dict[str, object]:
    """Only the columns the seller-history builder reads, straight from Parquet (as DuckDB does)."""
    from features.pipeline import empty_frame

    tables: dict[str, object] = {}
    for name, columns in SellerHistoryFeatures.needs.items():
        tables[name] = pd.read_parquet(folder / f"{name}.parquet", columns=list(columns))
    for name in ("brands", "authorisations", "verdicts"):
        tables[name] = empty_frame(name)
    return tables


#: shops and the child tables read by the shop's id (listing_edits is read through its listings)
SHOP_TABLES = tuple(t for t in ("shops", *CHILD_TABLES) if "shop_id" in TABLES_BY_NAME[t].column_names)


def shop_rows(folder: Path, ids: list[str]) -> dict[str, pd.DataFrame]:
    """Every column of the given shops' rows (what an API client would send inline), read with filters."""
    frames = {}
    for name in SHOP_TABLES:
        frames[name] = pd.read_parquet(folder / f"{name}.parquet", filters=[("shop_id", "in", ids)])
    listing_ids = frames["listings"]["listing_id"].tolist()
    frames["listing_edits"] = pd.read_parquet(
        folder / "listing_edits.parquet", filters=[("listing_id", "in", listing_ids)] if listing_ids else None
    )
    if not listing_ids:
        frames["listing_edits"] = frames["listing_edits"].iloc[:0]
    return frames


def duckdb_history(folder: Path, as_of: pd.Timestamp) -> tuple[float, int]:
    import duckdb

    t = f"TIMESTAMP '{as_of.isoformat(sep=' ')}'"
    parts = []
    for w in WINDOWS:
        start = f"({t} - INTERVAL {w} DAY)"
        parts.append(
            f"""
            (select shop_id, count(*) filter (where ordered_at >= {start}) as orders_{w},
                    sum(amount) filter (where ordered_at >= {start}) as gmv_{w},
                    count(*) filter (where refunded_at >= {start} and refunded_at < {t}) as refunds_{w},
                    count(*) filter (where ordered_at >= {start} and refunded_at < {t}) as refunded_{w}
             from '{folder}/orders.parquet' where ordered_at < {t} group by shop_id) o{w}"""
        )
    kinds = ("counterfeit", "quality", "not_delivered", "description_mismatch", "other")
    sources = ("consumer", "brand_owner", "test_buy")
    cfilters = ", ".join(
        f"count(*) filter (where filed_at >= ({t} - INTERVAL {w} DAY) and {col} = '{v}') as c_{v}_{w}"
        for w in WINDOWS
        for col, vals in (("kind", kinds), ("source", sources))
        for v in vals
    )
    rfilters = ", ".join(
        f"count(*) filter (where created_at >= ({t} - INTERVAL {w} DAY)) as r_{w}, "
        f"avg(rating) filter (where created_at >= ({t} - INTERVAL {w} DAY)) as rating_{w}, "
        f"count(*) filter (where created_at >= ({t} - INTERVAL {w} DAY) and rating <= 2) as low_{w}"
        for w in WINDOWS
    )
    sql = f"""
        with s as (select shop_id from '{folder}/shops.parquet'),
        c as (select shop_id, {cfilters} from '{folder}/complaints.parquet' where filed_at < {t} group by shop_id),
        r as (select shop_id, {rfilters} from '{folder}/reviews.parquet' where created_at < {t} group by shop_id)
        select * from s {" ".join(f"left join {p} using (shop_id)" for p in parts)}
        left join c using (shop_id) left join r using (shop_id)
    """
    con = duckdb.connect()
    con.execute("set threads to 2")
    t0 = time.perf_counter()
    n = len(con.execute(sql).fetchnumpy()["shop_id"])
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shops", type=int, default=20_000)
    ap.add_argument("--data", type=Path, default=None, help="an existing marketplace folder (else generated)")
    ap.add_argument("--quick", action="store_true", help="2,000 shops, few online repetitions")
    ap.add_argument("--fit-shops", type=int, default=20_000, help="labelled shops the pipeline is fitted on")
    ap.add_argument("--online", type=int, default=300, help="online calls (different shops, rotating)")
    ap.add_argument(
        "--pruned",
        action="store_true",
        help="read only the columns the features use (features.io.read_feature_tables) instead of load_marketplace",
    )
    args = ap.parse_args()
    shops = 2_000 if args.quick else args.shops
    folder = args.data
    if folder is None:
        from marketplace.generator import GeneratorConfig, generate

        folder = Path(tempfile.mkdtemp(prefix="bench-features-"))
        t0 = time.perf_counter()
        generate(GeneratorConfig(shops=shops, seed=0), folder)
        print(f"generated {shops:,} shops in {time.perf_counter() - t0:.1f} s -> {folder}")

    t0 = time.perf_counter()
    mp = read_feature_tables(folder) if args.pruned else load_marketplace(folder)
    load_s = time.perf_counter() - t0
    rows = {n: len(mp.table(n)) for n in mp.table_names()}
    how = "read (needed columns only)" if args.pruned else "loaded + validated"
    print(f"{how} in {load_s:.1f} s: {rows}; RSS {rss_gib():.2f} GiB, peak {peak_gib():.2f} GiB")
    as_of = pd.Timestamp(mp.snapshot_at) - pd.Timedelta(days=60)
    truth = pd.read_parquet(folder / "ground_truth.parquet")
    ex = truth.sample(n=min(args.fit_shops, len(truth)), random_state=0)
    examples = pd.DataFrame({"shop_id": ex["shop_id"], "as_of": as_of, "label": ex["is_counterfeiter"].astype(int)})

    t0 = time.perf_counter()
    pipe = ShopFeaturePipeline().fit(mp, examples)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    X = pipe.transform(mp, as_of)
    batch_s = time.perf_counter() - t0
    n = len(X)
    print(f"fit on {len(examples):,} labelled shops: {fit_s:.1f} s; RSS {rss_gib():.2f} GiB")
    base_rss = rss_gib()
    print(
        f"batch transform: {n:,} shops x {X.shape[1]} features in {batch_s:.1f} s "
        f"({n / batch_s:,.0f} shops/s; 1M shops ~ {batch_s * 1e6 / n / 60:.1f} min at this rate); "
        f"RSS {rss_gib():.2f} GiB (after fit: {base_rss:.2f} GiB), peak so far {peak_gib():.2f} GiB"
    )

    # online: different shops each call (records built beforehand, as the API receives them)
    rng = np.random.default_rng(0)
    ids = list(rng.choice(mp.shops["shop_id"].to_numpy(dtype=object), size=min(args.online, n), replace=False))
    records = records_from_frames(shop_rows(folder, ids), ids)
    times, cpu = [], []
    for shop, rec in zip(ids, records, strict=True):
        t0, c0 = time.perf_counter(), time.process_time()
        row = pipe.transform_records([rec], as_of)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert row.index[0] == shop
    # parity spot check on the last one
    pd.testing.assert_frame_equal(row, X.loc[[shop]], check_exact=True)
    ms, cpu_ms = np.asarray(times) * 1e3, np.asarray(cpu) * 1e3
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    print(
        f"online transform_records, one shop: median {np.median(ms):.2f} ms wall (p90 {np.percentile(ms, 90):.2f}), "
        f"median {np.median(cpu_ms):.2f} ms CPU, over {len(ms)} different shops; target 2 ms: wall "
        f"{np.median(ms) / 2:.2f}x, CPU {np.median(cpu_ms) / 2:.2f}x of target (load average {load} on "
        f"{os.cpu_count()} cores: wall includes waiting for a core)"
    )

    # seller history: ours (read the Parquet columns + builder) vs DuckDB SQL on the same files
    builder = SellerHistoryFeatures().fit(mp, examples)
    del mp, pipe, X
    t0 = time.perf_counter()
    hist_tables = history_tables(folder)
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    H = builder.transform(hist_tables, as_of)  # type: ignore[arg-type]
    ours_s = time.perf_counter() - t0
    duck_s, duck_n = duckdb_history(folder, as_of)
    assert duck_n == len(H)
    print(
        f"seller history {H.shape[1]} features: ours {ours_s:.2f} s (+ {read_s:.1f} s Parquet read of its columns), "
        f"DuckDB SQL {duck_s:.2f} s (reads Parquet itself); ratio ours/DuckDB = {ours_s / duck_s:.2f}x "
        f"(with our read: {(ours_s + read_s) / duck_s:.2f}x)"
    )
    print(f"peak RSS {peak_gib():.2f} GiB")


if __name__ == "__main__":
    main()
