"""A disk that fills up while dajia writes: a clear error, nothing corrupted.

Each test mounts a small tmpfs of its own (``mount -t tmpfs -o size=…``, unmounted afterwards) and
fills it for real: the marketplace generator and its table writer, the sanction store (SQLite) under
the CLI, the service functions and the API, the crackdown's state.json and its outbox mailbox.
Mounting needs root; without it the tests skip with the reason, except under CI=true where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core.errors import DataContractError, DiskFull, disk_full
from core.settings import Settings
from dajia.crackdown import CrackdownConfig, RunFolder
from dajia.db import open_store
from marketplace.io import TableWriter, write_table
from marketplace.loader import load_marketplace
from sanctions.outbox import FileMailbox, deliver
from sanctions.routing import route_scored
from sanctions.scored import ScoredShop
from sanctions.storefront import import_marketplace
from tests.sanctions.conftest import SNAPSHOT, build_marketplace, shop_row, sqlite_template  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true requires mounting a tmpfs: {reason}")
    pytest.skip(reason)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``small_disk("2m")`` mounts a tmpfs of that size and returns its folder (unmounted at teardown)."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        if shutil.which("mount") is None or shutil.which("umount") is None:
            _unavailable("no mount/umount command on this machine")
        if os.geteuid() != 0:
            _unavailable("mounting a tmpfs needs root")
        point = tmp_path / f"disk-{len(mounted)}"
        point.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True)
        if r.returncode != 0:
            _unavailable(f"mount -t tmpfs refused: {r.stderr.decode(errors='replace').strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        r = subprocess.run(["umount", str(point)], capture_output=True)
        if r.returncode != 0:  # something still holds a file open: detach it anyway
            subprocess.run(["umount", "-l", str(point)], check=True)


def fill(folder: Path) -> Path:
    """Fill the disk holding ``folder`` to the last byte; delete the returned file to free it."""
    filler = folder / f"filler-{uuid.uuid4().hex[:6]}"
    with filler.open("wb", buffering=0) as fh:
        block = b"\0" * 65536
        while True:
            try:
                fh.write(block)
            except OSError:
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
    assert shutil.disk_usage(folder).free < 4096
    return filler


def _dajia(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dajia.cli", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_clear_line(stderr: str, *words: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    for word in words:
        assert word in lines[0], lines[0]


# -- (a) the marketplace on a disk that fills up ---------------------------------------------------
def test_generate_on_a_full_disk_is_one_clear_error_and_leaves_no_partial_table(
    small_disk: Callable[[str], Path],
) -> None:
    out = small_disk("1m") / "marketplace"  # 2,000 shops take ~1.6 MB
    r = _dajia("generate", "--out", str(out), "--shops", "2000")
    assert r.returncode == 2, r.stderr[-3000:]
    _one_clear_line(r.stderr, "no space left on device", str(out / ""))
    left = sorted(p.name for p in out.iterdir())
    assert left and all(name.endswith(".parquet") for name in left), left  # no temporary, no manifest
    for name in left:  # every file under a real name is whole: its footer reads and every row loads
        table = pq.read_table(out / name)
        assert table.num_rows == pq.ParquetFile(out / name).metadata.num_rows
    with pytest.raises(DataContractError, match=r"file missing|has no manifest\.json"):
        load_marketplace(out)


def test_a_table_rewritten_on_a_full_disk_keeps_its_previous_version(small_disk: Callable[[str], Path]) -> None:
    disk = small_disk("512k")
    shops = build_marketplace([shop_row(f"S{i:04d}") for i in range(50)]).shops
    path = write_table(shops, disk, "shops")
    before = pq.read_table(path)
    filler = fill(disk)
    big = build_marketplace([shop_row(f"S{i:05d}") for i in range(5000)]).shops
    with (
        pytest.raises(DiskFull, match=re.escape(f"no space left on device writing {path}")),
        TableWriter(disk, "shops") as writer,
    ):
        for _ in range(20):
            writer.write(big)
    assert pq.read_table(path).equals(before), "the previous table was damaged"
    assert sorted(p.name for p in disk.iterdir()) == sorted(["shops.parquet", filler.name])  # no temporary
    filler.unlink()


# -- (b) the sanction store (SQLite) on a full disk ------------------------------------------------
def _digest(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")]
        return {t: conn.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables}


def _scores(path: Path, shops: range) -> Path:
    rows = [
        {
            "shop_id": f"S{i:04d}",
            "score": 0.9,
            "tier": "suspected",
            "model_name": "m",
            "model_version": "1",
            "suspected_threshold": 0.8,
        }
        for i in shops
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def store_on_small_disk(
    small_disk: Callable[[str], Path],
    sqlite_template: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Path, Settings, dict[str, str]]]:
    """A migrated SQLite store on a 16 MB disk: 300 shops, 60 cases open, API keys for every role."""
    from core.db import make_engine
    from dajia.db import migrate
    from serving.auth import ApiKeyStore

    for var in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "DASK_SCHEDULER_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    db = small_disk("16m") / "dajia.db"
    shutil.copyfile(sqlite_template, db)
    url = f"sqlite:///{db}"
    engine = open_store(url)
    with Session(engine) as s:
        import_marketplace(s, build_marketplace([shop_row(f"S{i:04d}") for i in range(300)], listings_per_shop=1))
        route_scored(s, [ScoredShop(f"S{i:04d}", 0.9, "suspected", "m", "1", [], 0.8) for i in range(60)])
    engine.dispose()
    serving = make_engine(url)
    migrate(serving)
    store = ApiKeyStore(serving)
    keys = {role: store.create(role, f"disk-full {role}")[1] for role in ("scorer", "reviewer", "admin")}
    serving.dispose()
    settings = Settings(home=tmp_path, database_url=url, public_rate_per_minute=0.0)
    yield db, settings, keys


def test_the_sanction_store_on_a_full_disk_fails_clearly_and_keeps_what_it_holds(
    store_on_small_disk: tuple[Path, Settings, dict[str, str]], tmp_path: Path
) -> None:
    from tests.reliability.conftest import start_server

    db, settings, keys = store_on_small_disk
    server = start_server(settings, None, keys, wait_model=False)  # no model: the case endpoints suffice
    try:
        reviewer = server.client("reviewer")
        assert reviewer.get("/v1/cases?limit=5").status_code == 200  # the API's connections are open
        with sqlite3.connect(db) as conn:
            assert conn.execute("pragma wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # no WAL room left to reuse
        before = _digest(db)
        filler = fill(db.parent)

        # the API: a decision is a 503 naming the full disk (its transaction rolled back), never a 500
        r = reviewer.post("/v1/cases/1/decisions", json={"action": "ban", "reason": "suspected counterfeits"})
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "DatabaseFull" and "no space left on device" in r.json()["message"]
        assert r.headers["Retry-After"]

        # the service functions: routing raises, recognisably a full disk
        engine = open_store(settings.resolved_database_url)
        try:
            with Session(engine) as s, pytest.raises(OperationalError) as caught:
                route_scored(s, [ScoredShop(f"S{i:04d}", 0.9, "suspected", "m", "1", [], 0.8) for i in range(60, 120)])
            assert disk_full(caught.value) is not None, caught.value
        finally:
            engine.dispose()

        # the CLI: one line, exit 2
        scores = _scores(tmp_path / "scores.csv", range(60, 120))
        r2 = _dajia("cases", "route", "--scores", str(scores), env={"DATABASE_URL": settings.resolved_database_url})
        assert r2.returncode == 2, r2.stderr[-3000:]
        _one_clear_line(r2.stderr, "no space left on device", "SQLite database")

        filler.unlink()
        with sqlite3.connect(db) as conn:
            assert conn.execute("pragma integrity_check").fetchall() == [("ok",)]
        assert _digest(db) == before, "a failed write changed the store"

        # space is back: the same decision and routing now go through
        r = reviewer.post("/v1/cases/1/decisions", json={"action": "ban", "reason": "suspected counterfeits"})
        assert r.status_code == 200, r.text
    finally:
        server.stop()
    r2 = _dajia(
        "cases", "route", "--scores", str(scores), "--json", env={"DATABASE_URL": settings.resolved_database_url}
    )
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert json.loads(r2.stdout)["opened"] == 60
    with sqlite3.connect(db) as conn:
        assert conn.execute("pragma integrity_check").fetchall() == [("ok",)]


# -- (c) the crackdown's run folder on a full disk -------------------------------------------------
def test_state_json_is_never_left_truncated(small_disk: Callable[[str], Path]) -> None:
    folder = RunFolder(small_disk("256k") / "run")
    state = folder.claim(CrackdownConfig(shops=100, seed=1))
    saved = folder.state_path.read_bytes()
    filler = fill(folder.root.parent)
    state["done"]["generate"] = {"counts": {f"table{i}": i for i in range(2_000)}}  # ~60 kB: more than is free
    with pytest.raises(DiskFull, match=r"no space left on device writing .*/state\.json"):
        folder.save_state(state)
    assert folder.state_path.read_bytes() == saved, "state.json changed"
    assert sorted(p.name for p in folder.root.iterdir()) == ["state.json"], "a temporary was left behind"
    assert folder.load_state()["done"] == {}
    filler.unlink()
    folder.save_state(state)  # space is back
    assert folder.load_state()["done"]["generate"]["counts"]["table1999"] == 1_999


def test_outbox_delivered_to_a_full_disk_stays_pending_and_is_filed_once_later(
    small_disk: Callable[[str], Path],
    sqlite_template: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    db = tmp_path / "dajia.db"  # the store has room; the run folder's published/ does not
    shutil.copyfile(sqlite_template, db)
    engine = open_store(f"sqlite:///{db}")
    with Session(engine) as s:
        import_marketplace(s, build_marketplace([shop_row(f"S{i:04d}") for i in range(100)], listings_per_shop=1))
        route_scored(s, [ScoredShop(f"S{i:04d}", 0.9, "suspected", "m", "1", [], 0.8) for i in range(100)])
    published = small_disk("64k") / "published"
    mailbox = FileMailbox(published)
    with Session(engine) as s:
        assert deliver(s, mailbox, limit=10) == 10
    filler = fill(published)
    with Session(engine) as s, pytest.raises(DiskFull, match="outbox-"):
        while deliver(s, mailbox, limit=1000):
            pass
    mailbox.close()
    lines = [ln for p in published.glob("outbox-*.jsonl") for ln in p.read_text().splitlines()]
    assert all(json.loads(ln) for ln in lines)  # no torn line
    with sqlite3.connect(db) as conn:
        delivered = conn.execute("select count(*) from outbox where status = 'delivered'").fetchone()[0]
        total = conn.execute("select count(*) from outbox").fetchone()[0]
    assert delivered == len(lines) < total  # exactly what was filed is marked; the rest waits
    filler.unlink()
    with FileMailbox(published) as again, Session(engine) as s:
        while deliver(s, again, limit=1000):
            pass
    keys = [json.loads(ln)["dedupe_key"] for p in published.glob("outbox-*.jsonl") for ln in p.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == total
    engine.dispose()
