"""``dajia validate``: row counts for a good folder; exit code 2 and one readable line for a bad one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dajia.cli import main
from tests.test_contract import SNAPSHOT, valid_frames, write_csv_folder, write_parquet_folder


def test_validate_prints_counts_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_parquet_folder(valid_frames(), tmp_path / "mp")
    assert main(["validate", "--data", str(folder), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] is True
    assert result["snapshot_at"] == SNAPSHOT.isoformat()
    assert result["rows"]["orders"] == 4 and result["rows"]["listing_edits"] == 1
    assert result["total_rows"] == sum(len(f) for f in valid_frames().values())


def test_validate_human_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_csv_folder(valid_frames(), tmp_path / "mp")
    assert main(["validate", "--data", str(folder), "--snapshot-at", "2025-07-01"]) == 0
    out = capsys.readouterr().out
    assert "valid marketplace, snapshot at 2025-07-01T00:00:00" in out and "orders" in out


def test_bad_folder_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = valid_frames()
    frames["orders"].loc[2, "amount"] = -1.0
    folder = write_parquet_folder(frames, tmp_path / "mp")
    assert main(["validate", "--data", str(folder)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "table 'orders', column 'amount'" in lines[0] and "order_id='o3'" in lines[0]


def test_console_script_exits_2_without_traceback(tmp_path: Path) -> None:
    frames = valid_frames()
    frames["reviews"] = frames["reviews"].drop(columns=["rating"])
    folder = write_csv_folder(frames, tmp_path / "mp")
    exe = Path(sys.executable).with_name("dajia")
    env = {**os.environ, "COLUMNS": "80"}
    proc = subprocess.run([str(exe), "validate", "--data", str(folder)], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: table 'reviews', column 'rating': missing required column")
