"""Benchmark the synthetic marketplace generator: shops/s, rows/s, peak memory.

Anchor (measured in the same run): the time pyarrow alone takes to write the same rows, already
built in memory, as zstd Parquet (the generated files are read back one row group at a time and
only the writes are timed). The ratio generation / bare writing shows what generating costs on
top of the unavoidable I/O.

Target (issue 2): 1,000,000 shops with their listings, orders, complaints and reviews in at most
10 minutes and 8 GiB on a 2-core machine.

    .venv/bin/python benchmarks/bench_generator.py --shops 1000000
    .venv/bin/python benchmarks/bench_generator.py --quick        # 50,000 shops
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from marketplace.generator import GeneratorConfig, generate

TARGET_SECONDS_PER_MILLION = 600.0
TARGET_PEAK_GIB = 8.0


def peak_rss_gib() -> float:
    """The process's resident-set high-water mark (VmHWM), GiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def bare_write_seconds(src: Path, dst: Path) -> float:
    """Seconds pyarrow spends writing every generated table again (row group by row group)."""
    dst.mkdir(parents=True, exist_ok=True)
    spent = 0.0
    for path in sorted(src.glob("*.parquet")):
        reader = pq.ParquetFile(path)
        with pq.ParquetWriter(dst / path.name, reader.schema_arrow, compression="zstd") as writer:
            for i in range(reader.num_row_groups):
                table = reader.read_row_group(i)
                t0 = time.perf_counter()
                writer.write_table(table)
                spent += time.perf_counter() - t0
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shops", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="50,000 shops")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="keep the generated marketplace here")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    shops = 50_000 if args.quick else args.shops

    work = Path(tempfile.mkdtemp(prefix="bench-generator-"))
    out = args.out or work / "market"
    try:
        t0 = time.perf_counter()
        summary = generate(GeneratorConfig(shops=shops, seed=args.seed), out)
        seconds = time.perf_counter() - t0
        peak = peak_rss_gib()
        rows = sum(summary["counts"].values())
        anchor = bare_write_seconds(out, work / "rewritten")
        size = sum(p.stat().st_size for p in out.glob("*.parquet"))
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            shutil.rmtree(work / "rewritten", ignore_errors=True)

    budget = TARGET_SECONDS_PER_MILLION * shops / 1_000_000
    figures = {
        "shops": shops,
        "rows": rows,
        "rows_per_table": summary["counts"],
        "seconds": round(seconds, 2),
        "shops_per_s": round(shops / seconds),
        "rows_per_s": round(rows / seconds),
        "peak_rss_gib": round(peak, 3),
        "parquet_mib": round(size / 2**20, 1),
        "anchor_bare_write_seconds": round(anchor, 2),
        "ratio_generation_over_bare_write": round(seconds / anchor, 2) if anchor > 0 else None,
        "time_budget_seconds": round(budget, 1),
        "within_time_budget": seconds <= budget,
        "within_memory_budget": peak <= TARGET_PEAK_GIB,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"generator: {shops:,} shops, {rows:,} rows in {seconds:.1f} s ({figures['parquet_mib']} MiB of Parquet)")
    print(f"  {figures['shops_per_s']:,} shops/s, {figures['rows_per_s']:,} rows/s, peak RSS {peak:.2f} GiB")
    print(
        f"  anchor: pyarrow writing the same rows, already built: {anchor:.1f} s -> "
        f"generation is {figures['ratio_generation_over_bare_write']}x bare writing"
    )
    print(
        f"  target at this size: <= {budget:.0f} s ({'met' if figures['within_time_budget'] else 'MISSED'}), "
        f"<= {TARGET_PEAK_GIB:.0f} GiB ({'met' if figures['within_memory_budget'] else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
