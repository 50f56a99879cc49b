"""Domain errors shared by every part; the CLI maps them to exit code 2, the API to HTTP statuses."""

from __future__ import annotations


class DajiaError(Exception):
    """Base of every error dajia raises on purpose (bad input, refused action)."""


class DataContractError(DajiaError):
    """A marketplace table breaks the data contract; the message names table, column and rows."""

    def __init__(self, table: str, column: str | None, problem: str, rows: list[object] | None = None):
        self.table = table
        self.column = column
        self.problem = problem
        self.rows = list(rows or [])
        where = f"table '{table}'" + (f", column '{column}'" if column else "")
        shown = ""
        if self.rows:
            head = ", ".join(repr(r) for r in self.rows[:5])
            more = f" (and {len(self.rows) - 5} more)" if len(self.rows) > 5 else ""
            shown = f"; first offending rows: {head}{more}"
        super().__init__(f"{where}: {problem}{shown}")


class NotFound(DajiaError):
    """A thing asked for by id does not exist."""


class Conflict(DajiaError):
    """A concurrent change won, or a retry does not match the original request."""


class Forbidden(DajiaError):
    """The actor's role does not allow the action."""


class InvalidTransition(DajiaError):
    """The workflow does not allow this change from the current state."""


class PromotionRefused(DajiaError):
    """The candidate model does not beat the champion through the gate."""
