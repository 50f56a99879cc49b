"""Connecting to a Dask cluster: ``--scheduler ADDRESS`` wins over ``DASK_SCHEDULER_ADDRESS``."""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from core.errors import DajiaError
from core.settings import Settings

if TYPE_CHECKING:
    from distributed import Client


class ClusterError(DajiaError):
    """The Dask scheduler cannot be reached, refused the job, or a step failed on the workers.

    The message is one line; ``detail`` keeps the full traceback (``--verbose`` prints it)."""

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.detail = detail


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` of ``exc`` on one line (whitespace collapsed, Dask's advice cut, shortened)."""
    text = re.sub(r"\s+", " ", str(exc)).strip()
    text = text.split(" Inspecting worker logs")[0]  # KilledWorker's advice and link
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextmanager
def cluster_step(name: str) -> Iterator[None]:
    """Run one step of a cluster job: a failure (a worker killed, a task's error) becomes one line,
    ``<name> failed on the cluster: <worker error>``; dajia's own errors pass through as they are."""
    try:
        yield
    except DajiaError:
        raise
    except Exception as exc:
        detail = "".join(traceback.format_exception(exc))
        raise ClusterError(f"{name} failed on the cluster: {one_line(exc)}", detail) from exc


def scheduler_address(option: str | None, settings: Settings) -> str | None:
    """The scheduler to use: the command-line option, else the settings, else None (run locally)."""
    for value in (option, settings.dask_scheduler_address):
        if value is not None and value.strip():
            return value.strip()
    return None


@contextmanager
def connect(address: str, timeout: float = 30.0) -> Iterator[Client]:
    """A client of the scheduler at ``address`` (closed on exit); a clear error when unreachable."""
    from distributed import Client

    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address!r}: {exc}") from None
    try:
        # Dask helpers (as_completed, wait, lightgbm.dask) look up "the current client": make it this one
        with client.as_current():
            yield client
    finally:
        client.close()


def n_workers(client: Client) -> int:
    return max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
