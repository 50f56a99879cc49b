"""What several commands share about their ``--data`` folder: the ``--snapshot-at`` option and the checks
made before any work (a missing folder, a missing snapshot time, CSV tables where only Parquet streams)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.errors import DajiaError

SNAPSHOT_HELP = (
    "the marketplace's snapshot time (ISO-8601, or 'now'): needed when --data has no manifest.json "
    "with a snapshot_at; overrides the manifest's"
)


def check_local_folder(data: Path, snapshot_at: str | None, option: str = "--data") -> pd.Timestamp:
    """A marketplace folder read whole by the loader (Parquet or CSV tables): it exists and has a snapshot
    time (its manifest's, or ``--snapshot-at``); checked before any work. Returns the snapshot time."""
    from marketplace.loader import read_snapshot_at
    from marketplace.validate import check_snapshot

    if not data.is_dir():
        raise DajiaError(f"{option} {data}: not a folder of marketplace tables")
    return check_snapshot(read_snapshot_at(data, snapshot_at))


def check_streamed_folder(data: str | Path, snapshot_at: str | None, option: str = "--data") -> pd.Timestamp:
    """A marketplace folder (local or any fsspec URL) streamed by the sweep or a scale-out job: Parquet
    tables only, with a snapshot time; checked before any work. Returns the snapshot time."""
    from dajia.scaleout.storage import check_streamable

    return check_streamable(data, snapshot_at, option)
