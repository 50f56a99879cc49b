"""Shared fixtures: real PostgreSQL when it runs (required under CI=true), temporary homes."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADMIN_URL = os.environ.get("DAJIA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_reason() -> str | None:
    """None when PostgreSQL answers, otherwise why not."""
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable: {type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    reason = _postgres_reason()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI=true requires PostgreSQL: {reason}")
        pytest.skip(reason)
    return POSTGRES_ADMIN_URL


@contextlib.contextmanager
def postgres_schema(admin_url: str, prefix: str = "t_") -> Iterator[str]:
    """A URL whose connections use a new, empty schema (``search_path``), dropped on exit."""
    import sqlalchemy as sa

    schema = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    sep = "&" if "?" in admin_url else "?"
    try:
        yield f"{admin_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop schema "{schema}" cascade'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty schema on the real PostgreSQL server, dropped afterwards."""
    with postgres_schema(postgres_admin_url) as url:
        yield url


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private dajia home (SQLite file, mlruns/) with no stray environment settings."""
    for var in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "DASK_SCHEDULER_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DAJIA_HOME", str(tmp_path))
    from core.settings import get_settings

    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


# The API's registry: defined here, once, so every folder that requests it (tests/serving, and the
# console's monitor test) gets the same session instance. A fixture imported into a test module becomes
# a second definition with a second session instance, and a second MLflow server in this process, which
# MLflow's module-level store cache answers from the first one's store (see ``Registry.start``).


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A generated 800-shop marketplace, two registered versions, an MLflow REST server (tests/serving/conftest.py)."""
    from tests.serving.conftest import open_registry

    yield from open_registry(tmp_path_factory)


@pytest.fixture(scope="session")
def keys(registry: Any) -> dict[str, str]:
    """One API key per role in the registry home's database."""
    from tests.serving.conftest import create_keys, home_settings

    return create_keys(home_settings(registry.home).resolved_database_url)
