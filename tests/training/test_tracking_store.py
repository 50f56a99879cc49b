"""Where a local MLflow store keeps its artifacts: beside its SQLite database, whichever folder the command
runs in (MLflow's own default, ``./mlruns`` under the working folder, scatters models across folders)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from core.settings import Settings, sqlite_file
from training.tracking import EXPERIMENT, setup_mlflow


@pytest.fixture
def restore_mlflow() -> Iterator[None]:
    """MLflow's process-wide store as it was (``set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI``)."""
    tracking = os.environ.get("MLFLOW_TRACKING_URI")
    registry = os.environ.get("MLFLOW_REGISTRY_URI")
    yield
    mlflow.set_tracking_uri(tracking)  # type: ignore[arg-type]  # None: back to unset
    mlflow.set_registry_uri(registry)  # type: ignore[arg-type]


def test_an_explicit_sqlite_store_keeps_artifacts_beside_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_mlflow: None
) -> None:
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    store = tmp_path / "store"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    settings = Settings(home=tmp_path / "home")
    assert settings.artifact_root == store / "artifacts"
    client = setup_mlflow(settings)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None and experiment.artifact_location == (store / "artifacts").as_uri()
    with mlflow.start_run():
        mlflow.log_text("kept", "note.txt")
    assert list((store / "artifacts").rglob("note.txt"))
    assert not (workdir / "mlruns").exists()


def test_the_default_store_and_a_server_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = Path("/srv/dajia")
    assert Settings(home=home).artifact_root == home / "mlruns" / "artifacts"
    for server in ("http://mlflow:5000", "postgresql://db/mlflow"):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
        assert Settings(home=home).artifact_root is None


def test_the_file_of_a_sqlite_url() -> None:
    assert sqlite_file("sqlite:////srv/dajia/dajia.db") == Path("/srv/dajia/dajia.db")
    assert sqlite_file("sqlite:///runs/dajia.db?timeout=5") == Path("runs/dajia.db")  # relative, options dropped
    for none in ("sqlite://", "sqlite:///:memory:", "postgresql://u@db/dajia", "mysql+pymysql://u@db/x"):
        assert sqlite_file(none) is None, none
