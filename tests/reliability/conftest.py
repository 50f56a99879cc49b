"""Fixtures for the reliability tests: one small real crackdown run (its logs and output captured),
the dajia API served over that run's stores on loopback, keys for every role, and a TCP proxy that
can cut a database connection for real.

Everything expensive is session-scoped: the crackdown (generate, train, register, sweep, route,
simulated decisions, campaign, disclosure) runs once and every test reads or extends its stores.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from core.settings import Settings
from tests.serving.conftest import ThreadedServer, free_port, serve_in_thread

SHOPS = 1500
SEED = 3
ROLES = ("scorer", "reviewer", "admin")


class LogSink(logging.Handler):
    """Keeps every formatted log record (message, arguments and traceback) of every logger."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception as exc:  # a record that cannot even be formatted is still evidence
            text = f"{record.name} unformattable {record.msg!r} {record.args!r} {exc}"
        with self._lock2:
            self.lines.append(text)


@contextmanager
def captured_output(sink: LogSink) -> Iterator[None]:
    """Route the root logger (at DEBUG) and the process's stdout/stderr file descriptors into ``sink``."""
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(sink)
    root.setLevel(logging.DEBUG)
    fd_file = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    py_out, py_err = io.StringIO(), io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    for fd in (1, 2):
        os.dup2(fd_file.fileno(), fd)
    try:
        with redirect_stdout(py_out), redirect_stderr(py_err):
            yield
    finally:
        for fd, old in saved.items():
            os.dup2(old, fd)
            os.close(old)
        root.removeHandler(sink)
        root.setLevel(old_level)
        fd_file.seek(0)
        sink.lines.extend(fd_file.read().decode("utf-8", "replace").splitlines())
        fd_file.close()
        sink.lines.extend(py_out.getvalue().splitlines() + py_err.getvalue().splitlines())


@dataclass
class Run:
    """A finished crackdown: its settings (home, SQLite store, MLflow store), folder and summary."""

    settings: Settings
    root: Path
    data: Path
    summary: dict[str, Any]
    sink: LogSink

    def shops(self) -> pd.DataFrame:
        return pd.read_parquet(self.data / "shops.parquet")


@pytest.fixture(scope="session")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    from dajia.crackdown import Crackdown, CrackdownConfig, RunFolder, run_settings

    # RELIABILITY_REUSE_RUN=<folder>: develop against a finished run instead of making one (~1-2 min)
    reuse = os.environ.get("RELIABILITY_REUSE_RUN")
    root = Path(reuse) if reuse else tmp_path_factory.mktemp("reliability") / "run"
    folder = RunFolder(root)
    with pytest.MonkeyPatch.context() as env:
        for var in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "DASK_SCHEDULER_ADDRESS"):
            env.delenv(var, raising=False)
        settings = run_settings(Settings(), folder)
    sink = LogSink()
    with captured_output(sink):  # a reused finished run only writes its summary again
        summary = Crackdown(settings, folder, CrackdownConfig(shops=SHOPS, seed=SEED)).run()
    return Run(settings=settings, root=root, data=folder.data, summary=summary, sink=sink)


@pytest.fixture(scope="session")
def keys(run: Run) -> dict[str, str]:
    from core.db import make_engine
    from dajia.db import migrate
    from serving.auth import ApiKeyStore

    engine = make_engine(run.settings.resolved_database_url)
    migrate(engine)
    store = ApiKeyStore(engine)
    out = {role: store.create(role, f"reliability {role}")[1] for role in ROLES}
    engine.dispose()
    return out


#: the dajia app on a real uvicorn server in a thread (so its logs reach this process's handlers)
Server = ThreadedServer


def start_server(settings: Settings, data: Path | None, keys: dict[str, str], wait_model: bool = True) -> Server:
    from serving.app import create_app
    from serving.config import ServeOptions

    options = ServeOptions(
        data_dir=data,
        poll_seconds=5.0,
        max_body_bytes=1024 * 1024,
        registry_timeout_seconds=10.0,
        auth_cache_seconds=0.0,
        log_commit="thread",
    )
    app = create_app(settings, options)
    # log_config=None: uvicorn's loggers (access log included) propagate to the root logger
    base_url, server, thread = serve_in_thread(
        app, "reliability-api", log_config=None, log_level="info", access_log=True
    )
    s = Server(base_url, keys, app, server, thread)
    if wait_model:
        import time

        deadline = time.monotonic() + 120
        while httpx.get(f"{s.base_url}/readyz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the model did not load"
            time.sleep(0.2)
    return s


@pytest.fixture(scope="session")
def api(run: Run, keys: dict[str, str]) -> Iterator[Server]:
    """The API over the crackdown's stores, with the public rate limit high enough not to interfere."""
    settings = run.settings.model_copy(update={"public_rate_per_minute": 1e6, "public_rate_burst": 100_000})
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(run.sink)  # API logs join the crackdown's for the privacy test
    s = start_server(settings, run.data, keys)
    yield s
    s.stop()
    root.removeHandler(run.sink)
    root.setLevel(old)


class TcpProxy:
    """A loopback TCP proxy in its own event loop thread that can be cut (listener closed and every
    open connection reset) and restored on the same port: the database "goes away" for real."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tcp-proxy", daemon=True)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.thread.start()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.writers.discard(writer)
        self.writers.discard(up_writer)

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()

    def start(self) -> None:
        self._call(self._start())

    def cut(self) -> None:
        self._call(self._cut())

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
