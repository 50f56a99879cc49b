"""Fixtures for the API tests: a real marketplace, models trained by the training entry point and
registered in a real MLflow registry, served over loopback by a real uvicorn server.

Everything expensive is session-scoped: one tiny generated marketplace, two trained versions
(v1 ``champion``, v2 ``challenger``), one MLflow REST server (in a thread, so it can be stopped
to play "registry down"), one dajia server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from core.settings import Settings

N_SHOPS = 800
MAX_BATCH = 500
MAX_BODY_MB = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 120.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout:.0f}s")


def home_settings(home: Path, tracking_uri: str | None = None) -> Settings:
    return Settings(
        home=home,
        DATABASE_URL=f"sqlite:///{home / 'dajia.db'}",
        MLFLOW_TRACKING_URI=tracking_uri or f"sqlite:///{home / 'mlruns' / 'mlflow.db'}",
    )


@dataclass
class Registry:
    """A home with two registered versions, and an MLflow REST server over its store."""

    home: Path
    data: Path
    port: int
    _server: Any = None
    _thread: threading.Thread | None = None
    #: the registry whose MLflow server runs in this process (one at a time, see ``start``)
    _serving: ClassVar[Registry | None] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlruns' / 'mlflow.db'}"

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.store_uri, registry_uri=self.store_uri)

    def start(self) -> None:
        """Serve this registry's store over REST, in a thread of this process.

        MLflow's server keeps its stores in module globals (``mlflow.server.handlers._tracking_store``,
        ``_model_registry_store``), created on the first request from ``_MLFLOW_SERVER_FILE_STORE``: one
        process serves one store. A second registry started while another runs would be answered from the
        first one's store (an alias moved in its own store is never seen), so that is refused; a registry
        started after the running one stopped gets the cache cleared and serves its own store."""
        import uvicorn

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from mlflow.server import handlers
            from mlflow.server.fastapi_app import app

        running = Registry._serving
        if running is not None and running is not self:
            raise RuntimeError(
                f"an MLflow server for {running.store_uri} already runs in this process; MLflow's server "
                f"caches its store in module globals, so {self.store_uri} cannot be served beside it "
                "(request the session fixture `registry`, defined once in tests/conftest.py)"
            )
        os.environ["_MLFLOW_SERVER_FILE_STORE"] = self.store_uri
        os.environ["_MLFLOW_SERVER_ARTIFACT_ROOT"] = str(home_settings(self.home).artifact_root)
        handlers._tracking_store = None
        handlers._model_registry_store = None
        Registry._serving = self

        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self._thread = threading.Thread(target=self._server.run, name="mlflow-server", daemon=True)
        self._thread.start()
        wait_http(f"{self.url}/health", timeout=60)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            assert self._thread is not None
            self._thread.join(timeout=30)
            self._server = None
        if Registry._serving is self:
            Registry._serving = None


def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Generate a small marketplace and train once with the training entry point (version 1, champion).

    Version 2 (``challenger``) registers the same logged model again: a second real registry version
    for alias moves and shadow scoring without paying for a second training run.
    """
    from marketplace.generator import GeneratorConfig, generate
    from training.booster import BoosterConfig
    from training.examples import ExamplePlan
    from training.marketplace_run import run_marketplace

    root = tmp_path_factory.mktemp("api")
    data = root / "market"
    generate(GeneratorConfig(shops=N_SHOPS, seed=7, counterfeit_rate=0.15, label_coverage=0.8), data)
    home = root / "home"
    home.mkdir()
    settings = home_settings(home)
    run_marketplace(
        settings,
        data,
        seed=0,
        register=True,
        plan=ExamplePlan(test_dates=2, valid_dates=2, population_sample=400),
        config=BoosterConfig(learning_rate=0.2, max_rounds=150, early_stopping_rounds=20),
    )
    reg = Registry(home=home, data=data, port=free_port())
    client = reg.client()
    v1 = client.get_model_version(settings.model_name, "1")
    v2 = client.create_model_version(settings.model_name, source=v1.source, run_id=v1.run_id)
    client.set_registered_model_alias(settings.model_name, "challenger", v2.version)
    env = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
        "_MLFLOW_SERVER_FILE_STORE": reg.store_uri,
        "_MLFLOW_SERVER_ARTIFACT_ROOT": str(settings.artifact_root),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    reg.start()
    yield reg
    reg.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def create_keys(database_url: str) -> dict[str, str]:
    """One secret per role (plus a revoked one), created through the key store of the service's database."""
    from core.db import make_engine
    from dajia.db import migrate
    from serving.auth import ApiKeyStore

    engine = make_engine(database_url)
    migrate(engine)
    store = ApiKeyStore(engine)
    out = {role: store.create(role, f"test {role}")[1] for role in ("scorer", "reviewer", "admin")}
    out["admin2"] = store.create("admin", "second admin (four eyes)")[1]
    revoked, secret = store.create("scorer", "revoked scorer")
    store.revoke(revoked.key_id)
    out["revoked"] = secret
    engine.dispose()
    return out


@dataclass
class ThreadedServer:
    """An app on a real uvicorn server in a daemon thread of this process (see :func:`serve_in_thread`),
    and the clients made for it, closed by ``stop``."""

    base_url: str
    keys: dict[str, str]
    app: Any
    server: Any
    thread: threading.Thread
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, role: str | None = None) -> httpx.Client:
        headers = {"X-API-Key": self.keys[role]} if role else {}
        c = httpx.Client(base_url=self.base_url, headers=headers, timeout=60.0)
        self.clients.append(c)
        return c

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve_in_thread(app: Any, name: str, **config: Any) -> tuple[str, Any, threading.Thread]:
    """(base URL, uvicorn server, thread) of ``app`` served on a free loopback port once ``/healthz``
    answers; ``config`` goes to ``uvicorn.Config``."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **config))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    wait_http(f"{base_url}/healthz", timeout=180)
    return base_url, server, thread


@dataclass
class Api(ThreadedServer):
    registry: Registry = field(kw_only=True)

    def wait_version(self, version: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = httpx.get(f"{self.base_url}/readyz", timeout=10).json()
            if body.get("model") and body["model"]["version"] == version:
                return body
            time.sleep(0.1)
        raise TimeoutError(f"model version {version} not served after {timeout:.0f}s: {body}")


def start_api(
    registry: Registry, keys: dict[str, str], home: Path | None = None, database_url: str | None = None, **settings: Any
) -> Api:
    """The dajia app on a real uvicorn server in a thread, pointed at the MLflow REST registry.

    ``home`` (default: the registry's) holds the SQLite database unless ``database_url`` names another;
    ``settings`` override the rest."""
    from serving.app import create_app
    from serving.config import ServeOptions

    home = home or registry.home
    config = Settings(
        home=home,
        DATABASE_URL=database_url or f"sqlite:///{home / 'dajia.db'}",
        MLFLOW_TRACKING_URI=registry.url,
        max_batch=MAX_BATCH,
        **settings,
    )
    options = ServeOptions(
        data_dir=registry.data,
        poll_seconds=0.3,
        shadow=True,
        max_body_bytes=int(MAX_BODY_MB * 1024 * 1024),
        registry_timeout_seconds=5.0,
        auth_cache_seconds=0.5,
        wal_checkpoint_seconds=0.2,
    )
    app = create_app(config, options)
    base_url, server, thread = serve_in_thread(app, "dajia-api", log_level="warning")
    return Api(base_url, keys, app, server, thread, registry=registry)


@pytest.fixture(scope="session")
def api(registry: Registry, keys: dict[str, str]) -> Iterator[Api]:
    a = start_api(registry, keys)
    yield a
    a.stop()


def dajia_cmd() -> list[str]:
    return [sys.executable, "-m", "dajia.cli"]
