"""The sanction commands end to end through ``dajia``'s own entry point (SQLite under DAJIA_HOME)."""

from __future__ import annotations

import getpass
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dajia.cli import main
from marketplace.io import write_manifest, write_table
from tests.sanctions.conftest import SNAPSHOT, build_marketplace, shop_row


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def fail(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 2
    return capsys.readouterr().err


def test_the_four_steps_from_the_command_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    orders = [("S1", "S1-L0", "B1", 80.0, SNAPSHOT - timedelta(days=2))]
    mp = build_marketplace([shop_row("S1"), shop_row("S2", "shoes"), shop_row("S3")], orders=orders)
    data = home / "market"
    for name in mp.table_names():
        write_table(mp.table(name), data, name)
    write_manifest(data, mp.snapshot_at)
    assert run(capsys, "cases", "import", "--data", str(data))["shops_added"] == 3

    scores = home / "scores.csv"
    pd.DataFrame(
        [
            {"shop_id": s, "score": sc, "tier": t, "model_name": "m", "model_version": "2", "suspected_threshold": 0.8}
            for s, sc, t in [("S1", 0.95, "suspected"), ("S2", 0.91, "suspected"), ("S3", 0.2, "low")]
        ]
    ).to_csv(scores, index=False)
    routed = run(capsys, "cases", "route", "--scores", str(scores))
    assert (routed["opened"], routed["below_tier"]) == (2, 1)
    listed = run(capsys, "cases", "list", "--status", "open")["cases"]
    ids = {c["shop_id"]: c["case_id"] for c in listed}
    assert set(ids) == {"S1", "S2"}

    # the CLI acts as a registered person: an unknown --actor is refused (exit 2, one line), nothing written
    err = fail(capsys, "cases", "decide", str(ids["S2"]), "close", "--actor", "rev", "--reason", "x")
    assert "'rev' is not a registered person" in err and "dajia people add" in err and err.count("\n") == 1
    assert [c["case_id"] for c in run(capsys, "cases", "list", "--status", "open")["cases"]] == sorted(ids.values())
    for who, name, role in [("rev", "Rev Liu", "reviewer"), ("boss", "Boss Ma", "admin"), ("boss2", "Bo Two", "admin")]:
        run(capsys, "people", "add", "--id", who, "--name", name, "--role", role)
    err = fail(capsys, "cases", "decide", str(ids["S2"]), "close", "--actor", "boss", "--reason", "x")
    assert "'boss' is registered as admin, not reviewer" in err

    assert "proof" in fail(capsys, "cases", "decide", str(ids["S2"]), "close", "--actor", "rev", "--reason", "x")
    assert "unknown evidence kind" in fail(
        capsys, "cases", "decide", str(ids["S2"]), "close", "--actor", "rev", "--reason", "x", "--evidence", "hunch:1"
    )
    closed = run(
        capsys, "cases", "decide", str(ids["S2"]), "close", "--actor", "rev", "--reason", "test buy",
        "--evidence", "test_buy:TB-9:fake",
    )  # fmt: skip
    assert closed["shop_status"] == "closed"
    # the event names the person's actor id and the OS user who ran the command
    event = run(capsys, "cases", "show", str(ids["S2"]))["events"][-1]
    assert (event["actor_id"], event["via"]) == ("rev", f"cli:{getpass.getuser()}")
    banned = run(capsys, "cases", "decide", str(ids["S1"]), "ban", "--actor", "rev", "--reason", "suspected")
    assert banned["claims_created"] == 1 and banned["compensation_owed"] == 80.0 + 500.0
    claim = run(capsys, "cases", "show", str(ids["S1"]))["claims"][0]
    # a wrong --actor is told what is expected: the shopkeeper's id, and which (issue 22)
    err = fail(capsys, "cases", "pay", str(claim["claim_id"]), "--actor", "x", "--ref", "T")
    assert "shopkeeper's id" in err and "whose shopkeeper is keeper-S1" in err
    err = fail(capsys, "cases", "appeal", str(ids["S2"]), "--actor", "S2", "--reason", "genuine")
    assert "is the shop's id, not its keeper's" in err and "whose shopkeeper is keeper-S2" in err
    assert run(capsys, "cases", "show", str(ids["S2"]))["shopkeeper_id"] == "keeper-S2"
    run(capsys, "cases", "pay", str(claim["claim_id"]), "--actor", "keeper-S1", "--ref", "T-1")
    settled = run(capsys, "cases", "confirm", str(claim["claim_id"]), "--actor", "B1")
    assert (settled["case_status"], settled["shop_status"]) == ("settled", "active")

    camp = run(capsys, "campaign", "create", "--title", "Spring crackdown", "--actor", "rev")
    assert "admin" in fail(
        capsys, "campaign", "approve", str(camp["campaign_id"]), "--actor", "rev", "--role", "reviewer"
    )
    run(capsys, "campaign", "approve", str(camp["campaign_id"]), "--actor", "boss")
    pub = run(capsys, "campaign", "publish", str(camp["campaign_id"]), "--actor", "boss", "--key", "p1")
    assert pub["announcement"]["totals"]["shops_closed"] == 1 and pub["warnings_sent"] == 2
    html = home / "a.html"
    run(capsys, "campaign", "show", str(camp["campaign_id"]), "--html", str(html))
    assert "Spring crackdown" in html.read_text(encoding="utf-8")

    proposed = run(capsys, "disclosure", "propose", "--basis", "board decision 7", "--actor", "boss")
    assert proposed["proposed"] == [ids["S2"]] and run(capsys, "disclosure", "list")["closed_shops"] == []
    assert "four eyes" in fail(capsys, "disclosure", "approve", "--actor", "boss")
    approved = run(capsys, "disclosure", "approve", "--actor", "boss2")
    assert (approved["drafted_by"], approved["approved_by"]) == (["boss"], "boss2")
    public = run(capsys, "disclosure", "list")["closed_shops"]
    assert [e["shop_id"] for e in public] == ["S2"] and public[0]["personal"]["owner_phone"] == "***"
    assert run(capsys, "audit", "verify")["ok"] is True


def test_people_are_registered_explicitly_and_listed(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    added = run(capsys, "people", "add", "--id", "alice", "--name", "Alice Wang", "--role", "reviewer")
    assert added["actor_ids"] == {"reviewer": "alice"}
    again = run(capsys, "people", "add", "--id", "alice", "--name", "Alice Wang", "--role", "admin")
    assert again["actor_ids"] == {"reviewer": "alice", "admin": "alice:admin"}
    assert "people are reviewers or admins" in fail(
        capsys, "people", "add", "--id", "x", "--name", "X", "--role", "seller"
    )
    assert [p["name"] for p in run(capsys, "people", "list")["people"]] == ["Alice Wang"]
    assert run(capsys, "audit", "verify")["ok"] is True
