"""The README's quick start, typed as a newcomer types it: its ```bash blocks run verbatim, in order, in
one fresh bash (no virtualenv activated, no dajia on PATH, no DAJIA_/DATABASE_/MLFLOW_ variables) in a
fresh clone of this repository, and their output is checked. Between the blocks, while the service
runs, Chromium looks at what the summary leads to: the console's queue (open cases after the run),
the announcement, the closed shops and the buyers' page at 390 px and 1440 px (screenshots under
test-output/quickstart/).

One shortcut: the clone's ``.venv`` is not installed from the package index (minutes) but made from
this test's environment (its site-packages on the path, the clone installed editable over it), so
``make run`` finds it up to date and runs the clone's own code.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS, _chromium_missing

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "test-output" / "quickstart"
MARK = "__quickstart_block_done__"
PORT = 8000  # the README's port


def quickstart_blocks() -> list[str]:
    """The ```bash blocks of the README's "Quick start" section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def test_the_readme_holds_the_quickstart_blocks_this_test_runs() -> None:
    blocks = quickstart_blocks()
    assert len(blocks) == 4, blocks
    assert blocks[0].startswith("make run") and "dajia serve" in blocks[1] and "kill %1" in blocks[3]


def _fresh_clone(tmp: Path) -> Path:
    clone = tmp / "dajia"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    venv = clone / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = venv / "lib" / version / "site-packages"
    # a path line in a .pth adds the directory without running its .pth files: this environment's
    # editable install of the checkout under test does not come along, the clone's own does
    (site / "_quickstart_parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "--no-deps", "--no-build-isolation", "--no-index", "-e", str(clone)], check=True, capture_output=True
    )
    (venv / ".installed").touch()  # newer than pyproject.toml: make finds the environment up to date
    return clone


class Shell:
    """One bash that reads the blocks from its stdin, as a terminal would feed them."""

    def __init__(self, cwd: Path) -> None:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(cwd.parent),
            "LANG": "C.UTF-8",
            "COLUMNS": "80",
            "TERM": "dumb",
        }
        self.proc = subprocess.Popen(
            ["bash"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def run(self, block: str, timeout: float) -> tuple[int, str]:
        assert self.proc.stdin is not None
        # curl's answers end without a newline: the mark goes on a line of its own
        self.proc.stdin.write(block + f"\n__rc=$?; echo; echo {MARK}$__rc\n")
        self.proc.stdin.flush()
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"block did not finish in {timeout:.0f} s:\n{block}\n" + "\n".join(out)) from None
            if line.startswith(MARK):
                return int(line[len(MARK) :]), "\n".join(out).rstrip("\n")
            out.append(line)

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the shell's own session: nothing else
        self.proc.wait(timeout=30)
        self.proc.stdin.close()
        self.proc.stdout.close()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _check_summary(out: str) -> None:
    assert "dajia crackdown: summary" in out, out
    for noise in ("INFO mlflow", "CloudPickle", "Successfully registered model", "Editable installation"):
        assert noise not in out, f"third-party noise {noise!r} in the summary:\n{out}"
    assert "{'" not in out, f"a dict dump in the summary:\n{out}"
    assert not re.search(r"\d\.000\b", out.split("sweep", 1)[1]), "a count printed as a float"
    assert re.search(r"¥\d{1,3}(,\d{3})+\.\d\d owed", out), "compensation in yuan with separators"
    assert "is the champion: the registry's first version" in out
    keyword = next(line for line in out.splitlines() if line.strip().startswith("keyword"))
    assert keyword.split()[5] == "-", f"the keyword baseline has no Brier score: {keyword}"
    words = " ".join(out.split())  # sentences may wrap at 80 columns; commands may not (below)
    opened = re.search(r"stopped part-way: (\d+) open cases?, (\d+) pending appeals? and (\d+) campaign draft", words)
    assert opened and int(opened[1]) > 0 and int(opened[2]) == 1 and int(opened[3]) == 1, out
    commands = ("export ", "KEY=", ".venv/bin/", "curl ", "echo ", "http://")
    for line in out.splitlines():
        # only commands and paths may be longer than the terminal: printed whole, never wrapped mid-way
        if len(line) > 80:
            command = line.startswith("  ") and line.strip().startswith(commands)
            path = line.split()[-1].startswith("/") and len(line) - len(line.split()[-1]) < 20
            assert command or path, f"wider than 80 columns: {line!r}"
    score_line = next(line for line in out.splitlines() if "curl -s -X POST" in line)
    assert '"route": true' in score_line and "X-API-Key: $KEY" in score_line


def _look(page: Any, url: str, name: str, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(url)
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= width, f"{url} is {overflow} px wide at a {width} px viewport"
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{name}-{width}.png"), full_page=True)


def _browse(key: str, shop: str) -> None:
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{PORT}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(30_000)
            for width in (390, 1440):
                _look(page, f"{base}/public/announcement", "announcement", width)
                body = page.inner_text("body")
                assert "已关闭店铺" in body and "Shops closed" in body and "Bans lifted after compensation" in body
                assert re.search(r"¥\d{1,3}(,\d{3})*\.\d\d", body) and "CNY" not in body
                _look(page, f"{base}/public/closed-shops", "closed-shops", width)
                body = page.inner_text("body")
                assert "not published" in body and "***" not in body
                _look(page, f"{base}/public/compensation", "compensation", width)
                assert "plus 3 times what you paid" in page.inner_text("body")
            page.goto(f"{base}/public/closed-shops?page=2")
            assert "page 2 of" in page.inner_text("body")
            page.get_by_role("link", name="previous").click()
            assert "page 1 of" in page.inner_text("body")
            page.goto(f"{base}/public/closed-shops?q=zzzz-no-such-shop")
            assert "No closed shop matches" in page.inner_text("body")
            page.goto(f"{base}/console/login")
            page.get_by_label("API key").fill(key)
            with page.expect_navigation():
                page.get_by_role("button", name="Sign in").click()
            for width in (1440, 390):
                page.set_viewport_size({"width": width, "height": 900})
                page.goto(f"{base}/console/queue")
                body = page.inner_text("body")
                assert shop in body, "the suspected shop scored in the quick start waits in the queue"
                page.screenshot(path=str(OUTPUT / f"console-queue-{width}.png"), full_page=width == 1440)
            page.set_viewport_size({"width": 1440, "height": 900})
            page.goto(f"{base}/console/admin/campaigns")
            assert "draft" in page.inner_text("body")
            page.screenshot(path=str(OUTPUT / "console-campaigns-1440.png"))
        finally:
            browser.close()


def test_the_quickstart_verbatim_in_a_fresh_clone(tmp_path: Path) -> None:
    reason = _chromium_missing()
    if reason is not None:
        pytest.fail(reason)
    assert shutil.which("curl"), "the quick start needs curl"
    assert _port_free(PORT), f"port {PORT} (the README's) is taken: stop what listens there"
    blocks = quickstart_blocks()
    clone = _fresh_clone(tmp_path)
    shell = Shell(clone)
    try:
        rc, out = shell.run(blocks[0], timeout=420)
        assert rc == 0, out
        _check_summary(out)

        rc, out = shell.run(blocks[1], timeout=180)
        assert rc == 0, out
        assert "dajia serve: starting on http://127.0.0.1:8000" in out
        assert re.search(
            r"dajia serve: ready in [\d.]+ s \(dajia-shop-risk v1\), listening on http://127.0.0.1:8000", out
        )
        ready = json.loads(out.splitlines()[-1])
        assert ready["ready"] is True and ready["model"]["version"] == "1"

        rc, out = shell.run(blocks[2], timeout=120)
        assert rc == 0, out
        # what `dajia people add` says (who was registered), the two curl answers (no newline after either),
        # then the key
        said, out = out[: out.index('{"')], out[out.index('{"') :]
        assert "person_id: newcomer" in said and "New Comer" in said, said
        decoder = json.JSONDecoder()
        scored, end = decoder.raw_decode(out)
        listed, end2 = decoder.raw_decode(out, end + len(out[end:]) - len(out[end:].lstrip()))
        key = out[end2:].strip()
        assert re.fullmatch(r"dajia_[0-9a-f]{16}_\S+", key), out
        result = scored["results"][0]
        # the riskiest open case's shop, routed at the crackdown's sweep (45 days before the snapshot), scored
        # now: flagged still (suspected, or watch as its history moved on), with its reasons and its open case
        assert result["tier"] in ("watch", "suspected") and result["reasons"], scored
        assert result["case"]["status"] == "open" and result["case"]["created"] is False, scored
        items = listed["items"] if isinstance(listed, dict) else listed
        assert items and all(c["status"] == "open" for c in items)

        _browse(key, result["shop_id"])

        rc, out = shell.run(blocks[3], timeout=60)
        assert rc == 0, out
        deadline = time.monotonic() + 30
        while not _port_free(PORT):
            assert time.monotonic() < deadline, "kill %1 did not stop the service"
            time.sleep(0.2)
    finally:
        shell.close()
