"""URL converters: `<int:...>` in every route takes only ids the database can hold."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter


class RowIdConverter(IntegerConverter):
    """`<int:...>` in every route: ids the database can hold. A larger number (SQLite keeps 64-bit
    signed integers) matches no route, so it is a 404 instead of an overflow error and a 500."""

    def __init__(self, url_map: Any, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = 2**63 - 1, signed: bool = False) -> None:  # noqa: A002
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def init_app(app: Flask) -> None:
    """Call before any blueprint is registered: a rule takes its converters when it is added."""
    app.url_map.converters["int"] = RowIdConverter
