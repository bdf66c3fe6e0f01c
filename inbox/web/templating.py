"""What every template shares: compiled templates kept per process, and every shown value cleaned."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.templating import Environment
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket
from markupsafe import Markup

from inbox.sanitize import without_bidi_controls


class _ProcessTemplateCache(BytecodeCache):
    """Compiled templates shared by every app of this process (Jinja keys them by name and source
    checksum, so an edited template is compiled again). One app per process compiles each template
    once anyway; a process that builds several (the web and worker of `serve`, tests) compiles it once."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_TEMPLATE_CACHE = _ProcessTemplateCache()


def _shown(value: Any) -> Any:
    """Every value a page shows passes here: customer-written names and text lose the bidi controls
    that could make them pass for something else (inbox.sanitize.without_bidi_controls)."""
    if isinstance(value, str):
        cleaned = without_bidi_controls(value)
        return Markup(cleaned) if isinstance(value, Markup) else cleaned
    return value


_DICT_ATTRIBUTES = frozenset(dir(dict))


class RowEnvironment(Environment):
    """Flask's Jinja environment, with `row.name` on a plain dict read as its key at once.

    Jinja tries the attribute first and takes the key only after `getattr` raised AttributeError:
    about 1.5 us a lookup against 0.3 for an object's attribute, and the queue's and conversation's
    rows are dicts read this way thousands of times a page (a fifth of a web process's CPU under
    `bench/load.py`). The result is Jinja's own: a dict's methods (`items`, `get`...) stay methods,
    and a missing key is undefined as before.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


def init_app(app: Flask) -> None:
    """Call before anything touches `app.jinja_env`: the options count only when it is first built."""
    app.jinja_environment = RowEnvironment
    app.jinja_options = {**app.jinja_options, "bytecode_cache": _TEMPLATE_CACHE}
    app.jinja_env.finalize = _shown
