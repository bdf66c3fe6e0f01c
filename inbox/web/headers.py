"""Security headers on every response: no sniffing, no framing by other sites, a strict default CSP."""

from __future__ import annotations

from flask import Flask, current_app


def _security_headers(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if current_app.config["MAINLAND"].base_url.startswith("https://"):
        # Served over HTTPS (behind the TLS proxy the docs describe): browsers never try plain HTTP again.
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    # A page with its own frame-ancestors (the embeddable web form) is framed by that policy alone:
    # X-Frame-Options cannot name other sites and would contradict it.
    if "frame-ancestors" not in response.headers.get("Content-Security-Policy", ""):
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'self'",
    )
    return response


def init_app(app: Flask) -> None:
    app.after_request(_security_headers)
