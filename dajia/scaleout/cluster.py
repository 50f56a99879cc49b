"""Connecting to a Dask cluster: ``--scheduler ADDRESS`` wins over ``DASK_SCHEDULER_ADDRESS``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from core.errors import DajiaError
from core.settings import Settings

if TYPE_CHECKING:
    from distributed import Client


class ClusterError(DajiaError):
    """The Dask scheduler cannot be reached or refused the job."""


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
