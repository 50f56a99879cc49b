"""Files that are either whole or absent: write a temporary sibling, fsync it, rename it over.

A kill or a full disk in the middle of a write leaves the previous version (or nothing) under the
final name, never a truncated file; the temporary is removed on error. A full disk raises
:class:`core.errors.DiskFull` naming the path.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from core.errors import DajiaError, disk_full

#: written last into a folder output (part files): a folder without it is incomplete and is not read
SUCCESS_MARKER = "_SUCCESS"


class IncompleteOutput(DajiaError):
    """An output folder without its ``_SUCCESS`` marker (its run failed or is still committing)."""


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_sibling(path: Path) -> Path:
    """The temporary name ``path`` is written under: hidden, same folder, unique per process and thread
    (two threads replacing one file each write their own temporary; the last rename wins whole)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


class AtomicFile:
    """One file being replaced: write ``tmp``, then :meth:`commit` (or :meth:`discard` on error)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.tmp = temp_sibling(self.path)

    def commit(self) -> None:
        """fsync the temporary, rename it to the final name, fsync the folder."""
        try:
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.abort(exc)
        fsync_dir(self.path.parent)

    def discard(self, exc: BaseException) -> BaseException:
        """Remove the temporary; returns the error to raise (``DiskFull`` for a full disk, else ``exc``)."""
        self.tmp.unlink(missing_ok=True)
        return disk_full(exc, self.path) or exc

    def abort(self, exc: BaseException) -> NoReturn:
        """Remove the temporary and raise: ``DiskFull`` (caused by ``exc``) for a full disk, else ``exc``."""
        err = self.discard(exc)
        if err is exc:
            raise exc
        raise err from exc


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; on success it is fsynced and renamed
    to ``path``; on any error it is removed (``ENOSPC`` becomes ``DiskFull``)."""
    target = AtomicFile(path)
    try:
        yield target.tmp
    except BaseException as exc:
        target.abort(exc)
    target.commit()


def write_bytes(path: Path | str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        fh.write(data)


def write_text(path: Path | str, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    write_bytes(path, text.encode("utf-8"))


def require_complete_folder(path: Path | str) -> None:
    """Refuse a folder output (part files) without its ``_SUCCESS`` marker; files pass as they are."""
    p = Path(path)
    if p.is_dir() and not (p / SUCCESS_MARKER).is_file():
        raise IncompleteOutput(
            f"{p} is a folder without its {SUCCESS_MARKER} marker: an incomplete output (the run that wrote it "
            "failed or is still committing); re-run the job"
        )
