"""``dajia features`` streamed by shop partition against DuckDB's aggregates over the same Parquet.

    .venv/bin/python benchmarks/bench_features_stream.py --shops 1000000      # generates the marketplace
    .venv/bin/python benchmarks/bench_features_stream.py --data DIR [--in-memory]

Each job runs in its own process, measured by ``os.wait4``: wall time, CPU seconds (user + system) and
peak resident memory. The anchor, in the same run: DuckDB computing the seller-history aggregates
(orders, GMV, refunds, complaints by kind and source, reviews, 7/30/90/365-day windows; the SQL of
``bench_features.py``) over the same Parquet files. Targets (issue 25): the streamed command within 3x
DuckDB's wall time and within 2 GiB at 1M shops. ``--in-memory`` also runs the command's in-memory path
(``--no-validate``: unvalidated columns, the whole marketplace in memory) for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measured(argv: list[str]) -> tuple[float, float, float, str]:
    """Like ``run`` but with the child's own CPU and peak memory (``os.wait4``)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(argv[:6])} ... failed ({proc.returncode}):\n{err.read()[-3000:]}")
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 2**20, out.read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shops", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=None, help="an existing Parquet marketplace folder")
    ap.add_argument("--in-memory", action="store_true", help="also run the in-memory path (--no-validate)")
    ap.add_argument("--keep", action="store_true", help="keep the generated marketplace and outputs")
    args = ap.parse_args()
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="bench-features-stream-"))
    data = args.data
    if data is None:
        data = work / "market"
        t0 = time.perf_counter()
        subprocess.run(
            [py, "-m", "dajia.cli", "generate", "--shops", str(args.shops), "--seed", "7", "--out", str(data)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"generated {args.shops:,} shops in {time.perf_counter() - t0:.0f} s -> {data}")
    manifest = json.loads((data / "manifest.json").read_text())
    import pandas as pd

    as_of = (pd.Timestamp(manifest["snapshot_at"]).tz_localize(None) - pd.Timedelta(days=30)).isoformat()
    rows: list[tuple[str, float, float, float]] = []

    duck = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); import pandas as pd; from pathlib import Path; "
        "from bench_features import duckdb_history; "
        f"print(duckdb_history(Path({str(data)!r}), pd.Timestamp({as_of!r})))"
    )
    wall, cpu, peak, _ = measured([py, "-c", duck])
    rows.append(("DuckDB: seller-history aggregates (anchor)", wall, cpu, peak))

    out = work / "features.parquet"
    base = [py, "-m", "dajia.cli", "features", "--data", str(data), "--as-of", as_of, "--json"]
    wall, cpu, peak, text = measured([*base, "--out", str(out)])
    summary = json.loads(text)
    rows.append((f"dajia features, streamed ({summary['partitions']} partitions)", wall, cpu, peak))
    shutil.rmtree(work / "features.parquet.partitions", ignore_errors=True)
    if args.in_memory:
        wall, cpu, peak, _ = measured([*base, "--out", str(work / "mem.parquet"), "--no-validate"])
        rows.append(("dajia features, in memory (--no-validate)", wall, cpu, peak))

    anchor = rows[0]
    print(f"\n{summary['shops']:,} shops x {summary['features']} features as of {as_of} ({summary['text_model']})")
    print(f"{'job':48} {'wall s':>7} {'CPU s':>7} {'peak GiB':>9} {'x wall':>7} {'x CPU':>6} {'x mem':>6}")
    for label, wall, cpu, peak in rows:
        print(
            f"{label:48} {wall:7.1f} {cpu:7.1f} {peak:9.2f} {wall / anchor[1]:7.1f} {cpu / anchor[2]:6.1f} "
            f"{peak / anchor[3]:6.1f}"
        )
    streamed = rows[1]
    print(
        f"targets at 1M shops: wall <= 3x DuckDB ({streamed[1] / anchor[1]:.1f}x), "
        f"peak <= 2 GiB ({streamed[3]:.2f} GiB)"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept: {work}")


if __name__ == "__main__":
    main()
