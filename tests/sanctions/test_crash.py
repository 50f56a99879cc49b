"""A routing sweep killed midway (SIGKILL, a real ``dajia cases route`` process) and run again
opens each case exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from core.settings import get_settings
from dajia.cli import main
from sanctions.audit import verify_chain
from sanctions.models import Case, CaseEvent, Listing
from sanctions.storefront import import_marketplace
from tests.sanctions.conftest import build_marketplace, shop_row

SHOPS = 300
CHUNK = 10


def _route(db_url: str, scores: Path, throttle: float) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": db_url}
    cmd = [sys.executable, "-m", "dajia.cli", "cases", "route", "--scores", str(scores), "--chunk", str(CHUNK)]
    cmd += ["--throttle", str(throttle), "--json"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _cases(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Case)).scalar_one())


@pytest.mark.slow
def test_a_sweep_killed_midway_and_rerun_opens_each_case_once(
    engine: Engine,
    session: Session,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import_marketplace(session, build_marketplace([shop_row(f"S{i:04d}") for i in range(SHOPS)], listings_per_shop=1))
    # two thirds suspected, one third low; a duplicate line for one shop
    rows = [
        {
            "shop_id": f"S{i:04d}",
            "score": 0.9 if i % 3 else 0.1,
            "tier": "suspected" if i % 3 else "low",
            "model_name": "dajia-shop-risk",
            "model_version": "4",
            "suspected_threshold": 0.8,
            "reasons": "many counterfeit complaints | price far below the brand's",
        }
        for i in range(SHOPS)
    ]
    rows.append(dict(rows[1]))
    scores = tmp_path / "scores.csv"
    pd.DataFrame(rows).to_csv(scores, index=False)
    expected = {r["shop_id"] for r in rows if r["tier"] == "suspected"}

    proc = _route(db_url, scores, throttle=0.05)
    deadline = time.monotonic() + 120
    while _cases(engine) < 3 * CHUNK:
        assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.communicate()}"
        assert time.monotonic() < deadline, "the sweep never started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    partial = _cases(engine)
    assert 0 < partial < len(expected), partial

    # the rerun: the same command, through the CLI's entry point in this process
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        code = main(["cases", "route", "--scores", str(scores), "--chunk", str(CHUNK), "--json"])
    finally:
        get_settings.cache_clear()
    out, err = capsys.readouterr()
    assert code == 0, err
    assert '"opened": ' + str(len(expected) - partial) in out
    # the already-open cases, plus the duplicate line of S0001 (opened in the first chunk)
    assert f'"unchanged": {partial + 1}' in out

    with Session(engine) as s:
        per_shop = Counter(s.execute(select(Case.shop_id)).scalars())
        assert set(per_shop) == expected
        assert set(per_shop.values()) == {1}
        opens = Counter(s.execute(select(CaseEvent.case_id).where(CaseEvent.action == "open")).scalars())
        assert len(opens) == len(expected) and set(opens.values()) == {1}
        frozen = set(s.execute(select(Listing.shop_id).where(Listing.frozen.is_(True))).scalars())
        assert frozen == expected
        assert verify_chain(s).ok
