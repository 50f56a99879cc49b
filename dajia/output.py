"""How CLI commands print their results: human text by default, one JSON document with --json."""

from __future__ import annotations

import json
import sys
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


#: how to undo quiet_third_party (run by ``dajia.cli.main`` when the command ends)
_undo: list[Callable[[], None]] = []


def quiet_third_party(verbose: bool) -> None:
    """Unless ``verbose``: MLflow's INFO and WARNING log lines (its CloudPickle warning) and its
    event prints ("Successfully registered model ...") are not shown; its ERROR records still are,
    and dajia says itself what it did. Undone by :func:`restore_third_party`."""
    if verbose:
        return
    import logging
    import re

    from mlflow.utils import logging_utils

    logger = logging.getLogger("mlflow")
    stream = logging_utils.MLFLOW_LOGGING_STREAM
    level = logger.level
    record = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} (ERROR|CRITICAL) ")

    def write(text: str) -> None:  # log records arrive whole; eprint() writes bare text
        if record.match(text):
            sys.stderr.write(text)

    def undo() -> None:
        logger.setLevel(level)
        vars(stream).pop("write", None)

    logger.setLevel(logging.ERROR)
    stream.write = write  # type: ignore[method-assign]
    _undo.append(undo)


def restore_third_party() -> None:
    while _undo:
        _undo.pop()()


def num(value: Any) -> str:
    """A count for people: ``1,008`` (an integer-valued float prints as an integer); None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.3f}"
    return f"{int(value):,}"


def yuan(value: Any) -> str:
    """Money for people: ``¥98,779,983.04``."""
    return f"¥{float(value or 0):,.2f}"


def plural(n: Any, word: str, many: str | None = None) -> str:
    """``1 case``, ``2,000 cases``."""
    return f"{num(n)} {word if n == 1 else (many or word + 's')}"


def command(line: str, indent: str = "  ") -> None:
    """Print a command a person copies: one line however wide the terminal (never wrapped by us)."""
    console.print(f"{indent}{line}", soft_wrap=True, highlight=False, markup=False)


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
