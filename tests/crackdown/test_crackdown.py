"""The main job end to end on a small marketplace, checked against the database and MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
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
