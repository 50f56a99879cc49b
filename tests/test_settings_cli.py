from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings
from dajia.cli import main


def test_defaults_are_embedded(home: Path) -> None:
    s = Settings()
    assert s.resolved_database_url == f"sqlite:///{(home / 'dajia.db').resolve()}"
    assert s.resolved_tracking_uri.startswith("sqlite:///") and "mlruns" in s.resolved_tracking_uri


def test_environment_overrides(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    s = Settings()
    assert s.resolved_database_url == "postgresql+psycopg://u@h/db"
    assert s.resolved_tracking_uri == "http://127.0.0.1:5000"


def test_bad_setting_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAJIA_COMPENSATION_MULTIPLIER", "-1")
    with pytest.raises(Exception, match="compensation_multiplier"):
        Settings()


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
