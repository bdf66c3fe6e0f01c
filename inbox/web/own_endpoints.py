"""What the pages a channel serves itself share (the web form, the website chat): which channel a
request is for, and which origins are our own.

A channel with its own endpoint is reached by its configured name in the URL; any other name, a
disabled channel, or a channel of another kind is a plain 404, so the address says nothing about
what else is configured.
"""

from __future__ import annotations

from typing import TypeVar

from flask import abort, current_app, g, request

from connectors.base import Connector
from connectors.webform import origin_of

C = TypeVar("C", bound=Connector)


def channel_connector(channel: str, served_by: type[C]) -> C:
    """The connector of the enabled channel `channel` if `served_by` serves it (made once per
    request); 404 for anything else."""
    made: dict[tuple[str, str], Connector] = g.setdefault("own_endpoint_connectors", {})
    key = (served_by.kind, channel)
    if key not in made:
        mainland = current_app.extensions["mainland"]
        config = mainland.config.channels.get(channel)
        if config is None or not config.enabled or config.kind != served_by.kind:
            abort(404)
        made[key] = mainland.connector(channel)
    return made[key]  # type: ignore[return-value]


def connector_made(served_by: type[C]) -> C | None:
    """The connector `channel_connector` made for `served_by` in this request, if it made one."""
    made: dict[tuple[str, str], Connector] = g.get("own_endpoint_connectors", {})
    return next((c for (kind, _), c in made.items() if kind == served_by.kind), None)  # type: ignore[return-value]


def own_origins() -> set[str]:
    """The origins this installation is reached at: the request's host and the configured base URL."""
    mainland = current_app.extensions["mainland"]
    return {o for o in (origin_of(request.host_url), origin_of(mainland.config.base_url)) if o}
