"""The `Mainland-Signature` scheme: HMAC-SHA256 over "<timestamp>." + body, as Stripe and Chatwoot sign.

Outbound webhooks (inbox/webhooks_out.py) sign every delivery with it, and the generic API channel
(connectors/api.py) signs replies and checks inbound posts with it. It lives on its own, importing
nothing of Mainland, so a connector can use it without pulling in the runtime (docs/webhooks.md,
docs/api-channel.md).
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["SIGNATURE_HEADER", "signature", "verify"]

SIGNATURE_HEADER = "Mainland-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Mainland-Signature` header value for `body` sent at `timestamp` (Unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes, *, now: float | None = None, tolerance: int = 300) -> bool:
    """What a receiver does (docs/webhooks.md): a v1 signature of this body, made within `tolerance` seconds."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _sep, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))
