"""Options of one serving process that are not shared settings (they come from ``dajia serve``'s flags).

Shared configuration (database, registry, batch limit, LightGBM threads) lives in
:class:`core.settings.Settings`; this holds what only the HTTP service needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings


@dataclass(frozen=True)
class ServeOptions:
    #: marketplace folder whose shops can be scored by id (loaded once at start); None: inline only
    data_dir: Path | None = None
    #: the folder's snapshot time when it has no manifest (``--snapshot-at``); None: the manifest's
    snapshot_at: str | None = None
    #: how often the registry alias is polled for a new champion
    poll_seconds: float = 30.0
    #: also score the ``challenger`` alias and log it with a shadow flag (never returned)
    shadow: bool = False
    #: requests with a larger body get 413; the default takes the documented largest batch (1,000 inline shops
    #: with their history, ~12 MB as ASCII-escaped JSON) with room to spare
    max_body_bytes: int = 24 * 1024 * 1024
    #: a registry call slower than this counts as "registry unreachable"
    registry_timeout_seconds: float = 20.0
    #: where the last good model is kept for starts with the registry down; default <home>/serving-cache
    cache_dir: Path | None = None
    #: how long an authenticated key stays cached in memory (revocation takes effect within this)
    auth_cache_seconds: float = 5.0
    #: SQLite only: "NORMAL" (a logged score survives the process being killed) or "FULL" (also a power cut)
    log_sync: str = "NORMAL"
    #: where prediction-log commits run: "loop" (on the event loop: for SQLite a local commit costs less than
    #: a thread hop), "thread" (a writer thread: for a database across the network), "auto" (by the URL)
    log_commit: str = "thread"
    #: SQLite only: seconds between the background checkpoints of the write-ahead log (``serving.wal``)
    wal_checkpoint_seconds: float = 1.0
    #: seconds between the outbox dispatcher's ticks (``serving.outbox_dispatcher``); 0: no dispatcher
    outbox_seconds: float = 1.0
    #: where the dispatcher files the messages it delivers; default <home>/outbox
    outbox_dir: Path | None = None
    #: model alias served and the shadow alias
    alias: str = "champion"
    shadow_alias: str = "challenger"

    def commit_on_loop(self, database_url: str) -> bool:
        if self.log_commit not in ("auto", "loop", "thread"):
            raise ValueError(f"log_commit must be auto, loop or thread, got {self.log_commit!r}")
        if self.log_commit == "auto":
            return database_url.startswith("sqlite")
        return self.log_commit == "loop"

    def resolved_cache_dir(self, settings: Settings) -> Path:
        return (self.cache_dir or settings.home / "serving-cache").resolve()
