"""The app's start-up and shutdown (``serving.app.create_app``'s lifespan): what started is stopped, also
when start-up fails half way."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from core.errors import DataContractError
from serving.app import create_app
from serving.config import ServeOptions
from tests.serving.conftest import home_settings

#: the threads the lifespan starts before it loads the marketplace
THREADS = ("dajia-wal-checkpoint", "prediction-log")


def _alive(name: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name == name and t.is_alive())


def test_a_start_that_fails_half_way_stops_what_it_had_started(tmp_path: Path) -> None:
    not_a_marketplace = tmp_path / "empty"
    not_a_marketplace.mkdir()
    app = create_app(home_settings(tmp_path), ServeOptions(data_dir=not_a_marketplace, wal_checkpoint_seconds=0.05))
    before = {name: _alive(name) for name in THREADS}

    async def start() -> None:
        async with app.router.lifespan_context(app):
            raise AssertionError("the start-up should have failed")

    # the marketplace is loaded after the checkpointer and the prediction log's writer have started
    with pytest.raises(DataContractError, match=r"table 'shops': file missing|no manifest\.json"):
        asyncio.run(start())
    assert {name: _alive(name) for name in THREADS} == before
    wal = tmp_path / "dajia.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # the checkpointer's last TRUNCATE ran
