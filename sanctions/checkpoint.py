"""Signed checkpoints of the audit chain's head (Certificate Transparency's signed tree head, Trillian's
checkpoint): published with each announcement, so anyone holding one can detect a rewritten history.

Inside the database a forger who rewrites entries, recomputes every later hash and moves the head
leaves a chain that verifies. A checkpoint pins the head as it was: ``(seq, hash, at)`` signed with
an Ed25519 key, and the public key travels with it. The key is a file named by
``settings.audit_key_file`` (``DAJIA_AUDIT_KEY_FILE``; keep it off the database server), or else one
made on first use and kept in the store (``audit_keys``): a forger with the database can then sign
a new head, but every checkpoint published before still exposes the rewrite.
:func:`verify_against` recomputes the chain and checks that entry ``seq`` still has the published
hash; a rewrite of any entry up to ``seq`` changes it.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core import atomic
from core.errors import DajiaError
from core.settings import Settings, get_settings
from sanctions.audit import GENESIS, ChainReport, verify_chain
from sanctions.models import AuditEntry, AuditHead, AuditKey


class Checkpoint(BaseModel):
    """A signed statement: the audit chain had ``seq`` entries, the last with hash ``hash``, at ``at``."""

    seq: int
    hash: str
    at: str
    key_id: str
    public_key: str
    signature: str

    def message(self) -> bytes:
        return f"dajia audit checkpoint\n{self.seq}\n{self.hash}\n{self.at}\n".encode()


class Signer:
    """An Ed25519 signing key (its id: the first 16 hex digits of the public key)."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = raw.hex()
        self.key_id = self.public_key[:16]

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        """The key in ``path`` (32 bytes, hex), made on first use (mode 0600)."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(path, Ed25519PrivateKey.generate().private_bytes_raw().hex() + "\n")
            os.chmod(path, 0o600)
        try:
            return cls(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(path.read_text().strip())))
        except ValueError as exc:
            raise DajiaError(f"audit signing key {path}: not a 32-byte Ed25519 key in hex ({exc})") from exc

    @classmethod
    def from_store(cls, session: Session, now: datetime) -> Signer:
        """The store's key (``audit_keys``), made on first use (concurrent first uses agree)."""
        row = session.get(AuditKey, 1)
        if row is None:
            key = Ed25519PrivateKey.generate()
            public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
            values = {"id": 1, "private_key": key.private_bytes_raw().hex(), "public_key": public, "created_at": now}
            dialect = session.get_bind().dialect.name
            stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(AuditKey).values(**values)
            session.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))
            row = session.get(AuditKey, 1, populate_existing=True)
        assert row is not None
        return cls(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(row.private_key)))

    @classmethod
    def resolve(cls, session: Session, now: datetime, settings: Settings | None = None) -> Signer:
        """The key file of the settings if one is named, else the store's key."""
        s = settings or get_settings()
        return cls.from_file(s.audit_key_file) if s.audit_key_file else cls.from_store(session, now)

    def sign(self, seq: int, head_hash: str, at: datetime) -> Checkpoint:
        unsigned = Checkpoint(
            seq=seq,
            hash=head_hash,
            at=at.isoformat(timespec="seconds"),
            key_id=self.key_id,
            public_key=self.public_key,
            signature="",
        )
        return unsigned.model_copy(update={"signature": self._key.sign(unsigned.message()).hex()})


def checkpoint(session: Session, signer: Signer, at: datetime) -> Checkpoint:
    """A signed checkpoint of the chain's head as this session sees it."""
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
    seq, head_hash = (0, GENESIS) if head is None else (int(head[0]), str(head[1]))
    return signer.sign(seq, head_hash, at)


def verify_against(session: Session, cp: Checkpoint, trusted_key: str | None = None) -> ChainReport:
    """The chain verifies AND still contains the published head: entry ``cp.seq`` has ``cp.hash``.

    The signature must verify under the checkpoint's public key (and that key must be ``trusted_key``
    when given): a checkpoint edited after signing is refused."""
    if trusted_key is not None and cp.public_key != trusted_key:
        raise DajiaError(f"checkpoint signed by key {cp.key_id}, not by the trusted key {trusted_key[:16]}")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(cp.public_key)).verify(
            bytes.fromhex(cp.signature), cp.message()
        )
    except (InvalidSignature, ValueError) as exc:
        raise DajiaError(f"checkpoint of entry {cp.seq}: the signature does not verify; it was altered") from exc
    report = verify_chain(session)
    if not report.ok:
        return report
    if cp.seq == 0:
        return report
    have = session.execute(select(AuditEntry.hash).where(AuditEntry.seq == cp.seq)).scalar_one_or_none()
    if have != cp.hash:
        return ChainReport(
            False,
            report.entries,
            report.head_seq,
            cp.seq,
            f"entry {cp.seq}: its hash is not the one in the checkpoint signed at {cp.at} "
            f"(key {cp.key_id}): the history up to it was rewritten",
        )
    return report
