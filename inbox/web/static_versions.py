"""Static files by content hash: `url_for('static', ...)` adds `?v=<hash>`, and such a URL is cached a year."""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Flask, current_app, request

#: A year: a static file's URL carries its content hash, so a changed file has a new URL.
STATIC_MAX_AGE = 365 * 24 * 3600


def _static_version(app: Flask, filename: str) -> str:
    """A short hash of a static file's bytes, computed once per file and process."""
    versions: dict[str, str] = app.extensions.setdefault("static_versions", {})
    if filename not in versions:
        try:
            data = (Path(app.static_folder or "") / filename).read_bytes()
        except OSError:
            data = b""
        versions[filename] = hashlib.sha256(data).hexdigest()[:12]
    return versions[filename]


def _version_static_urls(endpoint: str, values: dict) -> None:
    # Every page asked again for each script and stylesheet (a 304 each, 100-200 ms a page); with the
    # content hash in the URL the browser keeps them until they change.
    if endpoint == "static" and "filename" in values and "v" not in values:
        values["v"] = _static_version(current_app, values["filename"])


def _cache_versioned(response):
    if request.endpoint == "static" and request.args.get("v") and response.status_code == 200:
        response.cache_control.no_cache = None
        response.cache_control.max_age = STATIC_MAX_AGE
        response.cache_control.public = True
        response.cache_control.immutable = True
    return response


def init_app(app: Flask) -> None:
    app.url_defaults(_version_static_urls)
    app.after_request(_cache_versioned)
