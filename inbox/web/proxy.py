"""The client's address and scheme behind the reverse proxies named in `web.trusted_proxies`."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def init_app(app: Flask) -> None:
    hops = ((app.config["MAINLAND"].extra.get("web") or {}).get("trusted_proxies") or 0)
    if hops:
        # Behind a TLS proxy every request comes from the proxy's address: take the client's address
        # and scheme from the X-Forwarded-* headers the trusted proxies add, and from nobody else.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
