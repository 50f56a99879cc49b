"""The main job end to end on a small marketplace, checked against the database and MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import DajiaError
from core.settings import Settings
from dajia.crackdown import STEPS, Crackdown, CrackdownConfig, RunFolder, run_settings
from dajia.db import open_store
from sanctions.audit import verify_chain
from sanctions.models import AuditEntry, Case, CaseEvent, Claim, Disclosure, Shop

SHOPS = 2500


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, RunFolder, dict[str, Any]]:
    root = tmp_path_factory.mktemp("crackdown") / "run"
    folder = RunFolder(root)
    with pytest.MonkeyPatch.context() as env:
        for var in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "DASK_SCHEDULER_ADDRESS"):
            env.delenv(var, raising=False)
        settings = run_settings(Settings(), folder)
    summary = Crackdown(settings, folder, CrackdownConfig(shops=SHOPS, seed=3)).run()
    return settings, folder, summary


def _db(settings: Settings) -> Session:
    return Session(open_store(settings.resolved_database_url))


def test_every_step_ran_and_reports_nonzero_counts(run: tuple[Settings, RunFolder, dict[str, Any]]) -> None:
    _, folder, summary = run
    state = json.loads(folder.state_path.read_text())
    assert list(state["done"]) == list(STEPS)
    assert summary["cases"]["opened_by_tier"].get("suspected", 0) > 0
    assert summary["step1_close"]["shops_closed"] > 0
    assert summary["step2_compensate"]["shops_banned"] > 0
    assert 0 < summary["step2_compensate"]["compensation_confirmed"] <= summary["step2_compensate"]["compensation_paid"]
    assert summary["step2_compensate"]["compensation_paid"] <= summary["step2_compensate"]["compensation_owed"]
    assert summary["step3_publicise"]["warnings_sent"] > 0
    assert summary["step4_disclose"]["entries_disclosed"] > 0
    assert summary["step4_disclose"]["fields_masked"] == 4 * summary["step4_disclose"]["entries_disclosed"]
    assert summary["appeals"]["appeals"] > 0
    assert summary["audit"]["ok"] is True
    # four eyes: two simulated admins; every approval and appeal decision by a second person
    eyes = summary["four_eyes"]
    assert eyes["all_by_a_second_person"] is True
    (camp,) = [c for c in eyes["campaigns"] if c["approved_by"]]  # the follow-up draft waits for a person
    assert [c["approved_by"] for c in eyes["campaigns"] if c is not camp] == [None]
    assert (camp["drafted_by"], camp["approved_by"]) == ("sim-admin", "sim-second-admin")
    assert eyes["disclosures"] == [
        {
            "drafted_by": "sim-admin",
            "approved_by": "sim-second-admin",
            "entries": summary["step4_disclose"]["entries_disclosed"] + summary["step4_disclose"]["entries_withdrawn"],
            "second_person": True,
        }
    ]
    # every appeal filed was decided by a second person, but the one the demo leaves pending for a person
    decided = summary["appeals"]["appeals"] - summary["queue"]["appeals_pending"]
    assert eyes["appeals_decided"] == decided > 0
    assert eyes["appeals_decided_by_the_original_decider"] == 0
    on_disk = json.loads((folder.root / "summary.json").read_text())
    assert on_disk["cases"] == summary["cases"]
    for name in ("announcement.html", "announcement.json", "closed-shops.json"):
        assert (folder.published / name).stat().st_size > 0


def test_issue17_effects_are_in_the_summary_and_published(run: tuple[Settings, RunFolder, dict[str, Any]]) -> None:
    _, folder, summary = run
    effects = summary["effects"]
    feed = (folder.published / "storefront-changes.jsonl").read_text().splitlines()
    assert effects["storefront_changes_published"] == len(feed) > 0
    assert effects["notices_by_kind"].get("notify_buyer/shop_closed", 0) > 0
    assert effects["notices_by_kind"].get("notify_buyer/compensation_owed", 0) > 0
    second = effects["second_routing_of_the_same_scores"]
    assert (second["opened"], second["rescored"], second["changes"], second["rows_changed"]) == (0, 0, 0, {})
    assert second["kept_decided"] > 0
    assert (folder.published / "corrections.json").exists()
    confirmed = summary["step2_compensate"]["claims_by_status"]["confirmed"]["claims"]
    settings, _, _ = run
    engine = open_store(settings.resolved_database_url)
    try:
        with Session(engine) as s:  # one clock: no case event precedes its case's opening
            early = s.execute(
                select(func.count())
                .select_from(CaseEvent)
                .join(Case, Case.case_id == CaseEvent.case_id)
                .where(CaseEvent.at < Case.opened_at)
            ).scalar_one()
    finally:
        engine.dispose()
    assert early == 0
    assert effects["claims_confirmed_through_links_by_simulated_consumers"] == confirmed > 0


def test_summary_matches_the_database(run: tuple[Settings, RunFolder, dict[str, Any]]) -> None:
    settings, folder, summary = run
    with _db(settings) as s:
        assert s.execute(select(func.count()).select_from(Case)).scalar_one() == summary["cases"]["total"]
        closed = s.execute(select(func.count()).select_from(Shop).where(Shop.status == "closed")).scalar_one()
        assert closed == summary["step1_close"]["shops_closed"]
        owed = s.execute(select(func.sum(Claim.amount_fen))).scalar_one() / 100
        assert owed == pytest.approx(summary["step2_compensate"]["compensation_owed"], abs=0.01)
        published = s.execute(
            select(func.count()).select_from(Disclosure).where(Disclosure.status == "published")
        ).scalar_one()
        assert published == summary["step4_disclose"]["entries_disclosed"]
        # every human decision of the demo is labelled simulated, in the case events and the audit log
        human = s.execute(select(CaseEvent).where(CaseEvent.role.in_(("reviewer", "admin", "seller", "consumer"))))
        events = list(human.scalars())
        assert events and all(e.simulated for e in events)
        audit_humans = s.execute(
            select(AuditEntry).where(AuditEntry.role.in_(("reviewer", "admin", "seller", "consumer")))
        ).scalars()
        assert all(a.simulated for a in audit_humans)
        assert verify_chain(s).ok
    # the disclosure file never shows a personal field in clear (default policy)
    entries = json.loads((folder.published / "closed-shops.json").read_text())
    assert entries and all(set(e["personal"].values()) == {"***"} for e in entries)


def test_the_simulated_people_are_registered_and_snapshots_hold_feature_values(
    run: tuple[Settings, RunFolder, dict[str, Any]],
) -> None:
    """Issue 18: the demo's reviewers and admins are registered people (two admins), every human decision
    names one of them; the snapshot at case open keeps the feature values the sweep scored."""
    from sanctions.models import ActorRow, EvidenceSnapshot, Person

    settings, _, _ = run
    with _db(settings) as s:
        people = dict(
            s.execute(select(ActorRow.actor_id, Person.name).join(Person, Person.person_id == ActorRow.person_id)).all()
        )
        admins = s.execute(select(ActorRow.actor_id).where(ActorRow.role == "admin", ActorRow.person_id.is_not(None)))
        assert set(admins.scalars()) == {"sim-admin", "sim-second-admin"}
        assert all(name.startswith("Simulated") for name in people.values())
        deciders = s.execute(select(CaseEvent.actor_id).where(CaseEvent.role.in_(("reviewer", "admin"))).distinct())
        assert set(deciders.scalars()) <= set(people)
        snap = (
            s.execute(
                select(EvidenceSnapshot)
                .join(Case, Case.case_id == EvidenceSnapshot.case_id)
                .where(Case.origin == "score")
                .limit(1)
            )
            .scalars()
            .one()
        )
        features = snap.content["score"]["features"]
        assert features and len(features) >= 10


def test_mlflow_holds_the_run_and_the_champion(run: tuple[Settings, RunFolder, dict[str, Any]]) -> None:
    settings, _, summary = run
    client = MlflowClient(tracking_uri=settings.resolved_tracking_uri, registry_uri=settings.resolved_tracking_uri)
    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    assert str(champion.version) == str(summary["model"]["version"])
    run_ = client.get_run(champion.run_id)
    assert run_.info.status == "FINISHED"
    assert any(k.startswith("test_model_") for k in run_.data.metrics)
    mlflow.set_tracking_uri(settings.resolved_tracking_uri)


def test_rerun_resumes_without_duplicates_and_refuses_other_parameters(
    run: tuple[Settings, RunFolder, dict[str, Any]],
) -> None:
    settings, folder, summary = run
    again = Crackdown(settings, folder, CrackdownConfig(shops=SHOPS, seed=3)).run()
    assert again["cases"] == summary["cases"]
    assert again["step2_compensate"]["compensation_owed"] == summary["step2_compensate"]["compensation_owed"]
    with pytest.raises(DajiaError, match="other parameters"):
        Crackdown(settings, folder, CrackdownConfig(shops=SHOPS + 1, seed=3))


def test_a_non_empty_foreign_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "something.txt").write_text("not a run")
    with pytest.raises(DajiaError, match="not empty"):
        RunFolder(tmp_path).claim(CrackdownConfig(shops=SHOPS))


def test_the_mlflow_ui_on_the_run_store_lists_the_run_and_the_champion(
    run: tuple[Settings, RunFolder, dict[str, Any]],
) -> None:
    """What the summary's `mlflow ui` command shows: a real MLflow UI server on the run's store."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    settings, folder, summary = run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow_bin), "ui", "--backend-store-uri", settings.resolved_tracking_uri]
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=folder.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "mlflow ui exited"
            assert time.monotonic() < deadline, "mlflow ui did not come up in 120 s"
            time.sleep(0.5)
        assert "<html" in httpx.get(base + "/", timeout=10).text.lower()
        model = httpx.get(
            f"{base}/api/2.0/mlflow/registered-models/get", params={"name": settings.model_name}, timeout=10
        ).json()["registered_model"]
        aliases = {a["alias"]: a["version"] for a in model.get("aliases", [])}
        assert aliases.get("champion") == str(summary["model"]["version"])
        champion_run = next(v["run_id"] for v in model["latest_versions"] if v["version"] == aliases["champion"])
        runs = httpx.post(
            f"{base}/api/2.0/mlflow/runs/search",
            json={"experiment_ids": [e["experiment_id"] for e in _experiments(base)]},
            timeout=10,
        ).json()["runs"]
        assert champion_run in {r["info"]["run_id"] for r in runs}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _experiments(base: str) -> list[dict[str, Any]]:
    import httpx

    return list(
        httpx.post(f"{base}/api/2.0/mlflow/experiments/search", json={"max_results": 100}, timeout=10).json()[
            "experiments"
        ]
    )


# -- what a person reads (issue 22) ---------------------------------------------------------------------


def _printed(render: Any, *args: Any) -> str:
    """What ``render`` prints on an 80-column terminal."""
    import io

    from rich.console import Console

    import dajia.commands.crackdown as cmd
    import dajia.output as output

    buffer = io.StringIO()
    narrow = Console(file=buffer, width=80, color_system=None)
    saved = output.console, cmd.console
    output.console = cmd.console = narrow
    try:
        render(*args)
    finally:
        output.console, cmd.console = saved
    return buffer.getvalue()


def test_the_demo_leaves_a_queue_and_the_summary_names_a_suspected_shop_with_an_open_case(
    run: tuple[Settings, RunFolder, dict[str, Any]],
) -> None:
    settings, _, summary = run
    queue = summary["queue"]
    assert queue["open_cases"] > 0 and queue["appeals_pending"] == 1 and queue["campaign_drafts"] == 1
    with _db(settings) as s:
        case = s.get(Case, queue["suspected_shop"]["case_id"])
        assert case is not None and case.status == "open" and case.tier == "suspected" and case.reasons
        assert case.shop_id == queue["suspected_shop"]["shop_id"]
        # the score cases (ban-evasion cases, opened by every closure, carry no score)
        open_scores = s.execute(select(Case.score).where(Case.status == "open", Case.origin == "score")).scalars().all()
        assert case.score == max(open_scores)
        decided = s.execute(select(Case.score).where(Case.origin == "score", Case.status != "open")).scalars().all()
        assert min(decided) >= max(open_scores)  # the reviewers worked riskiest first, then stopped


def test_the_summary_reads_as_words_in_80_columns(run: tuple[Settings, RunFolder, dict[str, Any]]) -> None:
    import re

    from dajia.commands.crackdown import _human

    _, folder, summary = run
    text = _printed(_human, summary)
    assert "{" not in text.split("next: the work left for you")[0], "no dict dumps"
    keyword = next(line for line in text.splitlines() if line.strip().startswith("keyword"))
    assert keyword.split()[5] == "-", f"keyword has no Brier: its values stay under their columns ({keyword})"
    assert re.search(r"routed\s*$", next(line for line in text.splitlines() if "PR-AUC" in line))
    assert not re.search(r"\b\d+\.000\b", text), "counts print as integers"
    owed = summary["step2_compensate"]["compensation_owed"]
    assert f"¥{owed:,.2f} owed" in " ".join(text.split())
    assert "is the champion: the registry's first version" in text and "passed_gate" not in text
    for line in text.splitlines():  # only commands and paths run past 80 columns: printed whole
        if len(line) > 80:
            command = line.startswith("  ") and not line.startswith("   ")
            path = line.split()[-1].startswith("/") and len(line) - len(line.split()[-1]) < 20
            assert command or path, f"wider than 80 columns: {line!r}"
    shop = summary["queue"]["suspected_shop"]["shop_id"]
    score = next(line for line in text.splitlines() if '"route": true' in line)
    assert shop in score and score.strip().startswith("curl -s -X POST")
    assert f"export DAJIA_HOME={folder.root}" in text


def test_the_hints_name_the_stores_in_use() -> None:
    """With PostgreSQL the serve hint carries DATABASE_URL (password hidden); with a tracking server
    there is no `mlflow ui` to run, only the server's address."""
    from dajia.summary import where_to_look

    settings = Settings(
        database_url="postgresql+psycopg://dajia:secret@db.example:5432/dajia",
        mlflow_tracking_uri="http://mlflow.example:5000",
    )
    where = where_to_look(settings, RunFolder(Path("/srv/runs/r1")))
    assert "DATABASE_URL='postgresql+psycopg://dajia:***@db.example:5432/dajia'" in where["serve"]
    assert "MLFLOW_TRACKING_URI=http://mlflow.example:5000" in where["serve"] and "secret" not in str(where)
    assert where["mlflow_ui"] is None and where["mlflow_server"] == "http://mlflow.example:5000"
    local = where_to_look(Settings(database_url="postgresql+psycopg://dajia@db:5432/dajia"), RunFolder(Path("/r")))
    assert "DATABASE_URL=postgresql+psycopg://dajia@db:5432/dajia" in local["env"]
    assert local["mlflow_ui"] is not None and "--backend-store-uri sqlite:///" in local["mlflow_ui"]


def test_the_crackdowns_decisions_label_the_next_training(
    run: tuple[Settings, RunFolder, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every decision of the demo lies before the snapshot; `dajia train --feedback` counts them apart as
    simulated and leaves them out, and with --feedback-include-simulated adds every one as a label."""
    from core.settings import get_settings
    from dajia.cli import main
    from dajia.feedback import read_feedback
    from marketplace.loader import read_snapshot_at

    settings, folder, _ = run
    engine = open_store(settings.resolved_database_url)
    labels = read_feedback(engine)
    engine.dispose()
    snapshot = pd.Timestamp(read_snapshot_at(folder.data))
    snapshot = snapshot.tz_convert(None) if snapshot.tzinfo is not None else snapshot
    assert len(labels) > 0 and bool(labels["simulated"].all())
    assert bool((labels["decided_at"] <= snapshot).all())
    # decisions, and appeal outcomes where an appeal was decided (the demo leaves its last appeal pending)
    assert "decision" in set(labels["source"]) and set(labels["source"]) <= {"decision", "appeal"}
    with pytest.MonkeyPatch.context() as env:
        for var in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "DASK_SCHEDULER_ADDRESS"):
            env.delenv(var, raising=False)
        env.setenv("DAJIA_HOME", str(folder.root))
        get_settings.cache_clear()
        try:
            assert main(["train", "--data", str(folder.data), "--feedback", "--no-register", "--json"]) == 0
            left_out = json.loads(capsys.readouterr().out)["feedback"]
            assert left_out["simulated"]["all"] == len(labels) and left_out["added"] == {"all": 0}
            args = ["train", "--data", str(folder.data), "--feedback", "--feedback-include-simulated", "--no-register"]
            assert main(args) == 0
        finally:
            get_settings.cache_clear()
    printed = capsys.readouterr().out
    print(printed)
    assert f"added: {len(labels)}" in printed
    assert "decided after the snapshot 0" in printed
    assert "labelled examples" in printed


def test_sweep_counts_case_ids_and_train_feedback_says_how_many_labels_it_added(
    run: tuple[Settings, RunFolder, dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Last in this file: it routes again and registers a second version."""
    import re

    from dajia.cli import main

    _, folder, _ = run
    monkeypatch.setenv("DAJIA_HOME", str(folder.root))
    from core.settings import get_settings

    get_settings.cache_clear()
    try:
        assert main(["sweep", "--data", str(folder.data), "--out", str(tmp_path / "s.parquet")]) == 0
        out = capsys.readouterr().out
        opened = re.search(r"cases: ([\d,]+) (?:\(([^)]*)\) )?opened", out)
        assert opened and len(out.splitlines()) <= 8, out
        n = int(opened[1].replace(",", ""))
        shown = [x for x in (opened[2] or "").split(", ") if x and x != "…"]
        assert len(shown) == min(n, 5) and (("…" in out) == (n > 5)), f"the first ids only: {out}"
        assert main(["train", "--data", str(folder.data), "--feedback"]) == 0
        out = capsys.readouterr()
        decisions = re.search(
            r"feedback: ([\d,]+) reviewer decisions read from the sanction store, ([\d,]+) added", out.out
        )
        assert decisions and int(decisions[1].replace(",", "")) > 0, out.out
        # the demo's decisions are the simulated people's: counted apart, and labels only when asked
        assert decisions[2] == "0" and "--feedback-include-simulated uses them" in " ".join(out.out.split())
        for noise in ("INFO mlflow", "CloudPickle", "Successfully registered model"):
            assert noise not in out.out + out.err
    finally:
        get_settings.cache_clear()


def test_every_suspected_shops_top_reason_cites_a_concrete_item(
    run: tuple[Settings, RunFolder, dict[str, Any]],
) -> None:
    """Issue 20's acceptance on this crackdown (2,500 shops); the 20,000-shop run is
    ``benchmarks/bench_crackdown_evidence.py`` (the same check, too slow for the suite)."""
    from tests.crackdown.evidence import crackdown_citations

    settings, folder, _ = run
    c = crackdown_citations(settings, folder)
    print(c.summary())
    assert c.suspected >= 50
    assert c.tier_mismatch == []  # the features rebuilt here are the ones the sweep scored
    assert c.uncited == [] and c.cited == c.suspected
    assert c.foreign_listings == []  # every cited listing is one of the shop's own


def test_the_sweep_logs_its_drift_once(run: tuple[Settings, RunFolder, dict[str, Any]]) -> None:
    """The crackdown's sweep appends one point to the drift history (a resumed run appends none)."""
    from serving.console.db import drift_history

    settings, folder, _ = run
    state = folder.load_state()
    with _db(settings) as s:
        every = s.execute(select(drift_history).order_by(drift_history.c.drift_id)).mappings().all()
    # the first point is the crackdown's (a later test's own `dajia sweep` at another as-of adds its own)
    rows = [r for r in every if r["as_of"] == every[0]["as_of"]]
    assert len(rows) == 1
    (row,) = rows
    assert row["mode"] == "local" and row["shops"] == state["done"]["sweep"]["shops"] >= SHOPS
    assert row["sample_now"] >= 300 and row["sample_ref"] >= 300
    assert row["score_psi"] >= 0 and len(row["feature_psi"]) > 10
    drift = state["done"]["sweep"]["drift"]
    assert drift["logged"] is True and drift["score_psi"] == pytest.approx(row["score_psi"], abs=1e-4)
