"""Scoring API throughput and latency against its two anchors, on loopback, with the same load generator.

(a) ``mlflow models serve`` on the registered ``dajia-shop-risk@champion`` (one request = one shop's raw
    records, the model's signature: string columns, child tables as JSON strings);
(b) the floor: a bare FastAPI app built here that parses a JSON array of the model's feature values and
    calls ``Booster.predict`` — nothing else;
(c) dajia: ``dajia serve`` scoring one shop by id, with API-key auth, the durable prediction log and
    reasons for flagged shops.

Each request rotates over many different shops (a repeated row is ~3x faster in LightGBM). The load
generator is ``wrk`` (Debian's package) when present, else a Python asyncio/httpx generator; the same one
drives all three servers. Also measured: one request with a batch of 1,000 inline shop records to (c).

    .venv/bin/python benchmarks/bench_api.py --quick            # 5 s per point
    .venv/bin/python benchmarks/bench_api.py --duration 20      # longer
    .venv/bin/python benchmarks/bench_api.py --home H --data D  # reuse a trained home and its marketplace
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CONCURRENCY = (1, 8, 32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before {url} answered")
        try:
            if httpx.get(url, timeout=5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------------------------- setup
def prepare(args: argparse.Namespace, work: Path) -> tuple[Path, Path]:
    """A home with a registered champion and its marketplace (trained here unless given)."""
    if args.home and args.data:
        return Path(args.home).resolve(), Path(args.data).resolve()
    from core.settings import Settings
    from marketplace.generator import GeneratorConfig, generate
    from training.marketplace_run import run_marketplace

    data = work / "market"
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    print(f"generating {args.shops} shops and training (once) ...", flush=True)
    t0 = time.perf_counter()
    generate(GeneratorConfig(shops=args.shops, seed=11), data)
    settings = Settings(
        home=home,
        DATABASE_URL=f"sqlite:///{home / 'dajia.db'}",
        MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlruns' / 'mlflow.db'}",
    )
    run_marketplace(settings, data, seed=0, register=True)
    print(f"  ready in {time.perf_counter() - t0:.0f}s", flush=True)
    return home, data


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MLFLOW_TRACKING_URI")}
    env.update(
        {
            "DAJIA_HOME": str(home),
            "DATABASE_URL": f"sqlite:///{home / 'dajia.db'}",
            "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlruns' / 'mlflow.db'}",
            "DAJIA_LIGHTGBM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            # servers started by name (mlflow models serve runs `uvicorn`) come from this interpreter's venv
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    return env


# --------------------------------------------------------------------------------------------- load
WRK_LUA = textwrap.dedent(
    """
    local bodies = {}
    local i = 0
    init = function(args)
      for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
    end
    request = function()
      i = (i % #bodies) + 1
      return wrk.format("POST", nil, nil, bodies[i])
    end
    """
)


def run_wrk(
    url: str, bodies: list[bytes], headers: dict[str, str], conc: int, duration: float, work: Path
) -> dict[str, float]:
    lines = work / "bodies.txt"
    lines.write_bytes(b"\n".join(bodies) + b"\n")
    script = work / "rotate.lua"
    script.write_text(WRK_LUA)
    cmd = ["wrk", "-t1", f"-c{conc}", f"-d{max(1, int(duration))}s", "--latency", "-s", str(script)]
    for k, v in {"Content-Type": "application/json", **headers}.items():
        cmd += ["-H", f"{k}: {v}"]
    cmd += [url, "--", str(lines)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def run_python_load(
    url: str, bodies: list[bytes], headers: dict[str, str], conc: int, duration: float
) -> dict[str, float]:
    import asyncio

    async def main() -> dict[str, float]:
        lat: list[float] = []
        bad = 0
        stop_at = time.perf_counter() + duration
        hdrs = {"Content-Type": "application/json", **headers}
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=conc)) as client:

            async def worker(k: int) -> None:
                nonlocal bad
                i = k
                while time.perf_counter() < stop_at:
                    t = time.perf_counter()
                    r = await client.post(url, content=bodies[i % len(bodies)], headers=hdrs)
                    lat.append(time.perf_counter() - t)
                    bad += r.status_code >= 300
                    i += conc

            t0 = time.perf_counter()
            await asyncio.gather(*[worker(k) for k in range(conc)])
            el = time.perf_counter() - t0
        a = np.asarray(lat) * 1000
        return {
            "rps": len(a) / el,
            "p50_ms": float(np.percentile(a, 50)),
            "p99_ms": float(np.percentile(a, 99)),
            "non2xx": float(bad),
            "socket_errors": 0.0,
        }

    return asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a server process and its children so far."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def load(
    url: str, bodies: list[bytes], headers: dict[str, str], conc: int, duration: float, work: Path, pid: int
) -> dict[str, float]:
    """Warm-up, then the measured run; also the server's CPU time per request (robust to a busy machine)."""
    use_wrk = shutil.which("wrk") is not None
    if use_wrk:
        run_wrk(url, bodies, headers, conc, 1, work)
    else:
        run_python_load(url, bodies, headers, conc, 1)
    cpu0 = cpu_seconds(pid)
    if use_wrk:
        r = run_wrk(url, bodies, headers, conc, duration, work)
    else:
        r = run_python_load(url, bodies, headers, conc, duration)
    r["cpu_ms_per_req"] = (cpu_seconds(pid) - cpu0) * 1000 / max(r["rps"] * duration, 1.0)
    return r


# --------------------------------------------------------------------------------------------- servers
BARE_APP = textwrap.dedent(
    """
    import os
    import lightgbm as lgb
    import numpy as np
    import orjson
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    booster = lgb.Booster(model_file=os.environ["BENCH_BOOSTER"])
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        row = np.asarray(orjson.loads(await request.body()), dtype=np.float64).reshape(1, -1)  # null -> NaN
        score = float(booster.predict(row, num_threads=1)[0])
        return Response(orjson.dumps({"score": score}), media_type="application/json")
    """
)


def _per_call_us(fn: Any, rows: list[np.ndarray], reps: int) -> float:
    t = time.perf_counter()
    for i in range(reps):
        fn(rows[i % len(rows)])
    return (time.perf_counter() - t) / reps * 1e6


def reason_costs(rt: Any, pick: list[str]) -> None:
    """One row, different rows each call, 1 thread: predict vs exact TreeSHAP vs the served Saabas reasons."""
    booster = rt.model.booster
    rows = [rt.X[rt.index[s]].reshape(1, -1) for s in pick[:200]]
    predict = _per_call_us(lambda r: booster.predict(r, num_threads=1), rows, 400)
    contrib = _per_call_us(lambda r: booster.predict(r, pred_contrib=True, num_threads=1), rows, 40)
    saabas = _per_call_us(lambda r: rt.model.explain(r, top=3), rows, 200)
    X = np.vstack(rows)
    t = time.perf_counter()
    booster.predict(X, pred_contrib=True, num_threads=1)
    contrib_batch = (time.perf_counter() - t) / len(X) * 1e6
    t = time.perf_counter()
    rt.model.explain(X, top=3)
    saabas_batch = (time.perf_counter() - t) / len(X) * 1e6
    print(
        f"reasons, one row: predict {predict:.0f} us; pred_contrib (TreeSHAP) {contrib:.0f} us "
        f"({contrib / predict:.0f}x predict); Saabas path credits + words {saabas:.0f} us ({saabas / predict:.1f}x)\n"
        f"reasons, per row in a batch of {len(X)}: pred_contrib {contrib_batch:.0f} us; "
        f"Saabas + words {saabas_batch:.0f} us",
        flush=True,
    )


#: the text fields of a record's child tables (listing titles and descriptions, edited titles, reviews)
TEXT_FIELDS = {"listings": ("title", "description"), "listing_edits": ("title",), "reviews": ("text",)}


def inline_batches(
    url: str, headers: dict[str, str], frames: dict[str, Any], ids: list[str], as_of: Any, pid: int
) -> tuple[list[float], list[float]]:
    """One request of 1,000 inline shop records, timed two ways: the same body repeated (the first post
    warms the process and is dropped), and the same shops with every listing and review text changed
    and as of a later day, each sent once: no text was seen before and every feature row differs, so
    nothing kept from earlier requests (normalised texts, text-model dot products, reasons) applies."""
    import pandas as pd

    from marketplace.records import records_from_frames
    from marketplace.schema import TABLES_BY_NAME

    size = min(1000, len(ids))
    recs = [r.model_dump(mode="json") for r in records_from_frames(frames, ids[:size])]

    def body(records: list[dict[str, Any]], when: Any) -> bytes:
        return json.dumps({"records": records, "as_of": when.isoformat()}).encode()

    def new_texts(k: int) -> list[dict[str, Any]]:
        out = json.loads(json.dumps(recs))
        for r in out:
            for table, fields in TEXT_FIELDS.items():
                for f in fields:
                    limit = TABLES_BY_NAME[table].column(f).max_len or 10**6
                    for item in r[table]:
                        item[f] = f"#{k} {item[f]}"[:limit]
        return out

    payload = body(recs, as_of)
    fresh = [body(new_texts(k), as_of + pd.Timedelta(days=k)) for k in (1, 2, 3)]
    # sent to the server as started, with its default body limit (issue 25: the documented batch fits it)
    hdrs = {"Content-Type": "application/json", **headers}

    cpu: list[float] = []  # server CPU of each post, in order

    def post(c: httpx.Client, content: bytes) -> float:
        cpu0 = cpu_seconds(pid)
        t = time.perf_counter()
        rr = c.post(url, content=content, headers=hdrs)
        if rr.status_code != 200:
            raise RuntimeError(f"batch: {rr.status_code} {rr.text[:300]}")
        wall = (time.perf_counter() - t) * 1000
        cpu.append((cpu_seconds(pid) - cpu0) * 1000)
        return wall

    with httpx.Client(timeout=120) as c:
        repeated = [post(c, payload) for _ in range(6)][1:]  # the first one warms the process
        cold = [post(c, b) for b in fresh]
    # the anchor, measured now on this machine: parsing the same body with orjson (no checks, no features)
    anchor = statistics.median(_timed_ms(lambda: orjson.loads(payload)) for _ in range(5))
    print(
        f"  batch of {size} inline shops ({len(payload) / 1e6:.1f} MB JSON): repeated: median "
        f"{statistics.median(repeated):.0f} ms, min {min(repeated):.0f} ms; new texts, later day (nothing "
        f"kept applies): {', '.join(f'{v:.0f}' for v in cold)} ms\n"
        f"  server CPU per batch (all its threads; less sensitive to other load): repeated median "
        f"{statistics.median(cpu[1:6]):.0f} ms, new texts {', '.join(f'{v:.0f}' for v in cpu[6:])} ms\n"
        f"  anchor: orjson.loads of the same body {anchor:.0f} ms here and now; the batch costs "
        f"{statistics.median(repeated) / anchor:.1f}x that (repeated), "
        f"{statistics.median(cold) / anchor:.1f}x (new texts)",
        flush=True,
    )
    return repeated, cold


def _timed_ms(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def start(cmd: list[str], env: dict[str, str], health: str, log: Path) -> subprocess.Popen[bytes]:
    fh = open(log, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    wait_http(health, proc)
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 s per point")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per measured point")
    ap.add_argument("--shops", type=int, default=3000, help="marketplace size when training here")
    ap.add_argument("--home", help="existing home with a registered champion (skip training)")
    ap.add_argument("--data", help="the marketplace folder that home's model was trained on")
    ap.add_argument("--rotate", type=int, default=1000, help="different shops to rotate over")
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--batch-only", action="store_true", help="only the 1,000-shop inline batch against dajia")
    ap.add_argument("--prepare-only", action="store_true", help="generate and train into --work, then stop")
    ap.add_argument("--work", help="folder for the generated marketplace and home (default: a new temp folder)")
    args = ap.parse_args()
    duration = 5.0 if args.quick else args.duration
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench_api_"))
    work.mkdir(parents=True, exist_ok=True)
    home, data = prepare(args, work)
    if args.prepare_only:
        print(f"prepared: --home {home} --data {data}")
        return
    env = env_for(home)

    # ---- the model, its features, the rotated payloads
    import mlflow

    from core.db import make_engine
    from core.settings import Settings
    from dajia.db import migrate
    from marketplace.loader import load_marketplace
    from marketplace.records import records_from_frames
    from marketplace.tables import scoring_time
    from models.pyfunc import records_frame
    from serving.auth import ApiKeyStore
    from serving.runtime import ModelRuntime

    settings = Settings(home=home, DATABASE_URL=env["DATABASE_URL"], MLFLOW_TRACKING_URI=env["MLFLOW_TRACKING_URI"])
    mlflow.set_tracking_uri(settings.resolved_tracking_uri)
    model_uri = f"models:/{settings.model_name}@champion"
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(work / "model")))
    mp = load_marketplace(data)
    rt = ModelRuntime.from_dir(local, settings.model_name, "bench", mp, threads=1)
    booster_file = work / "booster.txt"
    rt.model.booster.save_model(str(booster_file))
    rng = np.random.default_rng(0)
    ids = list(rt.index)
    pick = [ids[i] for i in rng.choice(len(ids), size=min(args.rotate, len(ids)), replace=False)]
    _scores, tiers = rt.score(rt.X[rt.rows_for_ids(pick)])
    flagged = sum(t != "low" for t in tiers)
    print(
        f"model: {len(rt.feature_names)} features, {rt.model.booster.num_trees()} trees; rotating {len(pick)} shops, "
        f"{flagged} of them flagged (watch or suspected)",
        flush=True,
    )
    frames = {n: mp.table(n) for n in mp.table_names()}
    as_of = scoring_time(mp.snapshot_at)
    reason_costs(rt, pick)

    # a JSON array of the feature values (missing values as null, which numpy reads back as NaN)
    bodies_b = [json.dumps([None if np.isnan(v) else v for v in rt.X[rt.index[s]].tolist()]).encode() for s in pick]
    bodies_c = [json.dumps({"shop_ids": [s]}).encode() for s in pick]
    n_a = min(len(pick), 200)
    recs_a = [r.model_dump(mode="json") for r in records_from_frames(frames, pick[:n_a])]
    frame_a = records_frame(recs_a, as_of)
    bodies_a = [
        json.dumps({"dataframe_records": frame_a.iloc[[i]].to_dict(orient="records")}).encode() for i in range(n_a)
    ]

    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    _, secret = ApiKeyStore(engine).create("scorer", "bench")
    engine.dispose()

    results: dict[str, dict[int, dict[str, float]]] = {}
    servers: list[tuple[str, list[str], dict[str, str], str, str, list[bytes], dict[str, str]]] = []
    port_a, port_b, port_c = free_port(), free_port(), free_port()
    if not args.skip_mlflow:
        servers.append(
            (
                "a_mlflow",
                [
                    PY,
                    "-m",
                    "mlflow",
                    "models",
                    "serve",
                    "-m",
                    model_uri,
                    "--env-manager",
                    "local",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port_a),
                    "--workers",
                    "1",
                ],
                env,
                f"http://127.0.0.1:{port_a}/ping",
                f"http://127.0.0.1:{port_a}/invocations",
                bodies_a,
                {},
            )
        )
    app_file = work / "bare_app.py"
    app_file.write_text(BARE_APP)
    servers.append(
        (
            "b_bare",
            [
                PY,
                "-m",
                "uvicorn",
                "bare_app:app",
                "--app-dir",
                str(work),
                "--host",
                "127.0.0.1",
                "--port",
                str(port_b),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            {**env, "BENCH_BOOSTER": str(booster_file)},
            f"http://127.0.0.1:{port_b}/docs",
            f"http://127.0.0.1:{port_b}/predict",
            bodies_b,
            {},
        )
    )
    servers.append(
        (
            "c_dajia",
            [
                PY,
                "-m",
                "dajia.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port_c),
                "--data",
                str(data),
            ],
            env,
            f"http://127.0.0.1:{port_c}/readyz",
            f"http://127.0.0.1:{port_c}/v1/scores",
            bodies_c,
            {"X-API-Key": secret},
        )
    )

    batch_ms: list[float] = []
    cold_ms: list[float] = []
    if args.batch_only:
        servers = [s for s in servers if s[0] == "c_dajia"]
    for name, cmd, senv, health, url, bodies, headers in servers:
        print(f"starting {name} ...", flush=True)
        proc = start(cmd, senv, health, work / f"{name}.log")
        try:
            check = httpx.post(
                url, content=bodies[0], headers={"Content-Type": "application/json", **headers}, timeout=60
            )
            if check.status_code != 200:
                raise RuntimeError(f"{name}: {check.status_code} {check.text[:300]}")
            results[name] = {}
            for conc in () if args.batch_only else CONCURRENCY:
                results[name][conc] = r = load(url, bodies, headers, conc, duration, work, proc.pid)
                print(
                    f"  {name:9s} c={conc:<3d} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.2f} ms  "
                    f"p99 {r['p99_ms']:7.2f} ms  non-2xx {int(r['non2xx'])}",
                    flush=True,
                )
            if name == "c_dajia":
                batch_ms, cold_ms = inline_batches(url, headers, frames, ids, as_of, proc.pid)
        finally:
            stop(proc)

    if args.batch_only:
        for label, ms in (("repeated shops", batch_ms), ("new texts", cold_ms)):
            median = statistics.median(ms)
            print(
                f"  {'PASS' if median <= 300.0 else 'MISS'}  batch of 1,000 inline <= 300 ms ({label}): {median:.0f} ms"
            )
        return
    # ---- summary
    print("\nsummary (loopback, same machine, load generator: " + ("wrk" if shutil.which("wrk") else "python") + ")")
    print(f"{'conc':>5} " + " ".join(f"{n:>22s}" for n in results) + "   c/a     c/b")
    for conc in CONCURRENCY:
        row = " ".join(f"{results[n][conc]['rps']:9.1f} rps {results[n][conc]['p99_ms']:6.1f}ms" for n in results)
        c = results["c_dajia"][conc]["rps"]
        ca = c / results["a_mlflow"][conc]["rps"] if "a_mlflow" in results else float("nan")
        cb = c / results["b_bare"][conc]["rps"]
        print(f"{conc:>5} {row}  {ca:6.1f}x {cb:6.0%}")
    print("server CPU per request (ms), less sensitive to other load on the machine:")
    for conc in CONCURRENCY:
        cpu = {n: results[n][conc]["cpu_ms_per_req"] for n in results}
        ratio = cpu["b_bare"] / cpu["c_dajia"] if cpu["c_dajia"] > 0 else float("nan")
        print(f"  c={conc:<3d} " + "  ".join(f"{n} {v:6.2f}" for n, v in cpu.items()) + f"   b/c {ratio:5.0%}")
    c8 = results["c_dajia"][8]
    verdicts = {
        "c >= 20x a at c=8": ("a_mlflow" in results and c8["rps"] >= 20 * results["a_mlflow"][8]["rps"]),
        "c >= 40% of b at c=8": c8["rps"] >= 0.4 * results["b_bare"][8]["rps"],
        "p99 of c <= 15 ms at c=8": c8["p99_ms"] <= 15.0,
        "batch of 1,000 inline <= 300 ms (repeated shops)": bool(batch_ms) and statistics.median(batch_ms) <= 300.0,
        "batch of 1,000 inline <= 300 ms (new texts)": bool(cold_ms) and statistics.median(cold_ms) <= 300.0,
    }
    for k, v in verdicts.items():
        print(f"  {'PASS' if v else 'MISS'}  {k}")
    print(f"(work folder: {work})")


if __name__ == "__main__":
    main()
