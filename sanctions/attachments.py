"""Files people attach to a case: the one rule for what is accepted and how it is named.

Used by the reviewers' console (notes' attachments, ``serving.console.team``) and by the seller's
appeal (``sanctions.seller``). A file is accepted when it is at most :data:`MAX_ATTACHMENT` bytes,
not empty, of a type in :data:`ATTACHMENT_TYPES` whose content matches it (the magic bytes of a PNG,
JPEG or PDF; UTF-8 for text), and is kept with its sha256. Files are never served as active content:
only as downloads (``Content-Disposition: attachment``, ``application/octet-stream``, ``nosniff``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from core.errors import DajiaError

MAX_ATTACHMENT = 5 * 1024 * 1024
#: accepted attachment types and how their content must begin (checked, not trusted from the browser)
ATTACHMENT_TYPES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "application/pdf": (b"%PDF-",),
    "text/plain": (),
    "text/csv": (),
}


class AttachmentRefused(DajiaError):
    """A file that is not accepted: ``http_status`` 415 for a type, 422 for its size or content."""

    def __init__(self, message: str, http_status: int = 422) -> None:
        super().__init__(message)
        self.http_status = http_status


@dataclass(frozen=True)
class CheckedFile:
    """An accepted file: its cleaned name, type, size and sha256, and the bytes."""

    filename: str
    content_type: str
    size: int
    sha256: str
    data: bytes


def clean_filename(name: str) -> str:
    """The file's base name with anything but ``A-Za-z0-9._-`` replaced (no path, no quote, no header break)."""
    base = re.split(r"[\\/]", name)[-1]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")[:120]
    return safe or "attachment"


def check(filename: str, content_type: str, data: bytes, *, what: str = "attachment") -> CheckedFile:
    """The file accepted, or :class:`AttachmentRefused` naming it and why (``what`` names it in messages)."""
    ctype = content_type.split(";")[0].strip().lower()
    label = f"{what} {clean_filename(filename)!r}" if filename else what
    if ctype not in ATTACHMENT_TYPES:
        raise AttachmentRefused(
            f"{label}: type {ctype or 'unknown'!r} is not accepted ({', '.join(ATTACHMENT_TYPES)})", 415
        )
    if not data:
        raise AttachmentRefused(f"{label}: the file is empty")
    if len(data) > MAX_ATTACHMENT:
        raise AttachmentRefused(f"{label}: {len(data):,} bytes is over the limit of {MAX_ATTACHMENT:,} bytes")
    magic = ATTACHMENT_TYPES[ctype]
    if magic and not any(data.startswith(m) for m in magic):
        raise AttachmentRefused(f"{label}: the file's content is not {ctype}", 415)
    if not magic:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise AttachmentRefused(f"{label}: a {ctype} file must be UTF-8 text", 415) from None
    return CheckedFile(clean_filename(filename), ctype, len(data), hashlib.sha256(data).hexdigest(), data)
