"""The marketplace folder a command is given is checked before any work (issue 23):

- **no manifest**: the snapshot time is never guessed. Before, a folder without ``manifest.json`` took
  "now" as its snapshot and ``train`` failed much later with a misleading "one class" error. Now every
  command that reads a marketplace folder (train, features, sweep, serve, cases import, validate) either
  gets ``--snapshot-at`` or ends with exit 2 and one line naming the folder and the two ways out;
- **CSV tables**: the loader reads CSV, so the commands that load a folder whole support it (validate,
  train, features, cases import, and the promotion gate's frozen evaluation set); the streamed jobs
  (sweep, serve --data, ``--scheduler``, ``features --no-validate``) read Parquet only and refuse a CSV folder
  before loading a model or training anything, pointing at ``validate --write-parquet``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.serving.conftest import dajia_cmd

AS_OF = "2025-01-01"


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MLFLOW_TRACKING_URI")}
    env["DAJIA_HOME"] = str(home)
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    return subprocess.run([*dajia_cmd(), *args], capture_output=True, text=True, timeout=300, env=env, cwd=home)


def _one_line_error(args: list[str], home: Path, *words: str) -> str:
    done = _run(args, home)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("snapshot") / "m"
    subprocess.run([*dajia_cmd(), "generate", "--shops", "60", "--seed", "4", "--out", str(root)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def snapshot(market: Path) -> str:
    return str(json.loads((market / "manifest.json").read_text(encoding="utf-8"))["snapshot_at"])


@pytest.fixture(scope="module")
def no_manifest(market: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("no-manifest") / "export"
    shutil.copytree(market, folder)
    (folder / "manifest.json").unlink()
    return folder


def _csv_value(v: object) -> str:
    if v is None or v is pd.NaT or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


@pytest.fixture(scope="module")
def csv_market(market: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same marketplace exported as CSV tables (with its manifest)."""
    from marketplace.loader import load_marketplace

    folder = tmp_path_factory.mktemp("csv") / "export"
    folder.mkdir()
    mp = load_marketplace(market)
    for name in mp.table_names():
        frame = mp.table(name).astype(object).map(_csv_value)
        frame.to_csv(folder / f"{name}.csv", index=False, encoding="utf-8")
    shutil.copy(market / "manifest.json", folder / "manifest.json")
    return folder


# -- a missing manifest --------------------------------------------------------------------------------
FEATURES = ["features", "--data", "{d}", "--as-of", AS_OF]
SCHEDULER = ["--scheduler", "tcp://127.0.0.1:9"]  # never reached: the folder is refused first
COMMANDS = {
    "train": ["train", "--data", "{d}"],
    "train --scheduler": ["train", "--data", "{d}", *SCHEDULER],
    "features": [*FEATURES, "--out", "{o}/f.parquet"],
    "features --no-validate": [*FEATURES, "--out", "{o}/f.parquet", "--no-validate"],
    "features --scheduler": [*FEATURES, "--out", "{o}/f", *SCHEDULER],
    "sweep": ["sweep", "--data", "{d}", "--out", "{o}/scores.parquet"],
    "serve": ["serve", "--data", "{d}", "--port", "0"],
    "cases import": ["cases", "import", "--data", "{d}"],
    "validate": ["validate", "--data", "{d}"],
}


def _args(name: str, data: Path, out: Path) -> list[str]:
    return [a.format(d=data, o=out) for a in COMMANDS[name]]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_folder_without_manifest_is_one_clear_error(command: str, no_manifest: Path, tmp_path: Path) -> None:
    line = _one_line_error(_args(command, no_manifest, tmp_path), tmp_path, str(no_manifest), "--snapshot-at",
                           "manifest.json")  # fmt: skip
    assert "one class" not in line
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "dajia.db").exists()  # before any work


def test_snapshot_at_is_the_explicit_choice(market: Path, no_manifest: Path, snapshot: str, tmp_path: Path) -> None:
    done = _run(["validate", "--data", str(no_manifest), "--snapshot-at", snapshot, "--json"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert pd.Timestamp(json.loads(done.stdout)["snapshot_at"]) == pd.Timestamp(snapshot)
    done = _run(["validate", "--data", str(no_manifest), "--snapshot-at", "now", "--json"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert pd.Timestamp(json.loads(done.stdout)["snapshot_at"]) > pd.Timestamp(snapshot)
    # the same features as from the folder with its manifest, validated or not
    for extra in ([], ["--no-validate"]):
        outs = []
        for data, more in ((market, []), (no_manifest, ["--snapshot-at", snapshot])):
            out = tmp_path / f"{data.name}{len(extra)}.parquet"
            args = ["features", "--data", str(data), "--as-of", AS_OF, "--out", str(out), "--no-labels", *extra, *more]
            done = _run(args, tmp_path)
            assert done.returncode == 0, done.stderr[-2000:]
            outs.append(pd.read_parquet(out))
        pd.testing.assert_frame_equal(outs[0], outs[1])


def test_the_sweep_partitions_at_the_given_snapshot(no_manifest: Path, snapshot: str, tmp_path: Path) -> None:
    from dajia.scaleout.partition import partition_marketplace

    parts = partition_marketplace(str(no_manifest), str(tmp_path / "parts"), snapshot_at=snapshot)
    assert parts.snapshot_at == pd.Timestamp(snapshot)
    later = (pd.Timestamp(snapshot) + pd.Timedelta(days=1)).isoformat()
    again = partition_marketplace(str(no_manifest), str(tmp_path / "parts"), snapshot_at=later)
    assert again.snapshot_at == pd.Timestamp(later)  # another snapshot: the layout is not reused


# -- CSV tables ----------------------------------------------------------------------------------------
STREAMED = ("train --scheduler", "features --no-validate", "features --scheduler", "sweep", "serve")


@pytest.mark.parametrize("command", STREAMED)
def test_the_streamed_jobs_refuse_a_csv_folder_before_any_work(command: str, csv_market: Path, tmp_path: Path) -> None:
    _one_line_error(_args(command, csv_market, tmp_path), tmp_path, str(csv_market), "CSV", "Parquet",
                    "--write-parquet")  # fmt: skip
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "dajia.db").exists()


def test_validate_writes_a_parquet_copy_the_streamed_jobs_read(market: Path, csv_market: Path, tmp_path: Path) -> None:
    from dajia.scaleout.storage import check_streamable
    from marketplace.loader import load_marketplace

    copy = tmp_path / "parquet"
    done = _run(["validate", "--data", str(csv_market), "--write-parquet", str(copy)], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = load_marketplace(market), load_marketplace(copy)
    assert a.snapshot_at == b.snapshot_at
    for name in a.table_names():
        pd.testing.assert_frame_equal(a.table(name), b.table(name), check_dtype=False)
    assert check_streamable(copy, None) == a.snapshot_at
    again = _run(["validate", "--data", str(csv_market), "--write-parquet", str(copy)], tmp_path)
    assert again.returncode == 2 and "not empty" in again.stderr  # never written over


def test_the_loading_commands_support_csv(market: Path, csv_market: Path, tmp_path: Path) -> None:
    outs = []
    for data in (market, csv_market):
        out = tmp_path / f"{data.parent.name}.parquet"
        done = _run(["features", "--data", str(data), "--as-of", AS_OF, "--out", str(out), "--no-labels"], tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        outs.append(pd.read_parquet(out))
    pd.testing.assert_frame_equal(outs[0], outs[1])
    done = _run(["cases", "import", "--data", str(csv_market), "--json"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_promotion_gate_reads_a_csv_marketplace(csv_market: Path, snapshot: str) -> None:
    """The frozen evaluation set of a run trained on CSV tables finds its marketplace again (before: only
    ``*.parquet`` were digested and looked for, so the gate said the marketplace was gone)."""
    from training import frozen as fz
    from training.tracking import file_digest

    files = fz.marketplace_files(csv_market)
    assert files and all(f.suffix == ".csv" for f in files)
    spec = {"kind": "marketplace", "data_dir": str(csv_market), "digest": file_digest(files), "snapshot_at": snapshot}
    mp = fz.frozen_marketplace(fz.FrozenEval(spec=spec))
    assert mp.snapshot_at == pd.Timestamp(snapshot) and len(mp.shops) == 60
