"""No personal field of any generated shop (owner phone, owner e-mail, home address, ID number hash)
appears in any log line or console output of a whole crackdown run plus API traffic.

The run fixture captured the root logger at DEBUG (every library's loggers, uvicorn's access log
included) and the process's stdout/stderr file descriptors for the whole crackdown; the API
server's logs join the same sink. The test greps for the shops' actual values."""

from __future__ import annotations

import httpx

from marketplace.schema import PERSONAL_FIELDS
from tests.reliability.conftest import Run, Server


def test_no_personal_value_in_any_log_line(run: Run, api: Server) -> None:
    shops = run.shops()
    # API traffic that touches these shops: score (and route) by id, read their cases, the public lists
    ids = [str(s) for s in shops["shop_id"].head(50)]
    r = httpx.post(
        f"{api.base_url}/v1/scores",
        json={"shop_ids": ids, "route": True},
        headers={"X-API-Key": api.keys["admin"]},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    for path in ("/v1/cases?limit=50", "/v1/predictions?limit=50"):
        assert httpx.get(api.base_url + path, headers={"X-API-Key": api.keys["reviewer"]}).status_code == 200
    assert httpx.get(f"{api.base_url}/v1/public/closed-shops").status_code == 200
    assert (
        httpx.post(f"{api.base_url}/v1/scores", json={"shop_ids": ["no-such"]}, headers={"X-API-Key": "x"}).status_code
        == 401
    )

    text = "\n".join(run.sink.lines)
    assert len(run.sink.lines) > 100 and "uvicorn" in text  # the capture really saw the run and the API
    values = {v for col in PERSONAL_FIELDS for v in shops[col].dropna().astype(str) if len(v) >= 6}
    assert len(values) > len(shops)  # thousands of real values are searched for
    leaked = sorted(v for v in values if v in text)
    assert not leaked, f"{len(leaked)} personal values in the logs, e.g. {leaked[:3]}"
