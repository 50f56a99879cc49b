"""A database that refuses writes (a read-only SQLite file, a read-only PostgreSQL transaction): the
commands that meet it — ``dajia serve`` starting up over a marketplace it must import, ``dajia cases
import`` — end with exit code 2 and one line, no traceback, and print none of the shopkeepers' personal
values they were writing (issue 23: both printed phone, e-mail, address, ID and bank hashes)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import postgres_schema
from tests.serving.conftest import dajia_cmd, free_port

PERSONAL = (
    "owner_phone",
    "owner_email",
    "owner_address",
    "id_number_hash",
    "bank_account_hash",
    "business_phone",
    "business_email",
    "device_id",
)


def _run(args: list[str], url: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "DAJIA_HOME": str(home), "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    return subprocess.run([*dajia_cmd(), *args], env=env, capture_output=True, text=True, timeout=300)


def _check(done: subprocess.CompletedProcess[str], secrets: list[str], what: str) -> None:
    out = done.stdout + done.stderr
    assert done.returncode == 2, f"{what}: exit {done.returncode}\n{out[-3000:]}"
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), f"{what}: {lines[:20]}"
    assert "Traceback" not in out and "read" in lines[0].lower(), lines[0]
    leaked = [s for s in secrets if s in out]
    assert not leaked, f"{what} printed personal values: {leaked[:5]}"


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_read_only_database_failures_print_one_line_and_no_personal_value(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    for part in ("old", "new"):
        subprocess.run([*dajia_cmd(), "generate", "--shops", "40", "--seed", str(30 + len(part)), "--out",
                        str(tmp_path / part)], check=True, capture_output=True, timeout=300)  # fmt: skip
    shops = pd.read_parquet(tmp_path / "new" / "shops.parquet")
    secrets = sorted({str(v) for c in PERSONAL for v in shops[c].tolist() if len(str(v)) >= 6})
    assert len(secrets) > 100

    def scenario(url: str, read_only: str) -> None:
        done = _run(["cases", "import", "--data", str(tmp_path / "old")], url, tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        _check(_run(["cases", "import", "--data", str(tmp_path / "new")], read_only, tmp_path), secrets, "import")
        serve = ["serve", "--data", str(tmp_path / "new"), "--port", str(free_port()), "--poll-seconds", "3600"]
        _check(_run(serve, read_only, tmp_path), secrets, "serve")

    if kind == "sqlite":
        db = tmp_path / "dajia.db"
        scenario(f"sqlite:///{db}", f"sqlite:///file:{db}?mode=ro&uri=true")
        return
    with postgres_schema(request.getfixturevalue("postgres_admin_url"), prefix="ro_") as url:
        scenario(url, f"{url}%20-cdefault_transaction_read_only%3Don")
