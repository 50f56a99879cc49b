"""The app factory: settings read once, resources created in the lifespan, routers mounted.

``create_app(settings, options)`` builds a fresh app (nothing happens at import time). The lifespan
opens the database, the prediction log writer, the online feature store, the marketplace (in-process
use only) and the model holder, and hands them to requests as ``request.state.services``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from core.db import make_engine
from core.settings import Settings, sqlite_file
from features.online_store import open_online_store
from serving.auth import ApiKeyStore
from serving.config import ServeOptions
from serving.errors import install_error_handlers
from serving.metrics import Metrics
from serving.middleware import RequestMetricsMiddleware
from serving.model_holder import ModelHolder
from serving.openapi import declare_errors_and_links
from serving.prediction_log import PredictionLog
from serving.responses import OrjsonResponse
from serving.runtime import ModelRuntime
from serving.schemas import ScoreRequest
from serving.security_headers import harden
from serving.services import Services
from serving.wal import WalCheckpointer

log = logging.getLogger("dajia.serving")

API_VERSION = "1"
#: FastAPI's native OpenTelemetry (tracing, metrics, logs) off
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def _load_marketplace(path: Path, snapshot_at: str | None = None) -> Any:
    from marketplace.loader import load_marketplace

    return load_marketplace(path, snapshot_at)


def _sanctions_adapter(engine: Any, mp: Any) -> Any:
    """The sanction workflow's routing adapter on the app's engine (the marketplace's shops imported),
    or None if unavailable."""
    try:
        from serving.sanctions_bridge import SanctionsBridge
    except ImportError as exc:
        log.warning("sanction workflow not available: %s", exc)
        return None
    bridge = SanctionsBridge(engine)
    if mp is not None:
        bridge.import_marketplace(mp)
    return bridge


def _publish_limits(app: FastAPI, max_batch: int, rate_limited: bool) -> None:
    """The schema states this service's batch limit (``settings.max_batch``), not the model's hard ceiling,
    and the error answers and links of ``serving.openapi``."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            # POST /v1/scores parses its body itself (see routes/scores.py): publish ScoreRequest here
            body = ScoreRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in body.pop("$defs", {}).items():
                schemas.setdefault(name, sub)
            schemas["ScoreRequest"] = body
            from serving.routes.shop_events import ShopEventsIn

            events = ShopEventsIn.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in events.pop("$defs", {}).items():
                schemas.setdefault(name, sub)
            schemas["ShopEventsIn"] = events
            props = schemas["ScoreRequest"]["properties"]
            for name in ("shop_ids", "records"):
                props[name]["maxItems"] = max_batch
                props[name].pop("default", None)  # absent, not null
            declare_errors_and_links(spec, rate_limited)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: Settings, options: ServeOptions | None = None, marketplace: Any = None, online_source: Any = None
) -> FastAPI:
    """A new dajia API app. ``marketplace`` (already loaded) overrides ``options.data_dir`` (both keep the
    marketplace in memory, for in-process use). ``online_source``: a partitioned marketplace
    (``dajia.scaleout.partition``) materialised into the online store partition by partition when the
    store does not hold it for the champion's pipeline (``dajia serve --data``: nothing in memory)."""
    opts = options or ServeOptions()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # every resource's stop is registered as soon as it has started, so a start-up that fails half way
        # (a bad --data folder, a database that refuses) stops what had started; at shutdown, in reverse
        async with contextlib.AsyncExitStack() as started:
            url = settings.resolved_database_url
            local = sqlite_file(url) is not None  # a SQLite file: its write-ahead log is checkpointed here
            engine = make_engine(url, opts.log_sync, checkpoint_in_background=local)
            started.callback(engine.dispose)
            if local:  # the WAL is checkpointed by a thread of its own, never inside a request's commit
                checkpointer = WalCheckpointer(
                    engine, opts.wal_checkpoint_seconds, metrics.observe_checkpoint, metrics.checkpoint_failed
                )
                checkpointer.start()
                started.callback(checkpointer.stop)
            pred_log = PredictionLog(engine, observe=metrics.observe_commit, inline=opts.commit_on_loop(url))
            pred_log.start()
            started.callback(pred_log.stop)
            store = await asyncio.to_thread(open_online_store, settings.resolved_online_store)
            started.callback(store.close)
            mp = marketplace
            if mp is None and opts.data_dir is not None:
                mp = await asyncio.to_thread(_load_marketplace, opts.data_dir, opts.snapshot_at)
            sanctions = await asyncio.to_thread(_sanctions_adapter, engine, mp)
            if sanctions is not None and opts.outbox_seconds > 0:
                from sanctions.outbox import FileMailbox
                from serving.outbox_dispatcher import OutboxDispatcher

                mailbox = FileMailbox(opts.outbox_dir or settings.home / "outbox")
                started.callback(mailbox.close)
                dispatcher = OutboxDispatcher(sanctions.sessions, mailbox, opts.outbox_seconds, metrics.observe_outbox)
                dispatcher.start()
                started.callback(dispatcher.stop)
            build = partial(
                ModelRuntime.from_dir,
                marketplace=mp,
                threads=settings.lightgbm_threads,
                store=store,
                max_age_hours=settings.online_max_age_hours,
                source=online_source,
            )
            holder = ModelHolder(settings, opts, build, metrics)
            services = Services(
                settings=settings,
                options=opts,
                engine=engine,
                keys=ApiKeyStore(engine, opts.auth_cache_seconds),
                log=pred_log,
                metrics=metrics,
                holder=holder,
                marketplace=mp,
                sanctions=sanctions,
            )
            await holder.start()
            started.push_async_callback(holder.stop)
            # the heap now holds MLflow, pandas, the model and the feature matrix: move it out of the cyclic
            # GC's reach so a full collection does not stall requests (tail latency) scanning it again
            gc.collect()
            gc.freeze()
            yield {"services": services}

    app = FastAPI(
        title="dajia API",
        version=API_VERSION,
        summary="Scores marketplace shops for counterfeiting risk and drives the sanction workflow.",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        openapi_url="/openapi.json",
        # FastAPI's native OpenTelemetry asks the global providers on every request (environment reads
        # included); the service's metrics are Prometheus (``/metrics``): off, it is one dictionary check
        telemetry=NO_TELEMETRY,
    )
    install_error_handlers(app)
    from serving.routes import health, predictions, scores, shop_events

    app.include_router(health.router)
    app.include_router(scores.router)
    app.include_router(shop_events.router)
    app.include_router(predictions.router)
    try:
        sanctions_routes = importlib.import_module("serving.routes.sanctions")
    except ImportError as exc:
        log.warning("sanction routes not mounted: %s", exc)
    else:
        sanctions_routes.mount(app)
        from serving.routes import public_pages

        public_pages.mount(app)
    from serving.console import mount as mount_console

    mount_console(app)
    _publish_limits(app, settings.max_batch, settings.public_rate_per_minute > 0)
    app.add_middleware(scores.ScoresFastPath, api=app)  # innermost: POST /v1/scores past the router
    harden(app, settings)  # security headers, public rate limit (inside the request-id middleware)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics, max_body_bytes=opts.max_body_bytes)
    app.state.metrics = metrics
    return app
