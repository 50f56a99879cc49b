"""Outputs that appear whole or not at all, on a local disk or in an object store (any fsspec URL).

- **one file** (``dajia features --out``, the local sweep's scores): written under a temporary sibling
  name and committed by one rename (local: ``os.replace``, atomic; object store: one server-side copy,
  which makes the object appear whole). A failure removes the temporary; the previous file stays.
- **a folder of part files** (the cluster sweep's scores): the parts are written into a staging folder
  beside the output, then a ``_SUCCESS`` marker (JSON: the parts and the row count) is written last. The
  commit swaps the staging folder in (local: two renames; object store: the old marker is deleted first,
  the parts copied, the marker written last). Readers of a folder (:func:`require_complete`,
  ``dajia.cli_support.read_scores``, the console) refuse one without the marker with a clear error, so
  a failed run, or a commit interrupted on an object store, never reads as complete.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.atomic import SUCCESS_MARKER, AtomicFile, IncompleteOutput
from dajia.scaleout.storage import Location

__all__ = ["SUCCESS_MARKER", "IncompleteOutput", "require_complete", "staged_file", "staged_folder"]


def is_local(loc: Location) -> bool:
    protocol = loc.fs.protocol
    return "file" in (protocol if isinstance(protocol, tuple | list) else (protocol,))


def _token() -> str:
    return uuid.uuid4().hex[:12]


def _parent(loc: Location) -> str:
    return str(loc.fs._parent(loc.root))


@contextmanager
def staged_file(out: str) -> Iterator[tuple[Any, str]]:
    """Yield ``(fs, temporary path)`` to write ``out``'s content to; committed whole on success."""
    target = Location.of(out)
    target.fs.makedirs(_parent(target), exist_ok=True)
    if is_local(target):
        atomic = AtomicFile(target.root)
        try:
            yield target.fs, str(atomic.tmp)
        except BaseException as exc:
            atomic.abort(exc)
        if os.path.isdir(target.root):  # a cluster sweep's folder of parts, replaced by one file
            _replace_local_folder(target.root, None)
        atomic.commit()
        return
    tmp = f"{_parent(target)}/.{os.path.basename(target.root)}.{_token()}.tmp"
    try:
        yield target.fs, tmp
    except BaseException:
        _remove_quietly(target, tmp)
        raise
    if target.fs.isdir(target.root):
        target.fs.rm(target.root, recursive=True)
    target.fs.mv(tmp, target.root)
    target.fs.invalidate_cache()


@contextmanager
def staged_folder(out: str) -> Iterator[Location]:
    """Yield a staging folder beside ``out`` for the part files; on success the ``_SUCCESS`` marker is
    written and the folder committed as ``out``; on any error the staging folder is removed."""
    target = Location.of(out)
    token = _token()
    staging = Location.of(f"{target.root}.staging-{token}" if is_local(target) else f"{target.url}.staging-{token}")
    staging.makedirs()
    try:
        yield staging
    except BaseException:
        _remove_quietly(staging, staging.root)
        raise
    commit_folder(target, staging)


def commit_folder(target: Location, staging: Location) -> dict[str, Any]:
    """Write the marker into ``staging`` (last) and put ``staging`` in ``target``'s place."""
    staging.fs.invalidate_cache()
    parts = sorted(
        os.path.basename(p) for p in staging.fs.ls(staging.root, detail=False) if str(p).endswith(".parquet")
    )
    rows = 0
    for name in parts:
        rows += int(staging.parquet_file(name).metadata.num_rows)
    marker = {"parts": parts, "rows": rows}
    staging.write_text(json.dumps(marker, indent=2), SUCCESS_MARKER)
    if is_local(target):
        _replace_local_folder(target.root, staging.root)
        return marker
    # object store: no folder rename; the marker goes first and comes back last
    if target.fs.exists(target.path(SUCCESS_MARKER)):
        target.fs.rm(target.path(SUCCESS_MARKER))
    if target.fs.exists(target.root):
        target.fs.rm(target.root, recursive=True)
    for name in parts:
        target.fs.copy(staging.path(name), target.path(name))
    target.write_text(json.dumps(marker, indent=2), SUCCESS_MARKER)
    staging.fs.rm(staging.root, recursive=True)
    target.fs.invalidate_cache()
    return marker


def _replace_local_folder(root: str, new: str | None) -> None:
    """Rename ``new`` to ``root`` (the old ``root``, file or folder, moved aside first, then removed)."""
    import shutil

    old = None
    if os.path.lexists(root):
        old = f"{root}.old-{_token()}"
        os.rename(root, old)
    if new is not None:
        os.rename(new, root)
    if old is not None:
        if os.path.isdir(old) and not os.path.islink(old):
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.unlink(old)


def _remove_quietly(loc: Location, path: str) -> None:
    try:
        if loc.fs.exists(path):
            loc.fs.rm(path, recursive=True)
    except OSError:
        pass  # best effort: the error being raised is the one that matters


def require_complete(url: str) -> Location:
    """``url`` as a readable output: a file, or a folder with its ``_SUCCESS`` marker; a clear error otherwise."""
    loc = Location.of(url)
    loc.fs.invalidate_cache()
    if not loc.exists():
        raise IncompleteOutput(f"{url} does not exist")
    if loc.fs.isdir(loc.root) and not loc.exists(SUCCESS_MARKER):
        raise IncompleteOutput(
            f"{url} is a folder without its {SUCCESS_MARKER} marker: an incomplete output (the run that wrote it "
            "failed or is still committing); re-run the job"
        )
    return loc
