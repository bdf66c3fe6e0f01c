""""Remember this device" at the sign-in code step (issue 13), off unless `web.remember_device_days` > 0.

When the agent ticks the box at `/login/code`, the browser gets a separate cookie holding a random
token (256 bits); the server keeps only its SHA-256 with the agent, a readable label made from the
User-Agent ("Chrome on Linux"), and when it was made, expires and was last used. The next time the
right password is typed in that browser, the code step is skipped. The cookie is HttpOnly and
SameSite=Lax, and Secure with the `__Host-` prefix whenever the session cookie is (inbox/web/installation.py).

A token only works for the agent it was made for, until it expires, while the setting is above 0
and while the agent has a second factor. The store forgets an agent's devices when the password
changes, the second factor is turned on, off or its recovery codes replaced, the agent is disabled
or signs out everywhere (inbox/store/agents.py); the agent forgets them one by one or all at once
on `/account/security`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from typing import Any

from flask import Response, current_app, request

from inbox import clock
from inbox.i18n import gettext as _
from inbox.store.base import iso
from inbox.web import get_store

#: The most days a device may be remembered (`web.remember_device_days` is checked against it).
MAX_DAYS = 90
_MAX_TOKEN_CHARS = 100
_MAX_LABEL_CHARS = 80

# Most specific first: Edge and Opera also say "Chrome", Chrome also says "Safari".
_BROWSERS = (("Edg/", "Edge"), ("EdgA/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
             ("FxiOS/", "Firefox"), ("CriOS/", "Chrome"), ("Chromium/", "Chromium"),
             ("HeadlessChrome/", "Chromium"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (("iPhone", "iOS"), ("iPad", "iPadOS"), ("Android", "Android"), ("CrOS", "ChromeOS"),
            ("Windows", "Windows"), ("Mac OS X", "macOS"), ("Macintosh", "macOS"), ("Linux", "Linux"))
#: Client-hint brands that name no browser (Chromium adds a made-up "Not...Brand" to every list).
_GENERIC_BRANDS = {"Chromium"}


def remember_days() -> int:
    """`web.remember_device_days`: 0 (the default) when the box is not offered."""
    web = current_app.config["MAINLAND"].extra.get("web") or {}
    return int(web.get("remember_device_days") or 0)


def cookie_name() -> str:
    """`__Host-device` where the session cookie has the `__Host-` prefix, else `mainland_device`."""
    return "__Host-device" if current_app.config["SESSION_COOKIE_NAME"].startswith("__Host-") else "mainland_device"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def device_label(headers: Any) -> str:
    """A readable name for the browser that sent `headers`: "Firefox on Windows", "Chromium on Linux"."""
    agent = headers.get("User-Agent", "")
    browser = _hinted_browser(headers.get("Sec-CH-UA", "")) or next(
        (name for marker, name in _BROWSERS if marker in agent), None)
    hinted_system = headers.get("Sec-CH-UA-Platform", "").strip('" ')
    system = next((name for marker, name in _SYSTEMS if marker in agent), None) or hinted_system or None
    if system == "Chrome OS":
        system = "ChromeOS"
    label = _("%(browser)s on %(system)s", browser=browser or _("A browser"), system=system or _("an unknown system"))
    return label[:_MAX_LABEL_CHARS]


def _hinted_browser(brands: str) -> str | None:
    """The browser named in a `Sec-CH-UA` header (`"Chromium";v="120", "Not?A_Brand";v="24"`)."""
    names = [name for name in re.findall(r'"([^"]{1,40})"\s*;\s*v=', brands) if "brand" not in name.lower()]
    specific = [name.removeprefix("Google ").removeprefix("Microsoft ") for name in names
                if name not in _GENERIC_BRANDS]
    return (specific or names or [None])[0]


def remember(response: Response, agent_id: int) -> str:
    """Remember this browser for the agent: a row with the token's hash, and the cookie on `response`.
    Returns the device's label."""
    days = remember_days()
    token = secrets.token_urlsafe(32)
    now = clock.now()
    label = device_label(request.headers)
    get_store().remember_device(agent_id, _hash(token), label=label,
                                expires_at=iso(now + dt.timedelta(days=days)), now=iso(now))
    config = current_app.config
    response.set_cookie(cookie_name(), token, max_age=days * 24 * 3600, path="/", httponly=True,
                        samesite="Lax", secure=bool(config["SESSION_COOKIE_SECURE"]))
    return label


def forget_cookie(response: Response) -> None:
    response.delete_cookie(cookie_name(), path="/", httponly=True, samesite="Lax",
                           secure=bool(current_app.config["SESSION_COOKIE_SECURE"]))


def this_device() -> dict[str, Any] | None:
    """The live remembered device this browser's cookie names (whoever's it is), or None."""
    token = request.cookies.get(cookie_name(), "")
    if not token or len(token) > _MAX_TOKEN_CHARS or remember_days() == 0:
        return None
    return get_store().live_remembered_device(_hash(token), iso(clock.now()))


def remembered_for(agent: dict[str, Any]) -> dict[str, Any] | None:
    """The device this browser was remembered as for `agent` (whose password was just right), noting
    the use; None when the code step must be asked."""
    device = this_device()
    if device is None or device["agent_id"] != agent["id"]:
        return None
    get_store().note_device_used(device["id"], iso(clock.now()))
    return device
