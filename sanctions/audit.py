"""The append-only, hash-chained audit log.

Entry ``n`` stores ``prev_hash`` (entry ``n-1``'s hash, 64 zeros for the first) and
``hash = sha256(prev_hash + canonical_json(entry))`` where the canonical JSON covers every
column but the hashes (keys sorted, no whitespace, UTF-8). The head row (``audit_head``) holds
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
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
    return hashlib.sha256((prev_hash + canonical(body)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    """One thing to append: who did what to which entity, with a JSON payload."""

    actor: Actor
    action: str
    entity_type: str
    entity_id: str
    payload: Mapping[str, Any]
    at: datetime


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
    return ChainReport(True, count, int(head[0]))


def _seq(head: Any) -> int:
    return 0 if head is None else int(head[0])
