"""The service's database has one Alembic history (``dajia/migrations``): one ``upgrade head`` creates
every table (workflow, serving, console) on SQLite and PostgreSQL, and a database whose serving and
console tables were made by the ``create_all`` of earlier versions upgrades in place, rows kept."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core.db import make_engine
from dajia.db import adopt_keys, migrate, service_metadata
from serving.auth import ApiKeyStore
from serving.console.db import console_settings, findings
from serving.db import api_keys, predictions

ROOT = Path(__file__).resolve().parents[2]
SERVICE_TABLES = (
    "serving_api_keys",
    "serving_predictions",
    "console_settings",
    "console_findings",
    "console_sessions",
)


def _head() -> str:
    """The head revision of the shipped history (whatever revisions branches add to it)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config(str(ROOT / "dajia" / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "dajia" / "migrations"))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _head() -> str:
    """The newest revision of the application's migrations (other owners chain theirs after 0002)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config(str(ROOT / "dajia" / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "dajia" / "migrations"))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def _version(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _alembic(url: str, *command: str) -> None:
    """The documented command line, in its own process."""
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "dajia/alembic.ini", "-x", f"url={url}", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_one_upgrade_head_creates_every_table(url: str) -> None:
    _alembic(url, "upgrade", "head")
    engine = sa.create_engine(url)
    try:
        assert set(service_metadata().tables) >= set(SERVICE_TABLES)
        assert set(sa.inspect(engine).get_table_names()) >= set(service_metadata().tables)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), service_metadata()) == []
        assert _version(engine) == _head()
    finally:
        engine.dispose()


def _legacy_tables(engine: sa.Engine) -> None:
    """The four tables as earlier versions made them: ``create_all`` on a plain metadata."""
    legacy = sa.MetaData()
    for table in (predictions, console_settings, findings):
        table.to_metadata(legacy)
    sa.Table(  # as issue 17 left it: no person
        "serving_api_keys",
        legacy,
        *[
            sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
            for c in api_keys.c
            if c.name != "person_id"
        ],
    )
    legacy.create_all(engine)


@pytest.mark.parametrize("workflow_migrated", [False, True], ids=["serving tables only", "store at 0001"])
def test_a_database_made_by_create_all_upgrades_in_place(url: str, workflow_migrated: bool) -> None:
    if workflow_migrated:
        migrate(url, "0001")  # the sanction store was opened by an earlier version
    engine = make_engine(url)
    try:
        _legacy_tables(engine)
        secret = "dajia_0123456789abcdef_made-before"
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO serving_api_keys (key_id, name, role, secret_sha256, created_at) "
                    "VALUES ('0123456789abcdef', 'made before the migration', 'scorer', :d, :t)"
                ),
                {"d": hashlib.sha256(secret.encode()).hexdigest(), "t": datetime(2026, 1, 1)},
            )
        key_id = "0123456789abcdef"
        row = {
            "logged_at": datetime(2026, 1, 2, 3, 4, 5),
            "request_id": "r1",
            "key_id": key_id,
            "shop_id": "S1",
            "model_name": "m",
            "model_version": "1",
            "feature_digest": "d" * 32,
            "score": 0.5,
            "tier": "watch",
            "reasons": ["a reason"],
            "shadow": False,
        }
        with engine.begin() as conn:
            conn.execute(predictions.insert(), [row])
            conn.execute(console_settings.insert().values(name="session_secret", value="kept"))
        assert _version(engine) == ("0001" if workflow_migrated else None)

        migrate(engine)  # what the service and `dajia keys` run at start

        assert _version(engine) == _head()
        assert set(sa.inspect(engine).get_table_names()) >= set(service_metadata().tables)
        key = ApiKeyStore(engine).authenticate(secret)
        assert key is not None and (key.key_id, key.person_id) == (key_id, None)
        # issue 18: the key becomes a person of its own (what ``open_store`` runs after migrating), audited
        assert adopt_keys(engine) == [key.key_id]
        adopted = ApiKeyStore(engine).authenticate(secret)
        assert adopted is not None and adopted.person_id == f"api-key:{key.key_id}"
        assert adopted.person_name == "made before the migration"
        with engine.connect() as conn:
            kept = conn.execute(sa.select(predictions)).mappings().one()
            assert {k: kept[k] for k in row} == row
            assert conn.execute(sa.select(console_settings.c.value)).scalar_one() == "kept"
        migrate(engine)  # again: nothing to do
        assert _version(engine) == _head()
    finally:
        engine.dispose()


def test_downgrade_removes_only_the_service_tables(url: str) -> None:
    migrate(url)
    engine = sa.create_engine(url)
    try:
        _alembic(url, "downgrade", "0001")
        names = set(sa.inspect(engine).get_table_names())
        assert not names & set(SERVICE_TABLES)
        assert {"cases", "audit_log", "shops"} <= names
        migrate(url)
        assert set(sa.inspect(engine).get_table_names()) >= set(SERVICE_TABLES)
    finally:
        engine.dispose()
