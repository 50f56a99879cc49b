"""The public pages' templates (announcement, closed shops, how buyers are compensated) and their filters.

``environment()`` is the one Jinja environment of these pages: autoescaped, strict about missing
values, with ``yuan`` (``¥3,659,034.70``) and ``n`` (``1,234``) for the figures people read.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2


def yuan(value: Any) -> str:
    """Money as people read it: ``¥3,659,034.70``."""
    return f"¥{float(value or 0):,.2f}"


def count(value: Any) -> str:
    """A count with thousands separators: ``1,234``."""
    return f"{int(value or 0):,}"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).resolve().parent)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["yuan"] = yuan
    env.filters["n"] = count
    return env
