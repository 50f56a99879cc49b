"""Reliability figures: bad inputs tried and rejected cleanly, requests under load (wrk, mixed scoring
and reviewer traffic on loopback) with errors and p50/p99, and data lost.

    .venv/bin/python benchmarks/reliability.py --run <crackdown folder> [--seconds 60] [--quick]

``--run`` reuses a finished ``dajia crackdown --out`` folder (its model, marketplace and database);
without it a 1,500-shop crackdown is made first. Faults are injected here too (``--faults-only``:
just those): campaign publishing and outbox delivery SIGKILLed at random points and rerun
(``tests/reliability/test_kill_rerun.py``'s scenario, more kills), and a disk filling up under every
writer (``tests/reliability/test_disk_full.py``, needs root to mount a tmpfs), and issue 23's edge
cases (``EDGE_SUITES``: ids and NUL at the edge, a read-only database's output, sessions, strict bodies,
forwarded headers, ``/readyz`` and outage pages, CLI inputs, a missing manifest and CSV folders,
retention), and a crackdown SIGKILLed inside five of its steps and resumed, compared with an unbroken
run of the same seed (``tests/reliability/test_crackdown_resume.py``; ``--resume-only``: just that and
the folder checks). The other faults
(database cut, registry down) are exercised by tests/reliability and tests/serving; see
docs/reliability.md.
"""

from __future__ import annotations

import argparse
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LUA = r"""
local n = 0
request = function()
  n = n + 1
  if n %% 4 == 0 then
    return wrk.format("GET", "/v1/cases?limit=20", {["X-API-Key"] = "%(reviewer)s"})
  end
  return wrk.format("POST", "/v1/scores", {["X-API-Key"] = "%(scorer)s", ["Content-Type"] = "application/json"},
                    '{"shop_ids": ["%(shop)s"]}')
end
"""


def bad_file_figures() -> tuple[int, int]:
    import pandas as pd

    from core.errors import DataContractError
    from marketplace.loader import validate_frames
    from tests.test_contract import BAD_CASES, SNAPSHOT, valid_frames

    tried = clean = 0
    for _case, breaker, table, column, _row, _words in BAD_CASES:
        frames: dict[str, pd.DataFrame] = {k: v.copy() for k, v in valid_frames().items()}
        breaker(frames)
        tried += 1
        try:
            validate_frames(frames, SNAPSHOT)
        except DataContractError as exc:
            clean += int(table in str(exc) and (not column or column in str(exc)))
    return tried, clean


def bad_request_figures(base: str, keys: dict[str, str], shop: str, case_id: int, db: str) -> tuple[int, int, bool]:
    from tests.reliability.test_bad_requests import bad_requests

    def state() -> list[int]:
        with sqlite3.connect(db) as conn:
            return [
                conn.execute(f"select count(*) from {t}").fetchone()[0]
                for t in ("cases", "audit_log", "serving_predictions")
            ]

    before = state()
    tried = clean = 0
    with httpx.Client(base_url=base, headers={"X-API-Key": keys["admin"]}, timeout=60) as c:
        for _label, method, path, kwargs, expected in bad_requests(shop, case_id):
            r = c.request(method, path, **kwargs)
            tried += 1
            ok = (r.status_code == expected or (expected, r.status_code) == (400, 422)) and r.status_code < 500
            clean += int(ok)
            if not ok:
                print(f"  not as expected: {_label}: {r.status_code} (expected {expected}) {r.text[:120]}")
    return tried, clean, state() == before


def wrk_run(base: str, keys: dict[str, str], shop: str, seconds: int, connections: int) -> dict[str, float]:
    script = Path(tempfile.mkdtemp()) / "mixed.lua"
    script.write_text(LUA % {"reviewer": keys["reviewer"], "scorer": keys["scorer"], "shop": shop})
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    sock = sum(int(g) for g in errors.groups()) if errors else 0
    return {
        "requests": total,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "errors": (int(non2xx.group(1)) if non2xx else 0) + sock,
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
    }


def kill_rerun_figures(kills: int, seed: int) -> dict[str, int]:
    """Publishing killed before its commit, delivery SIGKILLed ``kills`` times at random sends (most inside
    a send, before its delivered mark commits; some anywhere), rerun to the end; what the receiver got."""
    from sqlalchemy.orm import Session

    from dajia.db import open_store
    from tests.reliability import test_kill_rerun as k

    folder = Path(tempfile.mkdtemp())
    db = f"sqlite:///{folder / 'store.db'}"
    engine = open_store(db)
    try:
        with Session(engine, expire_on_commit=False) as s:
            campaign_id = k.approved_campaign(s)
        before = len(k.outbox(engine))
        k.kill_publication(db, folder, campaign_id)
        after_kill = len(k.outbox(engine))
        k.publish(db, folder, campaign_id)
        rng = random.Random(seed)
        inside = kills - kills // 3
        killed = k.kill_deliveries(
            engine,
            db,
            folder,
            hang_after=[rng.randint(1, 15) for _ in range(inside)],
            anywhere=[rng.randint(3, 15) for _ in range(kills - inside)],
        )
        k.finish_delivery(engine, folder)
        t = k.tally(engine, folder)
    finally:
        engine.dispose()
    return {
        "messages": len(t.messages),
        "publish_kills": 1,
        "publish_half_written": after_kill - before,
        "delivery_kills": killed.count,
        "raw_sends": sum(t.raw.values()),
        "resent": sum(t.resent.values()),
        "max_resent_per_message": max(t.resent.values(), default=0),
        "undelivered": sum(1 for v in t.messages.values() if v != "delivered"),
        "lost": t.lost,
        "filed_twice": t.filed_twice,
    }


def disk_full_figures() -> tuple[dict[str, int], str]:
    """Runs tests/reliability/test_disk_full.py: each test fills a real tmpfs under one writer."""
    return pytest_figures(["tests/reliability/test_disk_full.py"])


#: issue 23's edge cases, each a test on SQLite and (where it names one) PostgreSQL
EDGE_SUITES = [
    "tests/reliability/test_edges.py",
    "tests/reliability/test_strict_scores.py",
    "tests/reliability/test_failure_output.py",
    "tests/reliability/test_forwarded.py",
    "tests/reliability/test_cli_inputs.py",
    "tests/reliability/test_snapshot_and_csv.py",
    "tests/serving/test_retention.py",
]


def resume_figures() -> dict[str, object]:
    """A crackdown SIGKILLed at each of ``KILLS`` and resumed, beside an unbroken run of the same seed
    (both real processes, run side by side): the summary's items and the store's rows that differ."""
    import shutil

    from tests.reliability.test_crackdown_resume import (
        KILLS,
        SHOPS,
        _finish,
        _spawn,
        comparable_summary,
        resumed_after_kills,
        store_outcomes,
    )

    tmp = Path(tempfile.mkdtemp())
    try:
        unbroken, resumed = tmp / "a" / "unbroken", tmp / "b" / "resumed"
        unbroken.parent.mkdir()
        resumed.parent.mkdir()
        whole = _spawn(unbroken)
        try:
            resumed_after_kills(resumed)
        finally:
            _finish(whole)
        a, b = comparable_summary(unbroken), comparable_summary(resumed)
        x, y = store_outcomes(unbroken), store_outcomes(resumed)
        return {
            "shops": SHOPS,
            "kills": len(KILLS),
            "summary_items": len(a),
            "summary_items_differing": sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)),
            "cases": len(x["cases"]),
            "claims": len(x["claims"]),
            "events": len(x["events"]),
            "rows_differing": sum(len(set(x[k]) ^ set(y[k])) for k in x),
            "claims_unbroken_resumed": (
                a["step2_compensate"]["claims_by_status"],
                b["step2_compensate"]["claims_by_status"],
            ),
            "closed_unbroken_resumed": (a["step1_close"]["shops_closed"], b["step1_close"]["shops_closed"]),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def print_resume_figures() -> int:
    """Prints the resumed-crackdown figures; returns the number of differences (summary items + rows)."""
    t0 = time.perf_counter()
    r = resume_figures()
    differing = r["summary_items_differing"]
    assert isinstance(differing, list)
    print(
        f"crackdown resumed after {r['kills']} SIGKILLs ({r['shops']} shops) vs unbroken, same seed: summary items "
        f"differing {len(differing)} of {r['summary_items']} {differing or ''}; store rows differing "
        f"{r['rows_differing']} (cases {r['cases']}, claims {r['claims']}, case events {r['events']}); shops closed "
        f"{r['closed_unbroken_resumed']}; claims by status {r['claims_unbroken_resumed']} "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    return len(differing) + int(r["rows_differing"])  # type: ignore[call-overload]


def pytest_figures(paths: list[str]) -> tuple[dict[str, int], str]:
    """Runs the test files ``paths``: (scenarios, survived, failed, skipped) and the first skip reason."""
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-m", "pytest", *paths, "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
    ).stdout
    counts = {w: int(n) for n, w in re.findall(r"(\d+) (passed|failed|skipped|error)", out)}
    skipped = re.findall(r"SKIPPED \[\d+\] [^:]+:\d+: (.*)", out)
    figures = {
        "scenarios": sum(counts.values()),
        "survived": counts.get("passed", 0),
        "failed": counts.get("failed", 0) + counts.get("error", 0),
        "skipped": counts.get("skipped", 0),
    }
    return figures, (skipped[0] if skipped else "")


def print_fault_figures(kills: int) -> int:
    """Prints the fault figures; returns the data lost (messages lost or filed twice, failed scenarios)."""
    t0 = time.perf_counter()
    kr = kill_rerun_figures(kills, seed=kills)
    print(
        f"kill and rerun: publishing killed before its commit {kr['publish_kills']}x "
        f"(messages left by it: {kr['publish_half_written']}); delivery SIGKILLed {kr['delivery_kills']}x "
        f"over {kr['messages']} messages: {kr['raw_sends']} raw sends, {kr['resent']} re-sent "
        f"(at most {kr['max_resent_per_message']} per message), filed twice after dedup {kr['filed_twice']}, "
        f"lost {kr['lost']}, left undelivered {kr['undelivered']} ({time.perf_counter() - t0:.0f} s)"
    )
    t0 = time.perf_counter()
    df, skip_reason = disk_full_figures()
    print(
        f"disk full (real tmpfs filled under each writer): {df['scenarios']} scenarios, {df['survived']} survived "
        f"(clear error, nothing truncated, store intact), {df['failed']} failed, {df['skipped']} skipped"
        + (f" ({skip_reason})" if skip_reason else "")
        + f" ({time.perf_counter() - t0:.0f} s)"
    )
    t0 = time.perf_counter()
    edges, skip_reason = pytest_figures(EDGE_SUITES)
    print(
        f"issue 23 edges (ids and NUL at the edge, read-only database output, sessions, strict bodies, forwarded "
        f"headers, readyz and outage pages, CLI inputs, retention): {edges['scenarios']} scenarios, "
        f"{edges['survived']} held, {edges['failed']} failed, {edges['skipped']} skipped"
        + (f" ({skip_reason})" if skip_reason else "")
        + f" ({time.perf_counter() - t0:.0f} s)"
    )
    resumed = print_resume_figures()
    return (
        kr["lost"]
        + kr["filed_twice"]
        + kr["undelivered"]
        + kr["publish_half_written"]
        + df["failed"]
        + edges["failed"]
        + resumed
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, default=None)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="10 s of load")
    ap.add_argument("--kills", type=int, default=12, help="delivery processes SIGKILLed in the kill-and-rerun fault")
    ap.add_argument(
        "--faults-only", action="store_true", help="only the faults: kill and rerun, disk full, issue 23 edges"
    )
    ap.add_argument(
        "--resume-only",
        action="store_true",
        help="only the resumed crackdown against an unbroken one, and the folder checks (missing manifest, CSV)",
    )
    args = ap.parse_args()
    seconds = 10 if args.quick else args.seconds
    if args.resume_only:
        t0 = time.perf_counter()
        folder, _skip = pytest_figures(["tests/reliability/test_snapshot_and_csv.py"])
        print(
            f"marketplace folder checks (no manifest on every command, CSV refused early or supported): "
            f"{folder['scenarios']} scenarios, {folder['survived']} held, {folder['failed']} failed, "
            f"{folder['skipped']} skipped ({time.perf_counter() - t0:.0f} s)"
        )
        print(f"differences: {print_resume_figures() + folder['failed']}")
        return
    if args.faults_only:
        print(f"data lost: {print_fault_figures(args.kills)}")
        return

    from core.db import make_engine
    from core.settings import Settings
    from dajia.crackdown import Crackdown, CrackdownConfig, RunFolder, run_settings
    from dajia.db import migrate
    from serving.auth import ApiKeyStore
    from tests.reliability.conftest import SEED, SHOPS, start_server

    root = args.run or Path(tempfile.mkdtemp()) / "run"
    settings = run_settings(Settings(), RunFolder(root))
    if args.run is None:
        Crackdown(settings, RunFolder(root), CrackdownConfig(shops=SHOPS, seed=SEED)).run()
    settings = settings.model_copy(update={"public_rate_per_minute": 0.0})
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    store = ApiKeyStore(engine)
    keys = {r: store.create(r, f"bench {r}")[1] for r in ("scorer", "reviewer", "admin")}
    engine.dispose()
    db = settings.resolved_database_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        case_id, shop = conn.execute("select case_id, shop_id from cases order by case_id limit 1").fetchone()

    t0 = time.perf_counter()
    files_tried, files_clean = bad_file_figures()
    server = start_server(settings, root / "data", keys)
    try:
        req_tried, req_clean, unchanged = bad_request_figures(server.base_url, keys, shop, case_id, db)
        with sqlite3.connect(db) as conn:
            logged_before = conn.execute("select count(*) from serving_predictions").fetchone()[0]
        load = wrk_run(server.base_url, keys, shop, seconds, args.connections)
        time.sleep(1)
        with sqlite3.connect(db) as conn:
            logged = conn.execute("select count(*) from serving_predictions").fetchone()[0] - logged_before
    finally:
        server.stop()
    scored = round(load["requests"] * 3 / 4)
    print(f"bad marketplace inputs: {files_tried} tried, {files_clean} rejected naming table and column")
    print(f"bad API requests: {req_tried} tried, {req_clean} clean 4xx, database unchanged: {unchanged}")
    print(
        f"load ({seconds} s, {args.connections} connections, 3 scores : 1 case list): {load['requests']:.0f} requests, "
        f"{load['rps']:.0f}/s, errors {load['errors']:.0f}, p50 {load['p50_ms']:.2f} ms, p99 {load['p99_ms']:.2f} ms"
    )
    print(f"prediction rows logged during load: {logged} (~{scored} scoring requests sent; all answered are logged)")
    lost = print_fault_figures(args.kills)
    print(f"data lost: {lost}")
    print(f"wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
