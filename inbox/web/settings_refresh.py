"""Settings an admin changed in another process apply on this process's next request."""

from __future__ import annotations

from flask import Flask, request

from inbox.web.request_store import get_store, mainland


def _take_in_settings() -> None:
    # Settings an admin changed in another process (another web process, the command line) apply on
    # this process's next request: one single-row read, which nearly every page opens the store for anyway.
    if request.endpoint in (None, "static"):
        return
    mainland().refresh(get_store())


def init_app(app: Flask) -> None:
    app.before_request(_take_in_settings)
