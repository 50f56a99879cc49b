"""JSON responses rendered with orjson (numpy scalars and arrays included)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import orjson
from starlette.responses import JSONResponse

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class OrjsonResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=_OPTS)


def iso_utc(value: Any) -> str:
    """RFC 3339 time with an explicit UTC offset (naive times in dajia are UTC)."""
    ts = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return str(ts.isoformat())
