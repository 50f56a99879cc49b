"""Forwarded headers are believed only from configured proxies (issue 23: uvicorn trusted
``X-Forwarded-For`` from 127.0.0.1 by default, so anyone on the host could pick a fresh rate-limit
bucket per request). ``dajia serve`` as a real process, its public rate limit small."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.serving.conftest import dajia_cmd, free_port, wait_http


@contextmanager
def _serve(home: Path, trusted: str) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DAJIA_HOME": str(home),
        "DATABASE_URL": f"sqlite:///{home / 'dajia.db'}",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "DAJIA_PUBLIC_RATE_PER_MINUTE": "1",
        "DAJIA_PUBLIC_RATE_BURST": "3",
        "DAJIA_TRUSTED_PROXIES": trusted,
    }
    proc = subprocess.Popen(
        [*dajia_cmd(), "serve", "--port", str(port), "--poll-seconds", "3600"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", timeout=120, proc=proc)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _statuses(base: str, spoof: bool) -> list[int]:
    out = []
    with httpx.Client(base_url=base, timeout=30) as c:
        for i in range(6):
            headers = {"X-Forwarded-For": f"203.0.113.{i + 1}"} if spoof else {}
            out.append(c.get("/v1/public/closed-shops", headers=headers).status_code)
    return out


def test_a_spoofed_forwarded_for_does_not_reset_the_rate_limit(tmp_path: Path) -> None:
    with _serve(tmp_path, "") as base:
        assert _statuses(base, spoof=False)[:3] == [200, 200, 200]
        # the bucket of 127.0.0.1 is empty; a made-up client address in the header changes nothing
        assert set(_statuses(base, spoof=True)) == {429}


def test_the_header_is_believed_from_a_configured_proxy(tmp_path: Path) -> None:
    # the test client stands in for the proxy at 127.0.0.1: each forwarded client gets its own bucket
    with _serve(tmp_path, "127.0.0.1") as base:
        assert _statuses(base, spoof=False)[3:] == [429, 429, 429]
        assert _statuses(base, spoof=True) == [200] * 6
