"""Two threads replacing the same file at once (``core.atomic``): every write succeeds and the file is
always one writer's whole content, never a mix and never missing."""

from __future__ import annotations

import threading
from pathlib import Path

from core import atomic


def test_threads_replacing_one_file_each_write_whole(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    contents = {k: (f"writer {k} " * 20_000).encode() for k in range(4)}
    errors: list[BaseException] = []
    seen: set[bytes] = set()
    start = threading.Barrier(5)

    def writer(k: int) -> None:
        start.wait()
        try:
            for _ in range(25):
                atomic.write_bytes(target, contents[k])
        except BaseException as exc:  # reported below
            errors.append(exc)

    def reader() -> None:
        start.wait()
        for _ in range(200):
            if target.exists():
                seen.add(target.read_bytes())

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_bytes() in contents.values()
    assert seen <= set(contents.values())
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary left behind
