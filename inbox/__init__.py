"""Mainland: a self-hosted customer-care inbox that brings every channel onto one mainland.

`create_app(config)` builds the Flask app (the factory is `inbox.web.create_app`): it reads and
checks the configuration, applies database migrations, builds the connector registry and sets up
the web app's subsystems and page areas. Nothing happens at import time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from connectors.base import Connector
    from inbox.config import Config


def create_app(config: Config | Mapping[str, Any] | str | Path | None = None, *,
               connectors: Iterable[type[Connector]] = ()) -> Flask:
    """Build the web app: see `inbox.web.create_app`.

    Imported on first use: every connector imports this package (through `inbox.models`), and
    importing a connector must not load the web app, whose runtime imports the connectors.
    """
    from inbox.web import create_app as build

    return build(config, connectors=connectors)
