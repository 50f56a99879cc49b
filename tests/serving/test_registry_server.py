"""The test registry's MLflow server (``tests/serving/conftest.py``): one per process, each serving its own
store. MLflow's server caches its stores in module globals, so a second server beside a running one would
answer from the first one's store (an alias moved in its own store never seen: issue 20's alias-move
timeout, when the session fixture was imported into a second folder and so set up twice)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import Registry, free_port


def _registry(root: Path) -> Registry:
    (root / "mlruns").mkdir(parents=True)
    return Registry(home=root, data=root, port=free_port())


def test_a_second_server_beside_a_running_one_is_refused_and_a_later_one_serves_its_own_store(
    tmp_path: Path,
) -> None:
    running = Registry._serving
    first = running or _registry(tmp_path / "a")
    if running is None:
        first.client().search_registered_models()  # creates the store's tables (slow on a loaded machine)
        first.start()
        # a request makes MLflow's server create (and cache) its stores
        search = httpx.get(f"{first.url}/api/2.0/mlflow/registered-models/search", timeout=60)
        assert search.status_code == 200, search.text
    second = _registry(tmp_path / "b")
    try:
        with pytest.raises(RuntimeError, match="already runs in this process"):
            second.start()
    finally:
        if running is None:
            first.stop()
    if running is not None:
        return  # the session's server runs (the whole suite): its own store was checked above
    second.client().create_registered_model("only-in-b")
    second.start()
    try:
        r = httpx.get(f"{second.url}/api/2.0/mlflow/registered-models/get", params={"name": "only-in-b"}, timeout=60)
        assert r.status_code == 200, r.text
    finally:
        second.stop()
