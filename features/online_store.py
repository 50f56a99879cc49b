"""The online feature store: each shop's feature row, keyed by shop id, for scoring by id.

The offline/online split of feature stores (Feast's convention): the batch path (the sweep) computes
every shop's features through the one fitted pipeline and *materialises* them here; the service reads
one row by primary key per shop instead of holding the marketplace in memory. Each row records what it
was built for and when:

- ``pipeline``: the digest of the fitted feature pipeline (:func:`pipeline_digest`) — the model version
  the row fits; a row built for another pipeline is never scored by this one;
- ``as_of``: the point in time of its features (events strictly before it);
- ``refreshed_at``: when it was last computed (wall clock), so a row can be called too old.

Beside each row the store keeps the shop's history (its data-contract ``ShopRecord``, zlib-compressed
JSON) so new events for one shop (an order, a complaint, a listing edit) recompute its row with the
same pipeline, without the marketplace (:func:`refresh_shop`).

The store is one SQLite file (WAL, no memory map; chosen by measurement against Redis and PostgreSQL, see
docs/architecture.md): a point lookup by primary key is a few microseconds in-process, a network
round trip is tens to hundreds. Readers hold one connection per thread; writers write in chunks, one
transaction per chunk, never the whole marketplace in one.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from numpy.typing import NDArray

from core.errors import Conflict, DajiaError, NotFound

SCHEMA_VERSION = 1
#: rows written per transaction by :meth:`OnlineStore.put_rows`
CHUNK_ROWS = 5_000
#: ids per ``IN (...)`` query (SQLite's default variable limit is far above; a batch is 1,000 at most)
_IN_CHUNK = 500

_DDL = (
    """CREATE TABLE IF NOT EXISTS online_rows (
        shop_id TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        as_of INTEGER NOT NULL,
        refreshed_at INTEGER NOT NULL,
        features BLOB NOT NULL
    ) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS online_history (shop_id TEXT PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS online_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
)


class OnlineStoreError(DajiaError):
    """The online store cannot be opened or does not hold what was asked."""


# --------------------------------------------------------------------------- pipeline digest


def _feed(h: Any, obj: Any, seen: dict[int, Any]) -> None:
    """Feed ``obj`` into the hash ``h`` canonically: the same fitted state gives the same bytes in every
    process (sets sorted, dicts by key, arrays by dtype, shape and bytes), unlike ``pickle``. ``seen``
    keeps every object it has entered alive, so the id of a temporary is never reused within one digest."""
    if obj is None or isinstance(obj, bool | int | float | complex | str | bytes):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
        return
    if isinstance(obj, np.generic):
        h.update(f"np:{obj.dtype}:{obj!r};".encode())
        return
    if id(obj) in seen:
        h.update(b"<cycle>;")
        return
    seen[id(obj)] = obj
    if isinstance(obj, np.ndarray):
        h.update(f"nd:{obj.dtype}:{obj.shape};".encode())
        if obj.dtype == object:
            for v in obj.ravel().tolist():
                _feed(h, v, seen)
        else:
            h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, pd.DataFrame):
        h.update(b"df;")
        _feed(h, obj.columns, seen)
        _feed(h, obj.index, seen)
        for c in obj.columns:
            _feed(h, obj[c].to_numpy(dtype=object) if obj[c].dtype == object else obj[c].to_numpy(), seen)
    elif isinstance(obj, pd.Series | pd.Index):
        h.update(f"{type(obj).__name__}:{obj.dtype};".encode())
        values = obj.to_numpy()
        _feed(h, values.astype(object) if values.dtype.kind in "OUST" or str(obj.dtype) == "str" else values, seen)
    elif isinstance(obj, Mapping):
        h.update(b"map;")
        for k in sorted(obj, key=repr):
            _feed(h, k, seen)
            _feed(h, obj[k], seen)
    elif isinstance(obj, set | frozenset):
        h.update(b"set;")
        for v in sorted(obj, key=repr):
            _feed(h, v, seen)
    elif isinstance(obj, list | tuple):
        h.update(f"{type(obj).__name__}:{len(obj)};".encode())
        for v in obj:
            _feed(h, v, seen)
    elif hasattr(obj, "__dict__") or hasattr(obj, "__slots__"):
        h.update(f"obj:{type(obj).__module__}.{type(obj).__qualname__};".encode())
        state = dict(vars(obj)) if hasattr(obj, "__dict__") else {}
        for slot in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, slot):
                state[slot] = getattr(obj, slot)
        _feed(h, {k: v for k, v in state.items() if not k.startswith("_online")}, seen)
    else:
        h.update(f"repr:{type(obj).__qualname__}:{obj!r};".encode())


def pipeline_digest(pipeline: Any) -> str:
    """A short digest of a fitted feature pipeline's whole state (the "model version" of a feature row):
    equal in every process for the same fitted pipeline, different when anything it learned differs.
    Cached on the object (it is fitted state, never changed after ``fit``)."""
    cached = getattr(pipeline, "_online_digest", None)
    if isinstance(cached, str):
        return cached
    h = hashlib.sha256()
    _feed(h, pipeline, {})
    digest = h.hexdigest()[:24]
    with contextlib.suppress(AttributeError):  # slots-only objects: not cached
        pipeline._online_digest = digest
    return digest


# --------------------------------------------------------------------------- rows


def now_us() -> int:
    return time.time_ns() // 1000


def ts_us(ts: pd.Timestamp) -> int:
    t = pd.Timestamp(ts)
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return int(t.to_datetime64().astype("datetime64[us]").astype(np.int64))


def us_ts(us: int) -> pd.Timestamp:
    return pd.Timestamp(us, unit="us")


@dataclass(frozen=True)
class OnlineRow:
    """One shop's materialised features (in the pipeline's output order) and what they were built for."""

    shop_id: str
    pipeline: str
    as_of_us: int
    refreshed_us: int
    values: NDArray[np.float64]


def encode_record(record: Mapping[str, Any]) -> bytes:
    return zlib.compress(orjson.dumps(record, option=orjson.OPT_NAIVE_UTC), 3)


def decode_record(blob: bytes) -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(zlib.decompress(blob))
    return out


class OnlineStore:
    """The online store in one SQLite file (see module doc). Thread-safe: one connection per thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            for ddl in _DDL:
                conn.execute(ddl)
            conn.execute(
                "INSERT OR IGNORE INTO online_meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            version = conn.execute("SELECT value FROM online_meta WHERE key='schema_version'").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise OnlineStoreError(f"online store {self.path}: cannot open ({exc})") from None
        finally:
            conn.close()
        if version != str(SCHEMA_VERSION):
            raise OnlineStoreError(
                f"online store {self.path}: schema version {version}, this code reads {SCHEMA_VERSION}"
            )

    def _connect(self) -> sqlite3.Connection:
        # autocommit (isolation_level=None): each read sees the latest committed rows; writers BEGIN IMMEDIATE
        conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=60000")
        # no mmap: pages read through a memory map count in the process's RSS, which would then grow with
        # the store (the OS page cache holds them either way, outside the process)
        return conn

    @property
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            conns = self.__dict__.setdefault("_all", [])
            conns.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.__dict__.pop("_all", []):
            conn.close()
        self._local = threading.local()

    # -- reads (the hot path) ------------------------------------------------------------------------
    def get(self, shop_id: str) -> OnlineRow | None:
        """One shop's row by primary key, or None."""
        hit = self._conn.execute(
            "SELECT pipeline, as_of, refreshed_at, features FROM online_rows WHERE shop_id = ?", (shop_id,)
        ).fetchone()
        if hit is None:
            return None
        return OnlineRow(shop_id, hit[0], hit[1], hit[2], np.frombuffer(hit[3], dtype=np.float64))

    def get_many(self, shop_ids: Sequence[str]) -> dict[str, OnlineRow]:
        """The rows of ``shop_ids`` that the store holds (absent ids are absent from the result)."""
        if len(shop_ids) == 1:
            row = self.get(shop_ids[0])
            return {} if row is None else {row.shop_id: row}
        out: dict[str, OnlineRow] = {}
        conn = self._conn
        unique = list(dict.fromkeys(shop_ids))
        for lo in range(0, len(unique), _IN_CHUNK):
            part = unique[lo : lo + _IN_CHUNK]
            marks = ",".join("?" * len(part))
            sql = f"SELECT shop_id, pipeline, as_of, refreshed_at, features FROM online_rows WHERE shop_id IN ({marks})"
            for sid, pipe, as_of, refreshed, blob in conn.execute(sql, part):
                out[sid] = OnlineRow(sid, pipe, as_of, refreshed, np.frombuffer(blob, dtype=np.float64))
        return out

    def history(self, shop_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored histories (``ShopRecord`` dicts) of ``shop_ids`` that the store holds."""
        out: dict[str, dict[str, Any]] = {}
        conn = self._conn
        for lo in range(0, len(shop_ids), _IN_CHUNK):
            part = list(shop_ids[lo : lo + _IN_CHUNK])
            marks = ",".join("?" * len(part))
            for sid, blob in conn.execute(
                f"SELECT shop_id, record FROM online_history WHERE shop_id IN ({marks})", part
            ):
                out[sid] = decode_record(blob)
        return out

    def count(self, pipeline: str | None = None) -> int:
        if pipeline is None:
            return int(self._conn.execute("SELECT count(*) FROM online_rows").fetchone()[0])
        return int(self._conn.execute("SELECT count(*) FROM online_rows WHERE pipeline = ?", (pipeline,)).fetchone()[0])

    def meta(self, key: str) -> str | None:
        hit = self._conn.execute("SELECT value FROM online_meta WHERE key = ?", (key,)).fetchone()
        return None if hit is None else str(hit[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._write_lock:
            self._conn.execute("INSERT OR REPLACE INTO online_meta(key, value) VALUES (?, ?)", (key, value))

    # -- writes ---------------------------------------------------------------------------------------
    def put_rows(
        self,
        pipeline: str,
        as_of: pd.Timestamp,
        shop_ids: Sequence[str],
        values: NDArray[np.float64],
        histories: Sequence[Mapping[str, Any]] | None = None,
        refreshed_us: int | None = None,
    ) -> int:
        """Upsert the rows (and histories) of ``shop_ids``: ``values`` one row per shop in the pipeline's
        output order. One transaction per :data:`CHUNK_ROWS` shops. Returns the rows written."""
        X = np.ascontiguousarray(values, dtype=np.float64)
        if X.shape[0] != len(shop_ids):
            raise ValueError(f"{len(shop_ids)} shop ids but {X.shape[0]} feature rows")
        at, when = ts_us(as_of), refreshed_us if refreshed_us is not None else now_us()
        for lo in range(0, len(shop_ids), CHUNK_ROWS):
            hi = min(lo + CHUNK_ROWS, len(shop_ids))
            rows = [(str(shop_ids[i]), pipeline, at, when, X[i].tobytes()) for i in range(lo, hi)]
            hist = (
                [(str(shop_ids[i]), encode_record(histories[i])) for i in range(lo, hi)]
                if histories is not None
                else None
            )
            with self.transaction() as conn:
                conn.executemany("INSERT OR REPLACE INTO online_rows VALUES (?, ?, ?, ?, ?)", rows)
                if hist:
                    conn.executemany("INSERT OR REPLACE INTO online_history VALUES (?, ?)", hist)
        return len(shop_ids)

    class _Tx:
        def __init__(self, store: OnlineStore) -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._write_lock.acquire()
            conn = self.store._conn
            conn.execute("BEGIN IMMEDIATE")
            return conn

        def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
            conn = self.store._conn
            try:
                conn.execute("ROLLBACK" if kind is not None else "COMMIT")
            finally:
                self.store._write_lock.release()

    def transaction(self) -> OnlineStore._Tx:
        """``with store.transaction() as conn``: one write transaction (``BEGIN IMMEDIATE``)."""
        return OnlineStore._Tx(self)


def open_online_store(url_or_path: str | Path) -> OnlineStore:
    """The store at a ``sqlite:///path`` URL or a file path."""
    text = str(url_or_path)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        raise OnlineStoreError(
            f"online store {text!r}: only a SQLite file (sqlite:///PATH or a path) is supported as the store; "
            "see docs/architecture.md for the measurement behind the choice"
        )
    return OnlineStore(Path(text))


# --------------------------------------------------------------------------- materialise and refresh


def histories_of(tables: Mapping[str, Any], shop_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Each shop's history as a data-contract ``ShopRecord`` dict (JSON types), in ``shop_ids`` order."""
    from marketplace.records import records_from_frames

    return [r.model_dump(mode="json") for r in records_from_frames(tables, shop_ids)]


def materialise(
    store: OnlineStore,
    pipeline: Any,
    mp: Any,
    as_of: pd.Timestamp,
    shop_ids: Sequence[str] | None = None,
    features: pd.DataFrame | None = None,
    chunk_shops: int = 20_000,
) -> int:
    """Compute (or take, ``features``: the pipeline's output for these shops) the rows of ``shop_ids``
    (default every shop of ``mp``) as of ``as_of`` and write them with their histories, in chunks."""
    from features.context import as_tables

    digest = pipeline_digest(pipeline)
    tables = as_tables(mp)
    ids = [str(s) for s in (tables["shops"]["shop_id"].tolist() if shop_ids is None else shop_ids)]
    names = list(pipeline.get_feature_names_out())
    written = 0
    for lo in range(0, len(ids), chunk_shops):
        part = ids[lo : lo + chunk_shops]
        if features is not None:
            frame = features.loc[part, names]
        else:
            frame = pipeline.transform(mp, as_of, shop_ids=part)[names]
        written += store.put_rows(digest, as_of, part, frame.to_numpy(dtype=np.float64), histories_of(tables, part))
    return written


#: the event kinds a shop's history takes, and the id field that makes each event unique
EVENT_KEYS = {
    "orders": "order_id",
    "complaints": "complaint_id",
    "reviews": "review_id",
    "listings": "listing_id",
    "listing_edits": "edit_id",
}
_EVENT_TIMES = {
    "orders": ("ordered_at", "refunded_at"),
    "complaints": ("filed_at",),
    "reviews": ("created_at",),
    "listings": ("created_at", "delisted_at"),
    "listing_edits": ("edited_at",),
}


class ShopNotStored(NotFound):
    """The online store holds no history for the shop (its events cannot be merged into nothing)."""


class EventConflict(Conflict):
    """An event reuses the id of a different event already in the shop's history."""


@dataclass(frozen=True)
class RefreshResult:
    shop_id: str
    added: dict[str, int]
    replaced: dict[str, int]
    unchanged: int
    as_of: pd.Timestamp
    pipeline: str


def merge_events(
    history: dict[str, Any], events: Mapping[str, Iterable[Mapping[str, Any]]]
) -> tuple[dict[str, Any], dict[str, int], dict[str, int], int, list[pd.Timestamp]]:
    """``history`` with ``events`` merged in by id: a new id is added; the same event again changes
    nothing; a listing with a known id replaces it (a listing edit or delisting); any other event that
    reuses an id with other content is an ``EventConflict``. Returns (record, added, replaced,
    unchanged, the new events' times)."""
    out = dict(history)
    added: dict[str, int] = {}
    replaced: dict[str, int] = {}
    unchanged = 0
    times: list[pd.Timestamp] = []
    for kind, items in events.items():
        key = EVENT_KEYS[kind]
        current = list(out.get(kind) or [])
        where = {str(e[key]): i for i, e in enumerate(current)}
        for item in items:
            ev = dict(item)
            if kind != "listing_edits" and ev.get("shop_id") is None:
                ev["shop_id"] = out["shop_id"]
            i = where.get(str(ev[key]))
            if i is not None and current[i] == ev:
                unchanged += 1
                continue
            if i is not None and kind != "listings":
                raise EventConflict(
                    f"{kind}: {key} {ev[key]!r} is already in shop {out['shop_id']!r}'s history with other values; "
                    "an event is never rewritten (send a new id)"
                )
            if i is None:
                where[str(ev[key])] = len(current)
                current.append(ev)
                added[kind] = added.get(kind, 0) + 1
            else:
                current[i] = ev
                replaced[kind] = replaced.get(kind, 0) + 1
            times += [pd.Timestamp(ev[t]) for t in _EVENT_TIMES[kind] if ev.get(t) is not None]
        out[kind] = current
    return out, added, replaced, unchanged, times


def refresh_shop(
    store: OnlineStore, pipeline: Any, shop_id: str, events: Mapping[str, Iterable[Mapping[str, Any]]]
) -> RefreshResult:
    """Merge ``events`` (JSON-typed dicts per kind of :data:`EVENT_KEYS`) into the shop's stored
    history and recompute its row with ``pipeline`` as of just after the newest event it holds (never
    earlier than the row's as-of), in one write transaction. ``OnlineStoreError`` when the store holds
    no history for the shop. Features of a refreshed row see the pipeline's fit-time adverse-linkage
    index (as inline records do), not verdicts of the marketplace newer than the fit."""
    from marketplace.records import ShopRecord
    from marketplace.tables import scoring_time

    digest = pipeline_digest(pipeline)
    names = list(pipeline.get_feature_names_out())
    with store.transaction() as conn:
        hit = conn.execute("SELECT record FROM online_history WHERE shop_id = ?", (shop_id,)).fetchone()
        if hit is None:
            raise ShopNotStored(
                f"shop {shop_id!r} is not in the online store: sweep its marketplace first "
                "(dajia sweep), or score it with inline records"
            )
        row = conn.execute("SELECT as_of, pipeline FROM online_rows WHERE shop_id = ?", (shop_id,)).fetchone()
        record, added, replaced, unchanged, times = merge_events(decode_record(hit[0]), events)
        rec = ShopRecord.model_validate(record)  # the merged history is a valid contract record
        as_of = us_ts(row[0]) if row is not None else scoring_time(pd.Timestamp(rec.opened_at))
        if times:
            as_of = max(as_of, scoring_time(max(times)))
        if not added and not replaced and row is not None and row[1] == digest:
            return RefreshResult(shop_id, added, replaced, unchanged, as_of, digest)
        frame = pipeline.transform_records([rec], as_of)[names]
        blob = np.ascontiguousarray(frame.to_numpy(dtype=np.float64)[0]).tobytes()
        conn.execute(
            "INSERT OR REPLACE INTO online_rows VALUES (?, ?, ?, ?, ?)", (shop_id, digest, ts_us(as_of), now_us(), blob)
        )
        conn.execute(
            "INSERT OR REPLACE INTO online_history VALUES (?, ?)",
            (shop_id, encode_record(rec.model_dump(mode="json"))),
        )
    return RefreshResult(shop_id, added, replaced, unchanged, as_of, digest)


def iter_chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for lo in range(0, len(items), size):
        yield items[lo : lo + size]
