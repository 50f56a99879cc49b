"""Retention of the prediction log: rows older than a cut-off are archived to Parquet, then deleted.

The log (``serving_predictions``) gains a row per score and has no end of its own; a service that runs
for months needs one (issue 23; docs/api.md measured a 3.1 M-row log slowing the batch path). Rows are
moved oldest first in chunks of ids: each chunk is written to ``<archive>/predictions-<first id>-<last
id>.parquet`` (temporary + fsync + rename), and only then deleted in one transaction. A run killed between
the two leaves the rows and a complete file; the rerun writes the same file again (same ids, same name)
and deletes them: nothing lost, nothing twice. Re-running with nothing old enough changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import atomic
from core.db import writing
from core.errors import DajiaError
from serving.db import predictions

#: rows per archive file (and per delete transaction)
CHUNK_ROWS = 100_000


@dataclass
class PruneReport:
    cutoff: datetime
    archived: int = 0
    deleted: int = 0
    files: list[str] = field(default_factory=list)


def prune_predictions(
    engine: Engine,
    older_than_days: float,
    archive: Path | None,
    *,
    now: datetime | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> PruneReport:
    """Archive (unless ``archive`` is None: then only delete) and delete the log's rows logged more than
    ``older_than_days`` days before ``now`` (default: now, UTC)."""
    if older_than_days <= 0:
        raise DajiaError(f"--older-than must be a positive number of days, got {older_than_days:g}")
    if archive is not None:
        if archive.exists() and not archive.is_dir():
            raise DajiaError(f"--archive {archive}: is a file, not a folder")
        try:
            archive.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DajiaError(f"--archive {archive}: cannot create the folder ({exc.strerror or exc})") from None
    cutoff = (now or datetime.now(UTC).replace(tzinfo=None)) - timedelta(days=older_than_days)
    report = PruneReport(cutoff=cutoff)
    after = 0
    while True:
        query = (
            sa.select(predictions)
            .where(predictions.c.logged_at < cutoff, predictions.c.id > after)
            .order_by(predictions.c.id)
            .limit(chunk_rows)
        )
        with engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all())
        if frame.empty:
            return report
        first, last = int(frame["id"].iloc[0]), int(frame["id"].iloc[-1])
        if archive is not None:
            path = archive / f"predictions-{first:012d}-{last:012d}.parquet"
            with atomic.atomic_path(path) as tmp:
                frame.to_parquet(tmp, index=False)
            report.files.append(str(path))
            report.archived += len(frame)
        ids = [int(v) for v in frame["id"].tolist()]
        with writing(engine).begin() as conn:
            for i in range(0, len(ids), 10_000):  # bounded statements (SQLite's variable limit)
                gone = conn.execute(predictions.delete().where(predictions.c.id.in_(ids[i : i + 10_000])))
                report.deleted += gone.rowcount
        after = last
