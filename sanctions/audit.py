"""The append-only, hash-chained audit log, bound to the rows it speaks for.

Entry ``n`` stores ``prev_hash`` (entry ``n-1``'s hash, 64 zeros for the first) and
``hash = sha256(prev_hash + canonical_json(entry))`` where the canonical JSON covers every
column but the hashes (keys sorted, no whitespace, UTF-8), including ``rows``: the digests of
the rows the change wrote, as they stood at commit (:data:`COVERED` names the tables and how
their rows group: a case's row and its events under the case's entry, a claim under the claim's,
…). :func:`verify_chain` recomputes those digests from the tables and compares each with the
latest entry that wrote it, so editing a claim's amount, deleting a case event or editing a
person's role names the entry whose rows no longer hold. The head row (``audit_head``) holds
the last sequence number and hash; every append locks it (``SELECT … FOR UPDATE`` on
PostgreSQL; SQLite transactions are ``BEGIN IMMEDIATE`` so there is one writer anyway), so two
concurrent transactions can never both extend the same entry. Appends belong to the caller's
transaction: the change and its audit entry commit or vanish together.

:func:`verify_chain` recomputes everything: an updated row breaks its own hash, a deleted row
leaves a gap in the sequence or a head that points past the end.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, Text, any_, bindparam, select, update
from sqlalchemy import cast as cast_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from core.errors import DajiaError
from sanctions import bulk
from sanctions.models import AuditEntry, AuditHead
from sanctions.workflow import Actor

GENESIS = "0" * 64


def canonical(obj: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, non-ASCII kept; the bytes that get hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default)


def _default(o: object) -> Any:
    if isinstance(o, datetime):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable in an audit payload: {type(o).__name__}")


def entry_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    body = {k: row[k] for k in ("seq", "at", "actor_id", "role", "simulated", "action", "entity_type", "entity_id")}
    body["simulated"] = bool(body["simulated"])
    body["payload"] = row["payload"]
    if row.get("rows") is not None:  # entries written before rows were bound keep their hash
        body["rows"] = row["rows"]
    if row.get("via") is not None:  # so do entries written before credentials were named
        body["via"] = row["via"]
    return hashlib.sha256((prev_hash + canonical(body)).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- the rows bound into the chain

#: every table whose writes are bound into the chain: table -> (the column its rows group by, the
#: entity type of the audit entry that speaks for the group). A case's events are one group with
#: the case's row under the case's entry; a campaign's case list with the campaign.
COVERED: dict[str, tuple[str, str]] = {
    "cases": ("case_id", "case"),
    "case_events": ("case_id", "case"),
    "evidence_snapshots": ("case_id", "case"),
    "claims": ("claim_id", "claim"),
    "campaigns": ("campaign_id", "campaign"),
    "campaign_cases": ("campaign_id", "campaign"),
    "disclosures": ("disclosure_id", "disclosure"),
    "disclosure_policies": ("policy_id", "policy"),
    "actors": ("actor_id", "actor"),
    "people": ("person_id", "person"),
    "serving_api_keys": ("key_id", "api_key"),
}
#: columns added to a covered table after its rows were first bound: left out of a row's digest while
#: NULL, so rows written before the column existed keep their digest
LATE: dict[str, tuple[str, ...]] = {"case_events": ("via",)}
#: entity type -> the covered tables an entry about such an entity binds
TABLES_OF: dict[str, tuple[str, ...]] = {}
for _name, (_col, _entity) in COVERED.items():
    TABLES_OF[_entity] = (*TABLES_OF.get(_entity, ()), _name)


def _table(name: str) -> Table:
    return cast(Table, AuditEntry.metadata.tables[name])


def _group_digest(rows: Sequence[Sequence[str | None]], late: int = 0) -> str:
    """sha256 of a group's rows (every column as the database renders it as text), 128 bits in hex;
    the last ``late`` columns (:data:`LATE`) count only from the last one that is set."""
    h = hashlib.sha256()
    for r in rows:
        n = len(r)
        while late and n > len(r) - late and r[n - 1] is None:
            n -= 1
        h.update("\x1f".join(["\x00" if v is None else v for v in r[:n]]).encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()[:32]


@cache
def _ordered(name: str) -> Any:
    """Every column of a covered table as text (the database's own rendering: nothing is parsed in
    Python, so binding and verifying cost little), the group key first, in (group, primary key) order."""
    table = _table(name)
    group = table.c[COVERED[name][0]]
    late = LATE.get(name, ())
    ordered = [c for c in table.c if c.name not in late] + [table.c[n] for n in late]
    columns = [cast_(c, Text).label(c.name) for c in ordered]
    return select(cast_(group, Text).label("_group"), *columns).order_by(group, *table.primary_key.columns)


def _raw_rows(conn: Connection, stmt: Any) -> list[tuple[Any, ...]]:
    """``stmt``'s rows straight from the driver's cursor: every column is text already, so
    SQLAlchemy's row objects would only add cost (routing binds tens of thousands of rows)."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    if compiled.positiontup is not None:
        params = tuple(params[name] for name in compiled.positiontup)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def row_digests(session: Session, table_name: str, keys: Sequence[str]) -> dict[str, str]:
    """The digest of each group of ``table_name``'s rows among ``keys`` (as they stand now, in
    this transaction); keys with no row are left out."""
    table = _table(table_name)
    group = table.c[COVERED[table_name][0]]
    values: list[Any] = [int(k) for k in keys] if group.type.python_type is int else list(keys)
    grouped: dict[str, list[Sequence[str | None]]] = {}
    conn = session.connection()
    for i in range(0, len(values), 20_000):
        part = values[i : i + 20_000]
        if conn.dialect.name == "postgresql":  # one array parameter, not thousands
            where = group == any_(bindparam(None, part, type_=ARRAY(group.type)))
        else:
            where = group.in_(part)
        for r in _raw_rows(conn, _ordered(table_name).where(where)):
            grouped.setdefault(r[0], []).append(r[1:])
    late = len(LATE.get(table_name, ()))
    return {k: _group_digest(v, late) for k, v in grouped.items()}


def bind_rows(
    session: Session, records: Sequence[AuditRecord], extra: Mapping[str, Sequence[str]]
) -> list[AuditRecord]:
    """``records`` with the digests of the rows they speak for: each entity's covered rows go on its
    last record in this change; ``extra`` rows (table -> keys, e.g. actors registered) on the last record."""
    if not records:
        return []
    last_of: dict[tuple[str, str], int] = {}
    for i, rec in enumerate(records):
        if rec.entity_type in TABLES_OF:
            last_of[(rec.entity_type, str(rec.entity_id))] = i
    wanted: dict[str, list[str]] = {}
    for entity, key in last_of:
        for table in TABLES_OF[entity]:
            wanted.setdefault(table, []).append(key)
    for table, keys in extra.items():
        wanted.setdefault(table, []).extend(keys)
    rows: list[dict[str, dict[str, str]]] = [{} for _ in records]
    for table, keys in wanted.items():
        entity = COVERED[table][1]
        for key, digest in row_digests(session, table, sorted(set(keys))).items():
            i = last_of.get((entity, key), len(records) - 1)
            rows[i].setdefault(table, {})[key] = digest
    return [replace(rec, rows=r) if r else rec for rec, r in zip(records, rows, strict=True)]


@dataclass(frozen=True)
class AuditRecord:
    """One thing to append: who did what to which entity, with a JSON payload."""

    actor: Actor
    action: str
    entity_type: str
    entity_id: str
    payload: Mapping[str, Any]
    at: datetime
    #: table -> group key -> digest of the rows this entry binds (``bind_rows``)
    rows: Mapping[str, Mapping[str, str]] | None = None


_HEAD = cast(Table, AuditHead.__table__)
#: built once: these run in every workflow transaction
_LOCK_HEAD = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.id == 1).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))


def _lock_head(session: Session) -> tuple[int, str]:
    head = session.connection().execute(_LOCK_HEAD).first()
    if head is None:
        raise DajiaError("the audit chain head row is missing (run `dajia audit verify`); refusing to append")
    return int(head[0]), str(head[1])


def append(session: Session, records: Sequence[AuditRecord]) -> list[int]:
    """Append ``records`` in order inside the caller's transaction; returns their sequence numbers."""
    if not records:
        return []
    seq, prev = _lock_head(session)
    rows: list[dict[str, Any]] = []
    for rec in records:
        seq += 1
        row: dict[str, Any] = {
            "seq": seq,
            "at": rec.at.isoformat(timespec="microseconds"),
            "actor_id": rec.actor.actor_id,
            "role": rec.actor.role.value,
            "simulated": bool(rec.actor.simulated),
            "action": rec.action,
            "entity_type": rec.entity_type,
            "entity_id": str(rec.entity_id),
            "payload": canonical(dict(rec.payload)),
            "rows": canonical(rec.rows) if rec.rows else None,
            "via": rec.actor.via,
        }
        row["prev_hash"] = prev
        row["hash"] = prev = entry_hash(prev, row)
        rows.append(row)
    bulk.insert_rows(session, cast(Table, AuditEntry.__table__), rows)
    session.connection().execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": prev})
    return [r["seq"] for r in rows]


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    head_seq: int
    first_bad_seq: int | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head_seq": self.head_seq,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
        }


def verify_chain(session: Session, batch: int = 10_000) -> ChainReport:
    """Recompute the whole chain; the first entry that does not hold is reported."""
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
    expected_seq = 0
    prev = GENESIS
    count = 0
    last_seq = 0
    #: (table, group key) -> (the latest entry that wrote the group, its digest then)
    latest: dict[tuple[str, str], tuple[int, str]] = {}
    while True:
        rows = (
            session.execute(
                select(AuditEntry.__table__).where(AuditEntry.seq > last_seq).order_by(AuditEntry.seq).limit(batch)
            )
            .mappings()
            .all()
        )
        if not rows:
            break
        for row in rows:
            expected_seq += 1
            count += 1
            seq = int(row["seq"])
            if seq != expected_seq:
                return ChainReport(
                    False, count, _seq(head), expected_seq, f"entry {expected_seq} is missing (next present: {seq})"
                )
            if row["prev_hash"] != prev:
                return ChainReport(
                    False, count, _seq(head), seq, f"entry {seq}: prev_hash does not match entry {seq - 1}'s hash"
                )
            if entry_hash(prev, dict(row)) != row["hash"]:
                return ChainReport(False, count, _seq(head), seq, f"entry {seq}: content does not match its hash")
            if row["rows"]:
                for table, digests in json.loads(row["rows"]).items():
                    for key, digest in digests.items():
                        latest[(table, key)] = (seq, digest)
            prev = row["hash"]
            last_seq = seq
    if head is None:
        if count:
            return ChainReport(False, count, 0, 1, "the chain head row is missing")
        return ChainReport(True, 0, 0)
    if int(head[0]) != last_seq or head[1] != prev:
        return ChainReport(
            False,
            count,
            int(head[0]),
            last_seq + 1,
            f"the head says {head[0]} entries but the log ends at entry {last_seq}: entries were deleted",
        )
    bad = _verify_rows(session, latest, batch)
    if bad is not None:
        return ChainReport(False, count, int(head[0]), bad[0], bad[1])
    return ChainReport(True, count, int(head[0]))


def _groups(session: Session, name: str, batch: int) -> Iterator[tuple[str, list[Sequence[str | None]]]]:
    """Every group of a covered table's rows, in order: (group key, its rows)."""
    key: str | None = None
    rows: list[Sequence[str | None]] = []
    for r in session.execute(_ordered(name).execution_options(yield_per=batch)):
        if r[0] != key:
            if key is not None:
                yield key, rows
            key, rows = r[0], []
        rows.append(r[1:])
    if key is not None:
        yield key, rows


def _verify_rows(
    session: Session, latest: dict[tuple[str, str], tuple[int, str]], batch: int
) -> tuple[int | None, str] | None:
    """Recompute every covered table's group digests and compare each with the latest entry that
    wrote the group: (the first bad entry, what is wrong), or None when every row holds. Rows that
    no entry wrote are reported too (entry None), after every entry whose rows were changed."""
    worst: tuple[int, str] | None = None
    unbound: str | None = None
    for name, (_, entity) in COVERED.items():
        for key, rows in _groups(session, name, batch):
            have = latest.pop((name, key), None)
            if have is None:
                unbound = unbound or f"{name} rows of {entity} {key} were written outside the audit chain"
                continue
            seq, digest = have
            if _group_digest(rows, len(LATE.get(name, ()))) != digest and (worst is None or seq < worst[0]):
                worst = (seq, f"entry {seq}: the {name} rows of {entity} {key} no longer match the digest it recorded")
    for (name, key), (seq, _) in latest.items():  # groups an entry wrote that are gone from the table
        if worst is None or seq < worst[0]:
            worst = (seq, f"entry {seq}: the {name} rows of {COVERED[name][1]} {key} it recorded were deleted")
    if worst is not None:
        return worst
    return (None, unbound) if unbound is not None else None


def _seq(head: Any) -> int:
    return 0 if head is None else int(head[0])
