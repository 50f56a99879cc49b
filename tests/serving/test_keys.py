"""API keys: only a digest is stored, roles are checked, revocation works, and the CLI prints the secret once."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.db import make_engine
from core.errors import DajiaError, NotFound
from dajia.cli import main
from dajia.db import migrate
from serving.auth import ApiKeyStore, Role
from serving.db import api_keys


def _store(tmp_path: Path) -> ApiKeyStore:
    engine = make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    migrate(engine)
    return ApiKeyStore(engine, cache_seconds=0.0)


def test_only_the_digest_is_stored(tmp_path: Path) -> None:
    store = _store(tmp_path)
    key, secret = store.create("reviewer", "alice")
    assert secret.startswith(f"dajia_{key.key_id}_") and len(secret) > 40
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(api_keys)).one()
    assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in [str(v) for v in row]
    found = store.authenticate(secret)
    assert found is not None and found.role is Role.reviewer and found.key_id == key.key_id
    assert store.authenticate(secret + "x") is None
    assert store.authenticate("") is None


def test_revoke_and_bad_input(tmp_path: Path) -> None:
    store = _store(tmp_path)
    key, secret = store.create("scorer", "gateway")
    assert store.authenticate(secret) is not None
    assert store.revoke(key.key_id).revoked_at is not None
    assert store.authenticate(secret) is None
    with pytest.raises(NotFound):
        store.revoke("nope")
    with pytest.raises(DajiaError, match="unknown role 'root'"):
        store.create("root", "x")
    with pytest.raises(DajiaError, match="1 to 200"):
        store.create("admin", "  ")


def test_cli_create_list_revoke(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a key is issued to a registered person; an unknown one is refused with one line
    assert main(["keys", "create", "--role", "admin", "--name", "ops", "--person", "olga"]) == 2
    err = capsys.readouterr().err
    assert "no person 'olga'" in err and err.count("\n") == 1
    assert main(["people", "add", "--id", "olga", "--name", "Olga Ops", "--role", "admin"]) == 0
    capsys.readouterr()
    assert main(["keys", "create", "--role", "admin", "--name", "ops", "--person", "olga", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["role"] == "admin" and created["secret"].startswith("dajia_")
    assert (created["person_id"], created["actor_id"]) == ("olga", "olga")
    assert main(["keys", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["keys"]
    assert [k["key_id"] for k in listed] == [created["key_id"]]
    assert listed[0]["person_name"] == "Olga Ops"
    assert "secret" not in listed[0]
    assert main(["keys", "revoke", created["key_id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["revoked_at"]
    assert main(["keys", "create", "--role", "boss", "--name", "x", "--person", "olga"]) == 2
    assert "unknown role" in capsys.readouterr().err
    assert main(["audit", "verify"]) == 0  # issuing and revoking are audited, the key's row bound
