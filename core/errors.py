"""Domain errors shared by every part; the CLI maps them to exit code 2, the API to HTTP statuses."""

from __future__ import annotations

import errno


class DajiaError(Exception):
    """Base of every error dajia raises on purpose (bad input, refused action)."""


class DataContractError(DajiaError):
    """A marketplace table breaks the data contract; the message names table, column and rows."""

    def __init__(self, table: str, column: str | None, problem: str, rows: list[object] | None = None):
        self.table = table
        self.column = column
        self.problem = problem
        self.rows = list(rows or [])
        where = f"table '{table}'" + (f", column '{column}'" if column else "")
        shown = ""
        if self.rows:
            head = ", ".join(repr(r) for r in self.rows[:5])
            more = f" (and {len(self.rows) - 5} more)" if len(self.rows) > 5 else ""
            shown = f"; first offending rows: {head}{more}"
        super().__init__(f"{where}: {problem}{shown}")


class NotFound(DajiaError):
    """A thing asked for by id does not exist."""


class Conflict(DajiaError):
    """A concurrent change won, or a retry does not match the original request."""


class Forbidden(DajiaError):
    """The actor's role does not allow the action."""


class InvalidTransition(DajiaError):
    """The workflow does not allow this change from the current state."""


class PromotionRefused(DajiaError):
    """The candidate model does not beat the champion through the gate."""


class DiskFull(DajiaError):
    """A write failed because the disk (or the database's disk) is full; nothing half-written is left.

    The CLI prints it on one line (exit 2); the API answers 507 (503 for the database)."""


#: SQLite's extended error codes for a full disk: writing the database or its WAL (SQLITE_FULL),
#: creating or growing the WAL index "-shm" file when a connection opens (SQLITE_IOERR_SHMSIZE)
SQLITE_FULL_CODES = {
    "SQLITE_FULL": "database or disk is full",
    "SQLITE_IOERR_SHMSIZE": "no room to create its shared-memory file",
}


def disk_full(exc: BaseException, path: object = None) -> DiskFull | None:
    """``exc`` (or one of its causes) as a :class:`DiskFull` when it is a full disk, else None.

    Recognises ``OSError`` with ``ENOSPC`` (Python and pyarrow writers) and SQLite's full-disk
    errors (raised by ``sqlite3``, wrapped by SQLAlchemy). ``path`` names what was being written.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, DiskFull):
            return cur
        if isinstance(cur, OSError) and cur.errno == errno.ENOSPC:
            target = path if path is not None else cur.filename
            return DiskFull(f"no space left on device writing {target}" if target else "no space left on device")
        name = getattr(cur, "sqlite_errorname", None) or (
            "SQLITE_FULL" if "database or disk is full" in str(cur) else None
        )
        if name in SQLITE_FULL_CODES:
            where = f" ({path})" if path is not None else ""
            return DiskFull(
                f"no space left on device for the SQLite database{where}: {SQLITE_FULL_CODES[name]} ({name}); "
                "the failed change was not applied; free space and retry"
            )
        cur = getattr(cur, "orig", None) or cur.__cause__ or cur.__context__
    return None
