"""The sweep at scale: streamed locally vs on a 2-worker Dask LocalCluster; peak memory per process.

    .venv/bin/python benchmarks/bench_sweep_scale.py --data /tmp/m1000k --small /tmp/m250k [--model M.pkl]
    .venv/bin/python benchmarks/bench_sweep_scale.py --quick        # generates 20k and 5k shops into /tmp

Make the data once with ``dajia generate --shops 1000000 --out /tmp/m1000k`` (a few minutes) and reuse it.
The model: ``--model`` (a pickled ``ShopRiskModel``), else one is trained here on a small generated
marketplace (the features and the scoring cost do not depend on where the model was trained).

Each sweep runs in a fresh Python process so its peak RSS (``VmHWM``) is its own. Printed:

- the hash-partitioning pre-pass (time, peak memory), done once and reused by every sweep;
- the local streamed sweep of ``--data`` (the anchor): shops/s and the process's peak memory;
- the same sweep on a ``LocalCluster(n_workers=2, processes=True, threads_per_worker=1)``: shops/s as a
  ratio of the local one, peak memory of the client, the scheduler and each worker;
- the local sweep of ``--small``: peak memory, and the ratio big/small (flat means memory does not grow
  with the number of shops).

Routing into the sanction store is left out by default (``--route`` adds it: it imports every shop,
listing and order into the store, which measures the database rather than the sweep).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def vm_hwm_mib() -> float:
    """Peak resident set of this process (MiB), from /proc (ru_maxrss would count forked children)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _settings(home: Path) -> Any:
    from core.settings import Settings

    return Settings(DATABASE_URL=f"sqlite:///{home / 'bench.db'}", home=home)


def child(args: argparse.Namespace) -> None:
    """One measured job in this (fresh) process; prints one JSON line."""
    if args.child == "partition":
        from dajia.scaleout.partition import partition_marketplace

        t0 = time.perf_counter()
        parts = partition_marketplace(args.data, args.work)
        out = {"seconds": time.perf_counter() - t0, "partitions": parts.n_partitions, "shops": parts.shops}
        print(json.dumps({**out, "peak_mib": vm_hwm_mib()}))
        return
    from dajia.scaleout.sweep import run_sweep
    from dajia.sweep import ChampionModel

    champion = ChampionModel("bench", "0", pickle.loads(Path(args.model).read_bytes()))
    home = Path(args.home)
    home.mkdir(parents=True, exist_ok=True)
    settings = _settings(home)
    if args.child == "local":
        result = run_sweep(settings, args.data, args.out, champion, route=args.route, work=args.work)
        print(json.dumps({**_brief(result), "peak_mib": vm_hwm_mib()}))
        return
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=args.workers, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        result = run_sweep(settings, args.data, args.out, champion, route=args.route, work=args.work, client=client)
        workers = client.run(vm_hwm_mib)
        scheduler = client.run_on_scheduler(vm_hwm_mib)
    print(
        json.dumps(
            {
                **_brief(result),
                "peak_mib": vm_hwm_mib(),
                "scheduler_peak_mib": scheduler,
                "worker_peak_mib": sorted(workers.values()),
            }
        )
    )


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result[k] for k in ("shops", "partitions", "seconds", "partition_seconds", "tiers")}


def run_child(kind: str, data: str, work: str, model: str, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--data",
        data,
        "--work",
        work,
        "--model",
        model,
        "--out",
        str(tmp / f"scores-{kind}-{Path(data).name}.parquet"),
        "--home",
        str(tmp / f"home-{kind}-{Path(data).name}"),
        "--workers",
        str(args.workers),
    ] + (["--route"] if args.route else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{kind} sweep of {data} failed")
    line = [x for x in proc.stdout.splitlines() if x.startswith("{")][-1]
    result: dict[str, Any] = json.loads(line)
    return result


def train_small_model(tmp: Path) -> Path:
    """A model trained on a small generated marketplace (the model's origin does not change sweep cost)."""
    from marketplace.generator import GeneratorConfig, generate
    from marketplace.loader import load_marketplace
    from models.thresholds import ThresholdPolicy
    from training.booster import BoosterConfig
    from training.examples import ExamplePlan
    from training.marketplace_run import train_marketplace

    folder = tmp / "train-market"
    generate(GeneratorConfig(shops=2_000, seed=1, chunk_shops=1_000), folder)
    plan = ExamplePlan(seed=0, population_sample=2_000)
    run = train_marketplace(
        load_marketplace(folder),
        plan,
        BoosterConfig(seed=0, max_rounds=400, early_stopping_rounds=50),
        ThresholdPolicy(capacity_per_day=50, sweep_days=plan.step_days),
    )
    path = tmp / "model.pkl"
    path.write_bytes(pickle.dumps(run.model))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="marketplace folder of N shops (e.g. 1,000,000)")
    p.add_argument("--small", help="a smaller marketplace (e.g. 250,000 shops) for the memory comparison")
    p.add_argument("--model", help="pickled ShopRiskModel (default: train one on 2,000 shops)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--route", action="store_true", help="also import and route into a SQLite store")
    p.add_argument("--quick", action="store_true", help="generate 20k and 5k shops and run on those")
    p.add_argument("--tmp", default=None, help="scratch folder (default: a new temp folder)")
    p.add_argument("--child", choices=("local", "cluster", "partition"), help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--home", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    tmp = Path(args.tmp or tempfile.mkdtemp(prefix="bench-sweep-"))
    tmp.mkdir(parents=True, exist_ok=True)
    if args.quick:
        from marketplace.generator import GeneratorConfig, generate

        for n, name in ((20_000, "big"), (5_000, "small")):
            if not (tmp / name / "manifest.json").exists():
                generate(GeneratorConfig(shops=n, seed=7), tmp / name)
        args.data, args.small = str(tmp / "big"), str(tmp / "small")
    if not args.data:
        p.error("--data DIR (or --quick) is required")
    model = args.model or str(train_small_model(tmp))
    print(f"scratch {tmp}; cpus {os.cpu_count()}; workers {args.workers}; route {args.route}")

    big_work = str(tmp / "parts-big")
    part = run_child("partition", args.data, big_work, model, tmp, args)
    print(
        f"partition pass  {part['shops']:>9,} shops -> {part['partitions']} partitions  {part['seconds']:7.1f} s  "
        f"{part['shops'] / part['seconds']:9,.0f} shops/s  peak {part['peak_mib']:7.0f} MiB"
    )
    local = run_child("local", args.data, big_work, model, tmp, args)
    rate = local["shops"] / local["seconds"]
    print(
        f"local sweep     {local['shops']:>9,} shops  {local['seconds']:7.1f} s  {rate:9,.0f} shops/s (anchor 1.00)  "
        f"peak {local['peak_mib']:7.0f} MiB  tiers {local['tiers']}"
    )
    cluster = run_child("cluster", args.data, big_work, model, tmp, args)
    crate = cluster["shops"] / cluster["seconds"]
    workers = ", ".join(f"{w:.0f}" for w in cluster["worker_peak_mib"])
    print(
        f"cluster sweep   {cluster['shops']:>9,} shops  {cluster['seconds']:7.1f} s  {crate:9,.0f} shops/s "
        f"({crate / rate:.2f}x local)  client peak {cluster['peak_mib']:.0f} MiB, scheduler "
        f"{cluster['scheduler_peak_mib']:.0f} MiB, workers {workers} MiB"
    )
    if cluster["tiers"] != local["tiers"]:
        print(f"WARNING: tiers differ: local {local['tiers']} cluster {cluster['tiers']}")
    if args.small:
        small_work = str(tmp / "parts-small")
        run_child("partition", args.small, small_work, model, tmp, args)
        small = run_child("local", args.small, small_work, model, tmp, args)
        print(
            f"local sweep     {small['shops']:>9,} shops  {small['seconds']:7.1f} s  "
            f"{small['shops'] / small['seconds']:9,.0f} shops/s  peak {small['peak_mib']:7.0f} MiB"
        )
        print(
            f"local peak memory, {local['shops']:,} vs {small['shops']:,} shops: "
            f"{local['peak_mib'] / small['peak_mib']:.2f}x for {local['shops'] / small['shops']:.1f}x the shops"
        )


if __name__ == "__main__":
    main()
