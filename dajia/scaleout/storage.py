"""Marketplace tables on any path fsspec understands (a local folder, ``s3://bucket/prefix``, ...).

Only fsspec and pyarrow are used: the right filesystem package (``s3fs``, ``gcsfs``, ...) is whatever
the deployment installs, nothing here depends on a cloud SDK.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from core.errors import DajiaError, DataContractError
from marketplace.schema import MANIFEST_FILE, TABLES, Table
from marketplace.tables import Marketplace
from marketplace.validate import RawTable, check_snapshot, validate_raw


@dataclass(frozen=True)
class Location:
    """A folder on some filesystem: ``fs`` and the ``root`` path inside it (no trailing slash)."""

    fs: fsspec.AbstractFileSystem
    root: str
    url: str

    @classmethod
    def of(cls, url: str | Path) -> Location:
        text = str(url)
        fs, root = url_to_fs(text)
        root = str(root).rstrip("/") or "/"
        # a local path travels to workers absolute (a relative one means another folder on each machine)
        return cls(fs=fs, root=root, url=root if "://" not in text else text.rstrip("/"))

    def path(self, *names: str) -> str:
        return "/".join([self.root, *names])

    def child(self, *names: str) -> Location:
        return Location(self.fs, self.path(*names), "/".join([self.url, *names]))

    def exists(self, *names: str) -> bool:
        return bool(self.fs.exists(self.path(*names)))

    def read_text(self, *names: str) -> str:
        with self.fs.open(self.path(*names), "rb") as fh:
            return bytes(fh.read()).decode("utf-8")

    def write_text(self, text: str, *names: str) -> None:
        self.fs.makedirs(self.path(*names[:-1]) if len(names) > 1 else self.root, exist_ok=True)
        with self.fs.open(self.path(*names), "wb") as fh:
            fh.write(text.encode("utf-8"))

    def makedirs(self, *names: str) -> None:
        self.fs.makedirs(self.path(*names), exist_ok=True)

    def read_parquet(self, *names: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.path(*names), filesystem=self.fs, columns=columns)

    def parquet_file(self, *names: str) -> pq.ParquetFile:
        return pq.ParquetFile(self.fs.open(self.path(*names), "rb"))

    def writer(self, schema: pa.Schema, *names: str) -> pq.ParquetWriter:
        self.fs.makedirs(self.path(*names[:-1]), exist_ok=True)
        return pq.ParquetWriter(self.path(*names), schema, filesystem=self.fs, compression="zstd")

    def remove(self, *names: str) -> None:
        if self.exists(*names):
            self.fs.rm(self.path(*names), recursive=True)


#: why a CSV folder is refused by the streamed jobs, and what to do instead
PARQUET_ONLY = (
    "the sweep, serve --data and the scale-out jobs (--scheduler, features --no-validate) read Parquet tables only; "
    "write a Parquet copy once with `dajia validate --data DIR --write-parquet NEWDIR` and pass NEWDIR"
)


class SourceError(DajiaError):
    """A marketplace folder that a streamed job cannot read, found before any work starts."""


def check_streamable(url: str | Path, snapshot_at: object, option: str = "--data") -> pd.Timestamp:
    """Before any work (model loading, partitioning, training): ``url`` is a folder of Parquet tables
    with a snapshot time (its manifest's, or ``snapshot_at``). A missing folder, CSV tables or no snapshot
    is one clear error naming the folder; returns the snapshot time."""
    try:
        src = Location.of(url)
        found = src.fs.isdir(src.root)
    except Exception as exc:  # an unknown protocol, a bad URL
        raise SourceError(f"{option} {url}: cannot open ({' '.join(str(exc).split())[:200]})") from None
    if not found:
        raise SourceError(f"{option} {url}: no such folder")
    csv = [f"{t.name}.csv" for t in TABLES if src.exists(f"{t.name}.csv")]
    if csv:
        shown = ", ".join(csv[:3]) + (", ..." if len(csv) > 3 else "")
        raise SourceError(f"{option} {src.url} holds CSV tables ({shown}): {PARQUET_ONLY}")
    return snapshot_of(src, snapshot_at)


def table_file(src: Location, spec: Table) -> str | None:
    """``<table>.parquet`` in ``src``; None for an absent optional table; a clear error otherwise."""
    name = f"{spec.name}.parquet"
    if src.exists(name):
        return name
    if src.exists(f"{spec.name}.csv"):
        raise DataContractError(spec.name, None, f"{spec.name}.csv: {PARQUET_ONLY}")
    if spec.optional:
        return None
    raise DataContractError(spec.name, None, f"file missing: expected {name} in {src.url}")


def snapshot_of(src: Location, given: object = None) -> pd.Timestamp:
    """The snapshot time as the loader reads it: ``given`` (``--snapshot-at``; ``"now"`` is now, UTC) when
    not None, else ``snapshot_at`` from the folder's manifest; ``SnapshotMissing`` when there is neither."""
    from marketplace.loader import SnapshotMissing, snapshot_value

    if given is not None:
        return check_snapshot(snapshot_value(given))
    if not src.exists(MANIFEST_FILE):
        raise SnapshotMissing(src.url)
    try:
        doc: Any = json.loads(src.read_text(MANIFEST_FILE))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataContractError("manifest", None, f"{MANIFEST_FILE} is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("snapshot_at") is None:
        raise SnapshotMissing(src.url)
    return check_snapshot(doc["snapshot_at"])


def raw_table(name: str, table: pa.Table) -> RawTable:
    arrays = {n: table.column(i) for i, n in enumerate(table.column_names)}
    return RawTable(name, list(table.column_names), arrays, table.num_rows, "parquet")


def load_marketplace_any(url: str | Path, snapshot_at: object = None) -> Marketplace:
    """The whole marketplace at ``url`` (local folder or any fsspec URL), validated like ``load_marketplace``."""
    text = str(url)
    if "://" not in text:
        from marketplace.loader import load_marketplace

        return load_marketplace(Path(text), snapshot_at)
    src = Location.of(text)
    raw: dict[str, RawTable] = {}
    for spec in TABLES:
        name = table_file(src, spec)
        if name is not None:
            raw[spec.name] = raw_table(spec.name, src.read_parquet(name))
    return validate_raw(raw, snapshot_of(src, snapshot_at))
