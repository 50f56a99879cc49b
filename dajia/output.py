"""How CLI commands print their results: human text by default, one JSON document with --json."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

console = Console(stderr=False)
err_console = Console(stderr=True)


def _default(o: object) -> Any:
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def to_json(result: Mapping[str, Any]) -> str:
    return json.dumps(result, default=_default, ensure_ascii=False, indent=2, sort_keys=False)


def emit(result: Mapping[str, Any], as_json: bool, human: Callable[[Mapping[str, Any]], None] | None = None) -> None:
    """Print ``result`` as JSON (for scripts) or through ``human`` (for people)."""
    if as_json:
        print(to_json(result))
    elif human is not None:
        human(result)
    else:
        for key, value in result.items():
            console.print(f"[bold]{key}[/bold]: {value}")
