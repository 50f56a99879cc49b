"""The split of a marketplace into shop partitions, run on the workers (a map/reduce shuffle).

The same layout as the client's streamed pass (:func:`dajia.scaleout.partition.partition_marketplace`
without a client), written by tasks instead of the client, so the client never reads the marketplace:

1. **map**, one task per (table, Parquet row group): read the row group, hash each row's shop
   (``partition_of``) and write one chunk per partition, ``_tmp/<table>/p-<partition>/c-<row group>``;
   the shops task also writes the shop rows of verdict shops; the listings task also writes the
   (listing_id, partition) map bucketed by ``hash(listing_id)``, and ``listing_edits`` is bucketed the
   same way;
2. **join**, one task per bucket: an edit's partition is its listing's (the external hash join of the
   streamed pass, one bucket per task);
3. **reduce**, one task per (table, partition): the chunks, in source order, into
   ``part-<partition>/<table>.parquet``.

Row order inside a partition is the streamed pass's (chunks are concatenated in row-group order), and
the test checks both layouts hold equal tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dajia.scaleout.storage import Location

if TYPE_CHECKING:
    from distributed import Client

MAP_SCHEMA = pa.schema([("listing_id", pa.string()), ("part", pa.int32())])


def _chunk_dir(table: str, p: int) -> tuple[str, str, str]:
    return ("_tmp", table, f"p-{p:05d}")


def _write_split(dst: Location, table: pa.Table, parts: np.ndarray, folder: str, chunk: int) -> None:
    """The rows of ``table`` by ``parts``: one chunk file ``c-<chunk>`` per partition present."""
    if table.num_rows == 0:
        return
    order = np.argsort(parts, kind="stable")
    ordered = parts[order]
    bounds = np.flatnonzero(np.diff(ordered)) + 1
    for lo, hi in zip(np.r_[0, bounds].tolist(), np.r_[bounds, len(order)].tolist(), strict=True):
        with dst.writer(table.schema, *_chunk_dir(folder, int(ordered[lo])), f"c-{chunk:06d}.parquet") as w:
            w.write_table(table.take(pa.array(order[lo:hi])))


def map_task(
    source_url: str,
    filename: str,
    table: str,
    row_group: int,
    n: int,
    dest_url: str,
    verdict_ids: pa.Array | None,
) -> int:
    """Worker task: one row group of ``table`` split by partition (see module doc); returns its rows."""
    from dajia.scaleout.partition import VERDICT_SHOPS, _strings, partition_of

    src, dst = Location.of(source_url), Location.of(dest_url)
    data = src.parquet_file(filename).read_row_group(row_group)
    key = "listing_id" if table == "listing_edits" else "shop_id"
    parts = partition_of(_strings(data[key], table, key), n)
    _write_split(dst, data, parts, "edits" if table == "listing_edits" else table, row_group)
    if verdict_ids is not None:
        mine = data.filter(pc.is_in(pc.cast(data["shop_id"], pa.string()), value_set=verdict_ids))
        with dst.writer(data.schema, "_tmp", VERDICT_SHOPS, f"c-{row_group:06d}.parquet") as w:
            w.write_table(mine)
    if table == "listings":
        lids = _strings(data["listing_id"], "listings", "listing_id")
        pairs = pa.table({"listing_id": pa.array(lids, pa.string()), "part": pa.array(parts, pa.int32())})
        _write_split(dst, pairs, partition_of(lids, n), "map", row_group)
    return int(data.num_rows)


def _read_chunks(dst: Location, schema: pa.Schema, *names: str) -> pa.Table:
    """The chunk files under ``names`` in name (= source) order, as one table; empty when there are none."""
    folder = dst.path(*names)
    if not dst.fs.exists(folder):
        return schema.empty_table()
    files = sorted(str(f) for f in dst.fs.ls(folder, detail=False) if str(f).endswith(".parquet"))
    tables = [Location.of(dst.url).read_parquet(*names, f.rsplit("/", 1)[-1]).cast(schema) for f in files]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def join_task(dest_url: str, bucket: int, schema: pa.Schema) -> int:
    """Worker task: the edits of bucket ``bucket`` to their listing's partition; returns their rows."""
    from dajia.scaleout.partition import edit_parts

    dst = Location.of(dest_url)
    dst.fs.invalidate_cache()
    edits = _read_chunks(dst, schema, *_chunk_dir("edits", bucket))
    if edits.num_rows == 0:
        return 0
    parts = edit_parts(edits, _read_chunks(dst, MAP_SCHEMA, *_chunk_dir("map", bucket)))
    _write_split(dst, edits, parts, "listing_edits", bucket)
    return int(edits.num_rows)


def reduce_task(dest_url: str, table: str, p: int, schema: pa.Schema) -> int:
    """Worker task: the chunks of ``table`` for partition ``p`` into ``part-<p>/<table>.parquet``."""
    from dajia.scaleout.partition import part_name

    dst = Location.of(dest_url)
    dst.fs.invalidate_cache()
    data = _read_chunks(dst, schema, *_chunk_dir(table, p))
    with dst.writer(schema, part_name(p), f"{table}.parquet") as w:
        w.write_table(data)
    return int(data.num_rows)


def shuffle_on_cluster(
    client: Client,
    src: Location,
    dst: Location,
    files: dict[str, str],
    schemas: dict[str, pa.Schema],
    n: int,
    verdict_ids: pa.Array,
) -> dict[str, int]:
    """Split the partitioned tables of ``src`` into ``dst`` on the workers; returns rows per table."""
    from dajia.scaleout.cluster import cluster_step
    from dajia.scaleout.partition import PART_TABLES, VERDICT_SHOPS

    with cluster_step("partitioning (map_task, join_task, reduce_task)"):
        vids = client.scatter(verdict_ids, broadcast=True)
        maps: list[tuple[str, Any]] = []
        for table in PART_TABLES:
            if table not in files:
                continue
            groups = src.parquet_file(files[table]).metadata.num_row_groups
            for g in range(groups):
                v = vids if table == "shops" else None
                fut = client.submit(map_task, src.url, files[table], table, g, n, dst.url, v, pure=False)
                maps.append((table, fut))
        rows: dict[str, int] = dict.fromkeys(PART_TABLES, 0)
        for table, fut in maps:
            rows[table] += int(fut.result())
        joins = [
            client.submit(join_task, dst.url, b, schemas["listing_edits"], pure=False)
            for b in range(n)
            if "listing_edits" in files
        ]
        reduces = [
            client.submit(reduce_task, dst.url, t, p, schemas[t], pure=False)
            for t in PART_TABLES
            if t != "listing_edits"
            for p in range(n)
        ]
        client.gather(joins)
        edits = [
            client.submit(reduce_task, dst.url, "listing_edits", p, schemas["listing_edits"], pure=False)
            for p in range(n)
        ]
        client.gather([*reduces, *edits])
    vshops = _read_chunks(dst, schemas["shops"], "_tmp", VERDICT_SHOPS)
    with dst.writer(schemas["shops"], "global", f"{VERDICT_SHOPS}.parquet") as w:
        w.write_table(vshops)
    return rows
