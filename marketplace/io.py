"""Writing marketplace tables to a folder (Parquet), whole or in streamed chunks.

Reading and validation live in ``marketplace.loader`` (``load_marketplace``).
"""

from __future__ import annotations

import json
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core import atomic
from core.atomic import AtomicFile, atomic_path
from marketplace.schema import MANIFEST_FILE, TABLES_BY_NAME, Kind, Table

_ARROW: dict[Kind, pa.DataType] = {
    "string": pa.string(),
    "text": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us"),
}


def arrow_schema(table: Table) -> pa.Schema:
    """The Arrow schema a contract table is written with."""
    return pa.schema([pa.field(c.name, _ARROW[c.kind], nullable=c.nullable) for c in table.columns])


def _to_arrow(frame: pd.DataFrame, table: Table) -> pa.Table:
    missing = [c for c in table.column_names if c not in frame.columns]
    if missing:
        raise ValueError(f"table '{table.name}': cannot write, columns missing: {missing}")
    return pa.Table.from_pandas(frame[table.column_names], schema=arrow_schema(table), preserve_index=False)


class TableWriter:
    """Streams chunks of one contract table into ``DIR/<table>.parquet`` (bounded memory).

    The chunks go to a hidden temporary file renamed to the final name once the writer is closed
    without error: a kill or a full disk midway never leaves a truncated table under its real
    name (a full disk raises :class:`DiskFull` naming the file)."""

    def __init__(self, out_dir: Path, table_name: str, row_group_size: int = 256_000):
        self.table = TABLES_BY_NAME[table_name]
        self.path = Path(out_dir) / f"{table_name}.parquet"
        self.row_group_size = row_group_size
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._file = AtomicFile(self.path)

    def __enter__(self) -> TableWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = pq.ParquetWriter(self._file.tmp, arrow_schema(self.table), compression="zstd")
        except OSError as exc:
            self._file.abort(exc)
        return self

    def write(self, frame: pd.DataFrame) -> None:
        assert self._writer is not None, "use TableWriter as a context manager"
        if len(frame) == 0:
            return
        try:
            self._writer.write_table(_to_arrow(frame, self.table), row_group_size=self.row_group_size)
        except OSError as exc:
            self._file.abort(exc)
        self.rows += len(frame)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        writer, self._writer = self._writer, None
        if exc is not None:
            if writer is not None:
                with suppress(Exception):
                    writer.close()
            self._file.discard(exc)
            return  # the error raised in the block propagates
        if writer is not None:
            try:
                writer.close()  # writes the footer: may itself hit a full disk
            except OSError as close_exc:
                self._file.abort(close_exc)
        self._file.commit()


def write_table(frame: pd.DataFrame, out_dir: Path, table_name: str) -> Path:
    """Write one whole contract table as Parquet; returns the file path."""
    with TableWriter(out_dir, table_name) as writer:
        writer.write(frame)
    return writer.path


def write_manifest(out_dir: Path, snapshot_at: pd.Timestamp, **extra: Any) -> Path:
    """Write ``manifest.json``: the snapshot time (no event after it) and how the data was made."""
    path = Path(out_dir) / MANIFEST_FILE
    doc = {"snapshot_at": pd.Timestamp(snapshot_at).isoformat(), **extra}
    atomic.write_text(path, json.dumps(doc, indent=2, ensure_ascii=False, default=str))
    return path


def write_arrow(table: pa.Table, path: Path) -> Path:
    """Write an Arrow table (not a contract table, e.g. the ground truth) as Parquet, atomically."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path
