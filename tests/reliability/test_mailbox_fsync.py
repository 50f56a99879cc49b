"""Issue 23, "FileMailbox does not fsync by default": the decision is fsync where durability is claimed.
A mailbox made with ``fsync=True`` (the crackdown's delivery step, which says every message is filed
exactly once) forces each line to the disk before the send returns, that is before the delivered mark
commits; the default hands lines to the operating system only (a killed relay loses nothing, a power
cut may). ``os.fsync`` is watched, not replaced: the real call still runs."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest

from sanctions.outbox import FileMailbox, OutboxItem


def _item(i: int) -> OutboxItem:
    return OutboxItem(
        message_id=i, dedupe_key=f"k{i}", kind="notify_buyer", recipient=f"u{i}", topic="t", payload={}, status="new"
    )


def _synced(monkeypatch: pytest.MonkeyPatch, folder: Path, fsync: bool) -> list[str]:
    """The files ``os.fsync`` was called on while three messages (one of them twice) were filed."""
    real = os.fsync
    seen: list[str] = []

    def watched(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", watched)
    with FileMailbox(folder, fsync=fsync) as box:
        for i in (1, 2, 2, 3):
            box(_item(i))
            if fsync:  # the line is on disk when the send returns
                assert seen and seen[-1] == str(box.path("notify_buyer"))
    return seen


def test_a_durable_mailbox_fsyncs_every_line_before_the_send_returns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = _synced(monkeypatch, tmp_path, fsync=True)
    assert seen == [str(tmp_path / "outbox-notify_buyer.jsonl")] * 3  # the re-sent one is not written again
    assert len((tmp_path / "outbox-notify_buyer.jsonl").read_text().splitlines()) == 3


def test_the_default_mailbox_does_not_fsync(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert _synced(monkeypatch, tmp_path, fsync=False) == []


def test_the_crackdown_delivers_into_a_durable_mailbox() -> None:
    from dajia.crackdown import Crackdown

    assert "FileMailbox(out, fsync=True)" in inspect.getsource(Crackdown.step_deliver)
