"""The second factor at sign-in: TOTP codes (RFC 6238, pyotp) and one-time recovery codes.

A code is accepted for the current 30-second step and one step either side (a phone's clock a little
off), and only for a step later than the last one accepted, so a code seen over someone's shoulder
cannot be used again. Time comes from `inbox.clock`, so tests decide it.

Recovery codes are random (50 bits each, shown once as `xxxxx-xxxxx`) and stored as a SHA-256 of
their normalised form: dashes, spaces and case do not matter when typed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

import pyotp
import segno

from inbox import clock

ISSUER = "Mainland"
#: Steps either side of now that are still accepted (one step: 30 seconds of clock skew).
SKEW_STEPS = 1
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str) -> str:
    """The otpauth:// address an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The QR code of `uri` as an inline <svg> (black on white, whatever the page's colours)."""
    return segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff", border=4)


def matching_step(secret: str, code: str, now: dt.datetime | None = None) -> int | None:
    """The time step whose code `code` is (within the skew window), or None."""
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    at = now or clock.now()
    for offset in range(-SKEW_STEPS, SKEW_STEPS + 1):
        moment = at + dt.timedelta(seconds=offset * totp.interval)
        if hmac.compare_digest(totp.at(moment), code):
            return totp.timecode(moment)
    return None


def new_recovery_codes() -> list[str]:
    """Ten fresh codes like `k3m9p-x2vqr`."""
    codes = []
    for _ in range(RECOVERY_CODES):
        chars = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{chars[:5]}-{chars[5:]}")
    return codes


def recovery_hash(code: str) -> str:
    """What is stored for a recovery code: the SHA-256 of its letters, lower-case, without dashes."""
    normal = "".join(ch for ch in code.lower() if ch.isalnum())
    return hashlib.sha256(normal.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_recovery_code(code: str) -> bool:
    normal = "".join(ch for ch in code.lower() if ch.isalnum())
    return len(normal) == 10 and not normal.isdigit()
