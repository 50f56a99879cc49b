"""The ``dajia`` command: one subcommand per job.

Each job lives in its own module under ``dajia/commands``; this module only assembles them and
maps dajia's own errors to exit code 2 with one readable message (never a traceback).
"""

from __future__ import annotations

import importlib
import sys

import typer

from core.errors import DajiaError, disk_full
from dajia.output import err_console, restore_third_party

app = typer.Typer(
    name="dajia",
    help="dajia (打假): find shops that sell counterfeits and drive them through the sanction workflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

#: command modules; each exposes ``register(app)``
COMMAND_MODULES: tuple[str, ...] = (
    "serve",
    "keys",
    "predictions",
    "train",
    "evaluate",
    "promote",
    "validate",
    "generate",
    "cases",
    "audit",
    "people",
    "campaign",
    "features",
    "sweep",
    "partitions",
    "crackdown",
)


_registered = False


@app.command()
def version(as_json: bool = typer.Option(False, "--json", help="print as JSON")) -> None:
    """Print dajia's version."""
    from importlib.metadata import version as pkg_version

    from dajia.output import emit

    emit({"dajia": pkg_version("dajia")}, as_json)


def _register() -> None:
    global _registered
    if _registered:
        return
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"dajia.commands.{name}")
        module.register(app)
    _registered = True


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    _register()
    try:
        return _run(argv)
    finally:
        restore_third_party()


def _run(argv: list[str] | None) -> int:
    try:
        app(args=argv, standalone_mode=False)
    except DajiaError as exc:
        detail = getattr(exc, "detail", None)  # e.g. a worker's traceback behind a cluster step's one line
        if detail and "--verbose" in (sys.argv[1:] if argv is None else argv):
            err_console.print(detail, soft_wrap=True, highlight=False, markup=False)
        err_console.print(f"[red]error:[/red] {exc}", soft_wrap=True, highlight=False)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except Exception as exc:
        # typer ships its own copy of click; its usage errors carry show() and exit_code
        if hasattr(exc, "show") and getattr(exc, "exit_code", None) == 2:
            exc.show()
            return 2
        full = disk_full(exc)  # a writer or the SQLite store hit a full disk: one line, not a traceback
        if full is not None:
            err_console.print(f"[red]error:[/red] {full}", soft_wrap=True, highlight=False)
            return 2
        from sqlalchemy import exc as sa_exc

        if isinstance(exc, sa_exc.DBAPIError):  # read-only, unreachable, refused: one line, no parameters
            from dajia.db import database_problem

            err_console.print(f"[red]error:[/red] {database_problem(exc)}", soft_wrap=True, highlight=False)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
