"""A crackdown SIGKILLed at several points and resumed each time ends with the results of an unbroken run
of the same seed: the same summary counts, the same cases, claims and case events in the store.

Before, the simulated people drew from one random stream per step, and a resumed step re-selected its
items from the store as it had become, so a resumed run ended consistent but different (issue 23: claims
904 vs 1,080, closed 122 vs 127). Now every draw is seeded by (seed, step, item) and each step's items are
kept in state.json when it first starts (``dajia.crackdown``).

The killed processes are real ``python -m tests.reliability.test_crackdown_resume`` children running the
crackdown on their own run folder. ``--hang FUNC:N`` makes the child stop right after the N-th call of a
workflow function the simulated people use (``sanctions.cases.FUNC``, committed) and write a marker file,
so each kill lands inside a step, part-way through its items, for sure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core import atomic

SHOPS = 600
SEED = 5
ROOT = Path(__file__).resolve().parents[2]
#: where each killed child stops: after the N-th call (in that process, replays of a resumed step
#: included) of the workflow function. In order: part-way through the reviewers' decisions, again
#: further on, inside the ban-evasion decisions, inside the sellers' payments, inside the appeals.
KILLS = ("decide:3", "decide:9", "decide:24", "record_payment:2", "appeal:1")


# -- the child ---------------------------------------------------------------------------------------
def child_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--hang", default="", help="FUNC:N: stop after the N-th call of sanctions.cases.FUNC")
    args = ap.parse_args(argv)
    if args.hang:
        _hang_after(*args.hang.split(":"), marker=args.out.parent / f"{args.out.name}.marker")
    from core.settings import get_settings
    from dajia.crackdown import Crackdown, CrackdownConfig, RunFolder, run_settings
    from dajia.output import quiet_third_party

    quiet_third_party(False)
    folder = RunFolder(args.out)
    summary = Crackdown(run_settings(get_settings(), folder), folder, CrackdownConfig(shops=SHOPS, seed=SEED)).run()
    print(json.dumps({"done": True, "cases": summary["cases"]["total"]}))


def _hang_after(func: str, n: str, marker: Path) -> None:
    from sanctions import cases

    real = getattr(cases, func)
    calls = 0

    def hanging(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        result = real(*args, **kwargs)  # committed
        calls += 1
        if calls == int(n):
            atomic.write_text(marker, f"{func}:{n}")  # tells the parent; appears whole
            time.sleep(600)  # killed here
        return result

    setattr(cases, func, hanging)


if __name__ == "__main__":
    child_main(sys.argv[1:])
    sys.exit(0)


# -- the parent --------------------------------------------------------------------------------------
def _env(tmp: Path) -> dict[str, str]:
    """The run's own stores (files in the run folder), whatever the test session points at."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "DAJIA_HOME")}
    env["DAJIA_HOME"] = str(tmp)
    return env


def _spawn(out: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "tests.reliability.test_crackdown_resume", "--out", str(out), *args]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=_env(out.parent), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 900) -> None:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"rc {proc.returncode}\n{out}\n{err[-4000:]}"


def _kill_at(out: Path, hang: str, timeout: float = 900) -> None:
    marker = out.parent / f"{out.name}.marker"
    proc = _spawn(out, "--hang", hang)
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if proc.poll() is not None:
                o, e = proc.communicate()
                raise AssertionError(f"the child ended before {hang}: rc {proc.returncode}\n{o}\n{e[-4000:]}")
            assert time.monotonic() < deadline, f"timed out waiting for {hang}"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=60)
    marker.unlink()


def comparable_summary(out: Path) -> dict[str, Any]:
    """summary.json without what differs by nature (folder, timings)."""

    def without(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: without(v) for k, v in value.items() if k not in ("seconds", "run_folder", "where_to_look")}
        return value

    return dict(without(json.loads((out / "summary.json").read_text(encoding="utf-8"))))


def store_outcomes(out: Path) -> dict[str, Any]:
    """Every case (by shop and origin), claim (by shop and buyer) and case event of the run's store, with
    what a person sees of them: status, tier, amounts, times, who acted."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from sanctions.models import Case, CaseEvent, Claim

    engine = create_engine(f"sqlite:///{out / 'dajia.db'}")
    try:
        with Session(engine) as s:
            cases = sorted(
                (str(r.shop_id), str(r.origin), str(r.status), str(r.tier), str(r.score))
                for r in s.execute(select(Case)).scalars()
            )
            claims = sorted(
                (r.shop_id, r.buyer_id, r.status, r.amount_fen, str(r.paid_at), str(r.confirmed_at), str(r.voided_at))
                for r in s.execute(select(Claim)).scalars()
            )
            events = sorted(
                (str(shop), str(e.action), str(e.old_status), str(e.new_status), str(e.actor_id), str(e.at))
                for e, shop in s.execute(select(CaseEvent, Case.shop_id).join(Case, Case.case_id == CaseEvent.case_id))
            )
    finally:
        engine.dispose()
    return {"cases": cases, "claims": claims, "events": events}


def resumed_after_kills(out: Path, kills: tuple[str, ...] = KILLS) -> None:
    """Run the crackdown into ``out``, SIGKILLed at each of ``kills`` in turn, then resumed to its end."""
    for hang in kills:
        _kill_at(out, hang)
    _finish(_spawn(out))


@pytest.mark.timeout(1800)
def test_a_crackdown_killed_and_resumed_ends_as_an_unbroken_run(tmp_path: Path) -> None:
    unbroken, resumed = tmp_path / "a" / "unbroken", tmp_path / "b" / "resumed"
    unbroken.parent.mkdir()
    resumed.parent.mkdir()
    whole = _spawn(unbroken)  # alongside the killed ones: they share nothing
    try:
        resumed_after_kills(resumed)
    finally:
        _finish(whole)
    a, b = comparable_summary(unbroken), comparable_summary(resumed)
    assert a["cases"]["total"] > 10 and a["step2_compensate"]["claims_by_status"], a  # a run with work to redo
    assert a["appeals"]["appeals"] > 0 and a["ban_evasion"]["cases_opened"] > 1, a  # every kill lands in its step
    assert b == a
    x, y = store_outcomes(unbroken), store_outcomes(resumed)
    for what in ("cases", "claims", "events"):
        assert y[what] == x[what], what
    state = json.loads((resumed / "state.json").read_text(encoding="utf-8"))
    assert set(state["plans"]) == {"decide", "compensate", "appeals", "evasion:detect", "evasion:decide"}
