"""Which model the service scores with, and how it changes.

At start the holder resolves the registry alias (``champion``), downloads that version into an
on-disk cache under the home folder and builds a :class:`~serving.runtime.ModelRuntime` from the
local copy. A background task polls the alias; when it moves, the new version is downloaded and
built off the event loop, then swapped in with one reference assignment, so a request that already
took the old runtime finishes on it. Any registry failure keeps the last good model. With the
registry down at start, the last good model recorded in the cache is loaded and ``/readyz`` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.settings import Settings
from serving.config import ServeOptions
from serving.metrics import Metrics

log = logging.getLogger("dajia.serving")


@dataclass(frozen=True)
class Served:
    """One loaded model version with where it came from."""

    runtime: Any
    name: str
    version: str
    alias: str
    #: "registry" or "cache" (registry unreachable at start)
    source: str
    loaded_at: datetime

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "source": self.source,
            "cached_fallback": self.source == "cache",
            "loaded_at": self.loaded_at.isoformat(),
        }


#: builds a runtime from a local MLflow model folder: (path, name, version) -> runtime
RuntimeBuilder = Callable[[Path, str, str], Any]


class RegistryUnavailable(Exception):
    """The registry did not answer (or answered with an error) in time."""


class ModelHolder:
    def __init__(self, settings: Settings, options: ServeOptions, build: RuntimeBuilder, metrics: Metrics) -> None:
        self.settings = settings
        self.options = options
        self.build = build
        self.metrics = metrics
        self.name = settings.model_name
        self.cache_dir = options.resolved_cache_dir(settings)
        self.current: Served | None = None
        self.shadow: Served | None = None
        self.last_error: str | None = None
        self.last_poll_at: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="registry")

    # ---- registry access (blocking; run in threads) -------------------------------------------
    def _client(self) -> Any:
        from mlflow import MlflowClient

        uri = self.settings.resolved_tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def _resolve(self, alias: str) -> str | None:
        """The version behind ``alias``; None if the alias is not set."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self._client().get_model_version_by_alias(self.name, alias)
        except MlflowException as exc:
            code = getattr(exc, "error_code", "")
            if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        return str(mv.version)

    def _version_dir(self, version: str) -> Path:
        return self.cache_dir / self.name / version

    def _download(self, version: str) -> Path:
        """The model version's files in the cache (downloaded once; complete or absent)."""
        import mlflow.artifacts

        target = self._version_dir(version)
        if (target / ".complete").exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
        try:
            uri = self.settings.resolved_tracking_uri
            # resolve the version's source through our client: MLflow 3 resolves a ``models:/`` URI against
            # the process-wide registry, ignoring ``registry_uri`` (a local SQLite registry was "not found")
            source = self._client().get_model_version_download_uri(self.name, version)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(tmp), tracking_uri=uri, registry_uri=uri
            )
            if target.exists():
                shutil.rmtree(target)
            Path(local).rename(target)
            (target / ".complete").write_text(datetime.now(UTC).isoformat())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def _record_last_good(self, alias: str, version: str) -> None:
        path = self.cache_dir / self.name / "last_good.json"
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:
            data = {}
        data[alias] = {"version": version, "recorded_at": datetime.now(UTC).isoformat()}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)

    def _last_good(self, alias: str) -> str | None:
        path = self.cache_dir / self.name / "last_good.json"
        try:
            entry = json.loads(path.read_text()).get(alias)
        except (OSError, ValueError):
            return None
        if not entry:
            return None
        version = str(entry["version"])
        return version if (self._version_dir(version) / ".complete").exists() else None

    def _load(self, alias: str, version: str, source: str) -> Served:
        t0 = time.perf_counter()
        path = self._version_dir(version) if source == "cache" else self._download(version)
        runtime = self.build(path, self.name, version)
        if source == "registry":
            self._record_last_good(alias, version)
        log.info(
            "loaded %s version %s (%s) from %s in %.1fs", self.name, version, alias, source, time.perf_counter() - t0
        )
        return Served(runtime, self.name, version, alias, source, datetime.now(UTC))

    # ---- async orchestration -------------------------------------------------------------------
    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a registry call in the registry pool, giving up waiting after the timeout.

        A call that hangs keeps its pool thread, not the event loop; the pool is not awaited at shutdown.
        """
        loop = asyncio.get_running_loop()
        try:
            fut = loop.run_in_executor(self._pool, fn, *args)
            return await asyncio.wait_for(fut, self.options.registry_timeout_seconds)
        except TimeoutError as exc:
            raise RegistryUnavailable(f"registry did not answer in {self.options.registry_timeout_seconds:g}s") from exc

    async def start(self) -> None:
        """Load the champion (registry, else cache) and the shadow model; start polling."""
        try:
            version = await self._call(self._resolve, self.options.alias)
            if version is None:
                self.last_error = f"alias {self.options.alias!r} of model {self.name!r} is not set"
            else:
                self.current = await asyncio.to_thread(self._load, self.options.alias, version, "registry")
        except Exception as exc:
            self.metrics.registry_errors.inc()
            self.last_error = f"registry unreachable: {type(exc).__name__}: {exc}"
            log.warning("%s; trying the cached model", self.last_error)
            cached = self._last_good(self.options.alias)
            if cached is not None:
                self.current = await asyncio.to_thread(self._load, self.options.alias, cached, "cache")
        if self.options.shadow:
            await self._refresh_shadow()
        self._publish()
        self._task = asyncio.create_task(self._poll_forever(), name="model-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _publish(self) -> None:
        if self.current is not None:
            self.metrics.set_model(
                self.current.name,
                self.current.version,
                self.current.source,
                self.shadow.version if self.shadow else None,
            )

    async def _refresh_shadow(self) -> None:
        try:
            version = await self._call(self._resolve, self.options.shadow_alias)
        except Exception as exc:
            self.metrics.registry_errors.inc()
            self.last_error = f"registry unreachable: {type(exc).__name__}: {exc}"
            return
        if version is None:
            self.shadow = None
        elif self.shadow is None or self.shadow.version != version:
            try:
                self.shadow = await asyncio.to_thread(self._load, self.options.shadow_alias, version, "registry")
            except Exception as exc:
                self.last_error = f"shadow model {version} failed to load: {type(exc).__name__}: {exc}"

    async def poll_once(self) -> bool:
        """Check the alias once; True when a new champion was swapped in."""
        self.last_poll_at = datetime.now(UTC)
        swapped = False
        try:
            version = await self._call(self._resolve, self.options.alias)
        except Exception as exc:
            self.metrics.registry_errors.inc()
            self.last_error = f"registry unreachable: {type(exc).__name__}: {exc}"
            return False
        current = self.current
        if version is not None and (current is None or current.version != version or current.source == "cache"):
            try:
                new = await asyncio.to_thread(self._load, self.options.alias, version, "registry")
            except Exception as exc:
                self.last_error = f"version {version} failed to load, keeping the last good model: {exc}"
                log.warning(self.last_error)
                return False
            # atomic swap: in-flight requests keep the runtime they took. No gc.freeze() here: it would
            # also freeze the loading's cyclic garbage and the old model's cycles (still referenced at this
            # point), and frozen objects are never collected: ~350 objects a reload. The new model's
            # objects stay with the cyclic GC (only the start-up heap is frozen, see serving.app).
            self.current = new
            if current is not None and current.version != new.version:
                self.metrics.model_reloads.inc()
            swapped = True
        self.last_error = None
        if self.options.shadow:
            await self._refresh_shadow()
        self._publish()
        return swapped

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.options.poll_seconds)
            try:
                await self.poll_once()
            except Exception as exc:  # never let the poller die
                self.last_error = f"poll failed: {type(exc).__name__}: {exc}"
                log.exception("model poll failed")
