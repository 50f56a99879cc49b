"""The reviewer console: server-rendered pages under ``/console`` for reviewers and admins.

``mount(app)`` adds the routes and the console's HTML error handling to the FastAPI app; nothing
happens at import time. See docs/console.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def mount(app: FastAPI) -> None:
    from serving.console.routes import mount as _mount

    _mount(app)
