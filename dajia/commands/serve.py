"""``dajia serve``: run the HTTP API (scoring, prediction log, sanction workflow) with uvicorn."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import typer

from core.errors import DajiaError
from dajia.commands.options import SNAPSHOT_HELP, check_streamed_folder

#: ``--max-body-mb``'s default: ``serving.config.ServeOptions.max_body_bytes`` in MiB (serving is imported
#: only when the command runs; tests/serving/test_batch_body_limit.py keeps the two equal)
DEFAULT_BODY_MB = 24.0


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on"),
        port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port"),
        data: Path | None = typer.Option(
            None,
            "--data",
            help="marketplace folder: materialised into the online feature store (unless it holds it already) and "
            "imported into the sanction store, partition by partition; scoring by id reads the online store",
        ),
        partition_shops: int = typer.Option(
            20_000, "--partition-shops", min=100, help="--data: shops per partition (bounds start-up memory)"
        ),
        snapshot_at: str | None = typer.Option(None, "--snapshot-at", help=SNAPSHOT_HELP),
        poll_seconds: float = typer.Option(30.0, "--poll-seconds", min=0.05, help="how often the alias is checked"),
        shadow: bool = typer.Option(False, "--shadow", help="also score the challenger alias (logged, not returned)"),
        max_body_mb: float = typer.Option(
            DEFAULT_BODY_MB,
            "--max-body-mb",
            min=0.001,
            help="larger request bodies get 413 (default: 1,000 inline shops fit)",
        ),
        log_sync: str = typer.Option(
            "normal",
            "--log-sync",
            help="SQLite prediction log: 'normal' survives a killed process, 'full' also a power cut (fsync)",
        ),
        log_commit: str = typer.Option(
            "thread", "--log-commit", help="prediction-log commits in a writer 'thread' or on the event 'loop'"
        ),
        log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level"),
    ) -> None:
        """Serve the dajia API (OpenAPI at /openapi.json, health at /healthz and /readyz, /metrics)."""
        t0 = time.perf_counter()

        from core.db import make_engine
        from core.settings import get_settings
        from dajia.db import check_writable, migrate
        from serving.app import create_app
        from serving.config import ServeOptions

        if log_sync.lower() not in ("normal", "full"):
            raise DajiaError(f"--log-sync must be normal or full, got {log_sync!r}")
        if log_commit not in ("auto", "loop", "thread"):
            raise DajiaError(f"--log-commit must be auto, loop or thread, got {log_commit!r}")
        if data is not None:  # before migrating or loading anything: a folder with a snapshot time
            check_streamed_folder(data, snapshot_at)  # it is split by shop: Parquet tables
        elif snapshot_at is not None:
            raise DajiaError("--snapshot-at goes with --data (the marketplace folder)")
        # a registry that does not answer must not hold a poll (or the shutdown) for minutes
        # (MLflow's defaults retry 7 times with exponential backoff); explicit settings win
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        settings = get_settings()
        options = ServeOptions(
            data_dir=None,  # never in memory: --data goes to the online store partition by partition
            poll_seconds=poll_seconds,
            shadow=shadow,
            max_body_bytes=int(max_body_mb * 1024 * 1024),
            log_sync=log_sync.upper(),
            log_commit=log_commit,
        )
        migrate(settings.resolved_database_url)  # before the app: it never migrates itself
        probe = make_engine(settings.resolved_database_url)
        try:
            check_writable(probe)  # a read-only database: one line and exit 2, before uvicorn starts
        finally:
            probe.dispose()
        source = None
        if data is not None:
            source = prepare_data(settings, data, partition_shops, snapshot_at)
        say(f"dajia serve: starting on http://{host}:{port} (loading the champion model)")
        run_server(
            create_app(settings, options, online_source=source),
            host=host,
            port=port,
            log_level=log_level,
            t0=t0,
            trusted_proxies=settings.trusted_proxies,
        )


def prepare_data(settings: Any, data: Path, partition_shops: int, snapshot_at: str | None = None) -> Any:
    """``--data``: the marketplace split by shop (streamed, once: skipped while the files are unchanged) and
    its shops, listings and orders imported into the sanction store one partition (one transaction) at a
    time, skipped when the store already holds this marketplace (its fingerprint). Returns the partitioned
    marketplace, which the service materialises into the online store for the champion's pipeline."""
    import hashlib

    from core.db import make_engine
    from dajia.scaleout.partition import partition_marketplace
    from features.online_store import open_online_store
    from sanctions.storefront import import_marketplace

    work = settings.home / "serve-partitions" / hashlib.sha256(str(data.resolve()).encode()).hexdigest()[:12]
    parts = partition_marketplace(str(data), str(work), shops_per_partition=partition_shops, snapshot_at=snapshot_at)
    store = open_online_store(settings.resolved_online_store)
    key = "imported:" + hashlib.sha256(settings.resolved_database_url.encode()).hexdigest()[:16]
    try:
        if store.meta(key) != parts.fingerprint:
            engine = make_engine(settings.resolved_database_url)
            try:
                for i in range(parts.n_partitions):
                    import_marketplace(engine, parts.load_own(i))
                    say(f"dajia serve: sanction store import, partition {i + 1}/{parts.n_partitions}")
            finally:
                engine.dispose()
            store.set_meta(key, parts.fingerprint)
    finally:
        store.close()
    return parts


def say(text: str) -> None:
    """A line about the service's state on stderr (stdout stays the service's own), at once."""
    print(text, file=sys.stderr, flush=True)


def run_server(
    api: Any,
    *,
    host: str,
    port: int,
    log_level: str = "warning",
    t0: float | None = None,
    trusted_proxies: str = "",
) -> None:
    """Run ``api`` with uvicorn and say where it listens once it is ready: uvicorn binds the port only
    after the app's start-up (marketplace, model), so from that line on /readyz answers."""
    import uvicorn

    began = time.perf_counter() if t0 is None else t0

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                bound = [s.getsockname() for srv in self.servers for s in (srv.sockets or ())]
                where = ", ".join(f"http://{a[0]}:{a[1]}" for a in bound if len(a) >= 2) or f"http://{host}:{port}"
                services = self.lifespan.state.get("services")
                current = services.holder.current if services is not None else None
                seconds = time.perf_counter() - began
                if current is not None:
                    say(
                        f"dajia serve: ready in {seconds:.1f} s ({current.name} v{current.version}), listening on "
                        f"{where} (API docs /docs, console /console, public pages /public; Ctrl-C stops)"
                    )
                else:
                    problem = services.holder.last_error if services is not None else "no model"
                    say(
                        f"dajia serve: listening on {where} after {seconds:.1f} s but NOT ready: no model loaded "
                        f"({problem}); /readyz answers 503 until the registry serves one"
                    )

    config = uvicorn.Config(
        api,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=10,
        **forwarded_options(trusted_proxies),
    )
    Server(config).run()


def forwarded_options(trusted_proxies: str) -> dict[str, Any]:
    """uvicorn's options for forwarded headers: believed only from ``trusted_proxies``
    (``settings.trusted_proxies``); none trusted when it is empty (uvicorn's default trusts 127.0.0.1)."""
    proxies = ",".join(p.strip() for p in trusted_proxies.split(",") if p.strip())
    if not proxies:
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": proxies}
