"""Splitting a marketplace by shop into partitions on disk (streamed), and loading one partition.

Layout written under the destination folder (any fsspec path)::

    partitions.json                    n, snapshot_at, source fingerprint (written last: marks completion)
    global/brands.parquet              small global tables every partition needs
    global/verdicts.parquet
    global/verdict_shops.parquet       shop rows of every shop with a verdict (the linkage features'
                                       adverse identifiers)
    part-00000/<table>.parquet         shops, authorisations, listings, listing_edits, orders,
    ...                                complaints, reviews of the shops with hash(shop_id) % n == 0

Why a pre-pass instead of filters on the original files: the original files are ordered however the
exporter wrote them, so "the rows of these shops" is a full scan per partition. One streamed pass
(row batches in, one writer per partition out) costs a single read of the data and bounded memory;
``listing_edits`` (keyed by listing, not shop) goes through an external hash join on ``listing_id``
so no listing-to-shop map of the whole marketplace is ever held in memory.

A loaded partition is validated by the loader's own ``validate_raw``: the same dtypes and the same
contract checks as ``load_marketplace``, so the feature pipeline sees exactly the frames it would see
for the whole marketplace, restricted to the partition's shops.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.errors import DajiaError, DataContractError
from dajia.scaleout.storage import Location, raw_table, snapshot_of, table_file
from marketplace.records import CHILD_TABLES
from marketplace.schema import TABLES_BY_NAME
from marketplace.tables import Marketplace
from marketplace.validate import validate_raw

if TYPE_CHECKING:
    from distributed import Client

LAYOUT_FILE = "partitions.json"
LAYOUT_VERSION = 1
#: tables split by the shop they belong to: shops and a record's child tables (listing_edits through its listing)
PART_TABLES: tuple[str, ...] = ("shops", *CHILD_TABLES)
#: small tables every partition reads whole
GLOBAL_TABLES = ("brands", "verdicts")
VERDICT_SHOPS = "verdict_shops"
DEFAULT_SHOPS_PER_PARTITION = 50_000
DEFAULT_BATCH_ROWS = 200_000


class PartitionError(DajiaError):
    """A partitioned marketplace folder is missing, stale or unreadable."""


def part_name(i: int) -> str:
    return f"part-{i:05d}"


def _strings(column: pa.Array | pa.ChunkedArray, table: str, name: str) -> np.ndarray:
    """An id column as an object array of str (nulls as ""), for hashing."""
    try:
        text = pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataContractError(table, name, f"ids must be text: {exc}") from None
    values: np.ndarray = pc.fill_null(text, "").to_numpy(zero_copy_only=False)
    return values


def partition_of(ids: Any, n: int) -> np.ndarray:
    """Partition number of each id: a stable 64-bit hash (pandas' SipHash with its fixed key) mod ``n``.

    Stable across processes, machines and Python versions (unlike ``hash``), so workers and the
    client agree on where a shop lives."""
    values = np.asarray(ids, dtype=object)
    if len(values) == 0:
        return np.empty(0, dtype=np.int64)
    h = pd.util.hash_array(values, categorize=False)
    return (h % np.uint64(n)).astype(np.int64)


class _Scatter:
    """One Parquet writer per partition for one table; rows routed by partition number."""

    def __init__(self, dst: Location, n: int, schema: pa.Schema, filename: str, folder: str | None = None):
        self.dst, self.n, self.schema, self.filename, self.folder = dst, n, schema, filename, folder
        self.writers: dict[int, pq.ParquetWriter] = {}
        self.rows = 0

    def _names(self, p: int) -> tuple[str, ...]:
        if self.folder is None:
            return (part_name(p), self.filename)
        return (self.folder, f"{self.filename}-{p:05d}.parquet")

    def _writer(self, p: int) -> pq.ParquetWriter:
        w = self.writers.get(p)
        if w is None:
            w = self.writers[p] = self.dst.writer(self.schema, *self._names(p))
        return w

    def write(self, table: pa.Table, parts: np.ndarray) -> None:
        if table.num_rows == 0:
            return
        order = np.argsort(parts, kind="stable")
        sorted_parts = parts[order]
        bounds = np.flatnonzero(np.diff(sorted_parts)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [len(order)]))
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            p = int(sorted_parts[lo])
            self._writer(p).write_table(table.take(pa.array(order[lo:hi])).cast(self.schema))
        self.rows += table.num_rows

    def close(self, all_parts: bool = True) -> None:
        if all_parts:
            for p in range(self.n):
                self._writer(p)  # every partition gets every table, empty if need be
        for w in self.writers.values():
            w.close()
        self.writers.clear()


def _batches(src: Location, filename: str, batch_rows: int) -> Iterator[pa.Table]:
    pf = src.parquet_file(filename)
    for batch in pf.iter_batches(batch_size=batch_rows):
        yield pa.Table.from_batches([batch])


def _fingerprint(src: Location, files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for table, name in sorted(files.items()):
        info = src.fs.info(src.path(name))
        h.update(f"{table}:{info.get('size')}:{info.get('mtime', info.get('LastModified', ''))}\n".encode())
    return h.hexdigest()[:24]


def source_fingerprint(src: Location) -> str:
    """The fingerprint of the marketplace folder ``src`` (its Parquet tables' sizes and times)."""
    files: dict[str, str] = {}
    for name in (*PART_TABLES, *GLOBAL_TABLES):
        f = table_file(src, TABLES_BY_NAME[name])
        if f is not None:
            files[name] = f
    return _fingerprint(src, files)


#: where the shared partitioned copies of a marketplace live by default: beside its tables
DEFAULT_PARTITIONS_FOLDER = "_partitions"


def partitions_root(source: str, root: str | None = None) -> str:
    """The folder that holds ``source``'s partitioned copies: ``root``, else ``<source>/_partitions``."""
    return (root or f"{Location.of(source).url}/{DEFAULT_PARTITIONS_FOLDER}").rstrip("/")


def shared_partitions(
    source: str,
    root: str | None = None,
    *,
    shops_per_partition: int = DEFAULT_SHOPS_PER_PARTITION,
    client: Client | None = None,
    snapshot_at: object = None,
) -> PartitionedMarketplace:
    """The one partitioned copy of the marketplace ``source`` for its current content and this partition
    size, made on first use and reused by features, training and sweeps: ``<root>/<fingerprint>-s<size>``
    (the fingerprint covers the tables' sizes and times, so a changed marketplace gets a new copy and
    ``dajia partitions clean`` removes the old ones). Made on the workers when a ``client`` is given."""
    fingerprint = source_fingerprint(Location.of(source))
    dest = f"{partitions_root(source, root)}/{fingerprint}-s{int(shops_per_partition)}"
    return partition_marketplace(
        source, dest, shops_per_partition=shops_per_partition, client=client, snapshot_at=snapshot_at
    )


def clean_partitions(source: str, root: str | None = None, *, everything: bool = False) -> dict[str, object]:
    """Remove the partitioned copies of ``source`` that no longer match its content (all with ``everything``)."""
    base = Location.of(partitions_root(source, root))
    current = source_fingerprint(Location.of(source))
    kept: list[str] = []
    removed: list[str] = []
    freed = 0
    base.fs.invalidate_cache()
    if base.exists():
        for entry in base.fs.ls(base.root, detail=True):
            name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
            if not everything and name.startswith(f"{current}-"):
                kept.append(name)
                continue
            path = str(entry["name"])
            freed += int(sum(int(v.get("size") or 0) for v in base.fs.find(path, detail=True).values()))
            base.fs.rm(path, recursive=True)
            removed.append(name)
    base.fs.invalidate_cache()
    return {"root": base.url, "fingerprint": current, "kept": kept, "removed": removed, "bytes_freed": freed}


@dataclass(frozen=True)
class PartitionedMarketplace:
    """A marketplace split by shop into ``n_partitions`` folders under ``url`` (see module doc)."""

    url: str
    n_partitions: int
    snapshot_at: pd.Timestamp
    shops: int
    source: str
    fingerprint: str
    rows: dict[str, int]

    @property
    def location(self) -> Location:
        return Location.of(self.url)

    @classmethod
    def open(cls, url: str) -> PartitionedMarketplace:
        loc = Location.of(url)
        if not loc.exists(LAYOUT_FILE):
            raise PartitionError(f"{url}: no {LAYOUT_FILE}; not a (complete) partitioned marketplace")
        doc = json.loads(loc.read_text(LAYOUT_FILE))
        if doc.get("version") != LAYOUT_VERSION:
            raise PartitionError(f"{url}: layout version {doc.get('version')!r}, expected {LAYOUT_VERSION}")
        return cls(
            url=loc.url,
            n_partitions=int(doc["n_partitions"]),
            snapshot_at=pd.Timestamp(doc["snapshot_at"]),
            shops=int(doc["shops"]),
            source=str(doc["source"]),
            fingerprint=str(doc["fingerprint"]),
            rows={str(k): int(v) for k, v in doc["rows"].items()},
        )

    def load(self, i: int) -> tuple[Marketplace, pd.Index]:
        """Partition ``i`` as a validated Marketplace, and the ids of its own shops (the scoring targets).

        ``mp.shops`` also holds the verdict shops of other partitions (their identifiers feed the
        linkage features); they are never targets."""
        if not 0 <= i < self.n_partitions:
            raise PartitionError(f"partition {i} out of range 0..{self.n_partitions - 1}")
        loc = self.location
        part = loc.child(part_name(i))
        raw = {t: raw_table(t, part.read_parquet(f"{t}.parquet")) for t in PART_TABLES}
        for t in GLOBAL_TABLES:
            raw[t] = raw_table(t, loc.read_parquet("global", f"{t}.parquet"))
        own = part.read_parquet("shops.parquet")
        extra = loc.read_parquet("global", f"{VERDICT_SHOPS}.parquet")
        if extra.num_rows:
            mine = pc.is_in(extra["shop_id"], value_set=own["shop_id"].combine_chunks())
            extra = extra.filter(pc.invert(mine)).cast(own.schema)
            raw["shops"] = raw_table("shops", pa.concat_tables([own, extra]))
        mp = validate_raw(raw, self.snapshot_at)
        ids = pd.Index(mp.shops["shop_id"].iloc[: own.num_rows], dtype="string", name="shop_id")
        return mp, ids

    def load_shops(self, shop_ids: Any) -> Marketplace:
        """The shops ``shop_ids`` (wherever they live) with all their rows, plus every verdict shop's row
        and the global tables, as one validated Marketplace: what a streamed fit needs (the labelled
        shops' histories and texts, the adverse-linkage identifiers), read with filters, never whole."""
        loc = self.location
        wanted = pa.array(sorted({str(x) for x in shop_ids}), pa.string())
        where = partition_of(wanted.to_numpy(zero_copy_only=False), self.n_partitions)
        pieces: dict[str, list[pa.Table]] = {t: [] for t in PART_TABLES}
        for i in sorted({int(p) for p in where}):
            part = loc.child(part_name(i))
            mine = wanted.filter(pa.array(where == i))
            listings = None
            for t in PART_TABLES:
                if t == "listing_edits":
                    continue
                table = part.read_parquet(f"{t}.parquet")
                table = table.filter(pc.is_in(pc.cast(table["shop_id"], pa.string()), value_set=mine))
                pieces[t].append(table)
                if t == "listings":
                    listings = pc.cast(table["listing_id"], pa.string())
            edits = part.read_parquet("listing_edits.parquet")
            if listings is not None:
                edits = edits.filter(pc.is_in(pc.cast(edits["listing_id"], pa.string()), value_set=listings))
            pieces["listing_edits"].append(edits)
        raw: dict[str, Any] = {}
        for t in PART_TABLES:
            schema = loc.child(part_name(0)).parquet_file(f"{t}.parquet").schema_arrow
            tables = [x.cast(schema) for x in pieces[t]] or [schema.empty_table()]
            raw[t] = pa.concat_tables(tables)
        extra = loc.read_parquet("global", f"{VERDICT_SHOPS}.parquet")
        if extra.num_rows:
            have = pc.cast(raw["shops"]["shop_id"], pa.string()).combine_chunks()
            extra = extra.filter(pc.invert(pc.is_in(pc.cast(extra["shop_id"], pa.string()), value_set=have)))
            raw["shops"] = pa.concat_tables([raw["shops"], extra.cast(raw["shops"].schema)])
        for t in PART_TABLES:
            raw[t] = raw_table(t, raw[t])
        for t in GLOBAL_TABLES:
            raw[t] = raw_table(t, loc.read_parquet("global", f"{t}.parquet"))
        return validate_raw(raw, self.snapshot_at)

    def load_own(self, i: int, tables: tuple[str, ...] | None = None) -> Marketplace:
        """Partition ``i`` with only its own shops in ``shops`` (what the sanction store imports).

        With ``tables`` only those of the partition's own tables are read and validated (the others load
        empty; e.g. the sanction store's import needs shops, listings, their edits and orders)."""
        if tables is None:
            mp, ids = self.load(i)
            return replace(mp, shops=mp.shops.iloc[: len(ids)].reset_index(drop=True))
        if not 0 <= i < self.n_partitions:
            raise PartitionError(f"partition {i} out of range 0..{self.n_partitions - 1}")
        part = self.location.child(part_name(i))
        raw = {t: raw_table(t, part.read_parquet(f"{t}.parquet")) for t in tables if t in PART_TABLES}
        return validate_raw(raw, self.snapshot_at)


def _layout_matches(dst: Location, fingerprint: str, n: int, snapshot: pd.Timestamp) -> bool:
    if not dst.exists(LAYOUT_FILE):
        return False
    try:
        doc = json.loads(dst.read_text(LAYOUT_FILE))
    except (OSError, ValueError):
        return False
    return bool(
        doc.get("version") == LAYOUT_VERSION
        and doc.get("fingerprint") == fingerprint
        and doc.get("n_partitions") == n
        and doc.get("snapshot_at") == snapshot.isoformat()
    )


def partition_marketplace(
    source: str,
    dest: str,
    *,
    n_partitions: int | None = None,
    shops_per_partition: int = DEFAULT_SHOPS_PER_PARTITION,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    reuse: bool = True,
    snapshot_at: object = None,
    client: Client | None = None,
) -> PartitionedMarketplace:
    """Split the marketplace folder ``source`` by shop into ``dest`` (both any fsspec path); streamed.

    ``n_partitions`` defaults to ``ceil(shops / shops_per_partition)``, so one partition's size does not
    grow with the marketplace. With ``reuse`` an existing complete layout of the same source files
    (sizes and modification times), the same ``n`` and the same snapshot time is returned as is.
    ``snapshot_at`` (``--snapshot-at``) is needed when the folder has no manifest (``snapshot_of``). With a
    Dask ``client`` the split runs on the workers (:mod:`dajia.scaleout.shuffle`), else as one streamed pass."""
    src, dst = Location.of(source), Location.of(dest)
    files: dict[str, str] = {}
    for name in (*PART_TABLES, *GLOBAL_TABLES):  # first: a CSV folder is refused as such
        f = table_file(src, TABLES_BY_NAME[name])
        if f is not None:
            files[name] = f
    snapshot = snapshot_of(src, snapshot_at)
    n_shops = int(src.parquet_file(files["shops"]).metadata.num_rows)
    n = int(n_partitions or max(1, math.ceil(n_shops / max(1, shops_per_partition))))
    if n < 1:
        raise PartitionError(f"number of partitions must be >= 1, got {n}")
    fingerprint = _fingerprint(src, files)
    if reuse and _layout_matches(dst, fingerprint, n, snapshot):
        return PartitionedMarketplace.open(dest)
    dst.remove()
    dst.makedirs()
    rows: dict[str, int] = {}

    # global tables, whole (small: brands, and verdicts of a fraction of shops)
    for name in GLOBAL_TABLES:
        table = src.read_parquet(files[name]) if name in files else _empty(name)
        with dst.writer(table.schema, "global", f"{name}.parquet") as w:
            w.write_table(table)
        rows[name] = table.num_rows
    verdicts = dst.read_parquet("global", "verdicts.parquet", columns=["shop_id"])
    verdict_ids = pc.unique(pc.cast(verdicts["shop_id"], pa.string()).combine_chunks())

    if client is not None:  # the split on the workers (a map/reduce shuffle): the client reads no table
        from dajia.scaleout.shuffle import shuffle_on_cluster

        schemas = {
            name: src.parquet_file(files[name]).schema_arrow if name in files else _empty(name).schema
            for name in PART_TABLES
        }
        rows.update(shuffle_on_cluster(client, src, dst, files, schemas, n, verdict_ids))
    else:
        rows.update(_stream(src, dst, files, n, verdict_ids, batch_rows))
    dst.remove("_tmp")
    layout = {
        "version": LAYOUT_VERSION,
        "n_partitions": n,
        "snapshot_at": snapshot.isoformat(),
        "shops": n_shops,
        "source": src.url,
        "fingerprint": fingerprint,
        "rows": rows,
    }
    dst.write_text(json.dumps(layout, indent=2), LAYOUT_FILE)
    return PartitionedMarketplace.open(dest)


def _stream(
    src: Location, dst: Location, files: dict[str, str], n: int, verdict_ids: pa.Array, batch_rows: int
) -> dict[str, int]:
    """The split as one streamed pass on this machine (row batches in, one writer per partition out)."""
    rows: dict[str, int] = {}
    for name in PART_TABLES:
        if name == "listing_edits":
            continue
        filename = files.get(name)
        schema = src.parquet_file(filename).schema_arrow if filename else _empty(name).schema
        scatter = _Scatter(dst, n, schema, f"{name}.parquet")
        side: _Scatter | None = None
        vshops: pq.ParquetWriter | None = None
        if name == "listings":
            side = _Scatter(dst, n, pa.schema([("listing_id", pa.string()), ("part", pa.int32())]), "map", "_tmp")
        if name == "shops":
            vshops = dst.writer(schema, "global", f"{VERDICT_SHOPS}.parquet")
        try:
            for table in _batches(src, filename, batch_rows) if filename else iter(()):
                parts = partition_of(_strings(table["shop_id"], name, "shop_id"), n)
                scatter.write(table, parts)
                if vshops is not None:
                    vshops.write_table(
                        table.filter(pc.is_in(pc.cast(table["shop_id"], pa.string()), value_set=verdict_ids))
                    )
                if side is not None:
                    lids = _strings(table["listing_id"], "listings", "listing_id")
                    side.write(
                        pa.table({"listing_id": pa.array(lids, pa.string()), "part": pa.array(parts, pa.int32())}),
                        partition_of(lids, n),
                    )
        finally:
            scatter.close()
            if side is not None:
                side.close()
            if vshops is not None:
                vshops.close()
        rows[name] = scatter.rows
    rows["listing_edits"] = _scatter_edits(src, dst, n, files.get("listing_edits"), batch_rows)
    return rows


def edit_parts(edits: pa.Table, listing_map: pa.Table) -> np.ndarray:
    """The partition of each listing edit, through its listing (``listing_map``: listing_id, part, of one
    hash bucket); a duplicate listing id or an edit of an unknown listing is a ``DataContractError``."""
    index = pd.Index(listing_map["listing_id"].to_numpy(zero_copy_only=False), dtype=object)
    if index.has_duplicates:
        dup = index[index.duplicated()].unique().tolist()
        raise DataContractError("listings", "listing_id", "duplicate listing ids", dup)
    pos = index.get_indexer(_strings(edits["listing_id"], "listing_edits", "listing_id"))
    if (pos < 0).any():
        bad = edits["edit_id"].to_numpy(zero_copy_only=False)[pos < 0].tolist()
        raise DataContractError(
            "listing_edits", "listing_id", "edits of listings that are not in the listings table", bad
        )
    parts: np.ndarray = listing_map["part"].to_numpy()[pos].astype(np.int64)
    return parts


def _empty(name: str) -> pa.Table:
    from marketplace.io import arrow_schema

    return arrow_schema(TABLES_BY_NAME[name]).empty_table()


def _scatter_edits(src: Location, dst: Location, n: int, filename: str | None, batch_rows: int) -> int:
    """listing_edits to the partition of their listing's shop: an external hash join on listing_id.

    Edits and the (listing_id, partition) map were both bucketed by hash(listing_id); each bucket pair
    is small, so the join holds one bucket at a time."""
    schema = src.parquet_file(filename).schema_arrow if filename else _empty("listing_edits").schema
    out = _Scatter(dst, n, schema, "listing_edits.parquet")
    try:
        if filename is None:
            return 0
        buckets = _Scatter(dst, n, schema, "edits", "_tmp")
        try:
            for table in _batches(src, filename, batch_rows):
                buckets.write(table, partition_of(_strings(table["listing_id"], "listing_edits", "listing_id"), n))
        finally:
            buckets.close()
        for b in range(n):
            edits = dst.read_parquet("_tmp", f"edits-{b:05d}.parquet")
            if edits.num_rows == 0:
                continue
            out.write(edits, edit_parts(edits, dst.read_parquet("_tmp", f"map-{b:05d}.parquet")))
    finally:
        out.close()
    return out.rows
