"""How a customer's message shows in the thread: images and video inline, and whether HTML needs a frame.

Images and video come from our own attachment store.

Only a short allow-list of raster image and video types is served inline, and only when the stored
bytes matched the declared type at ingest (`type_mismatch` is false): SVG and anything scriptable
stay download-only. The response is locked down like a download (no sniffing, a sandbox CSP, no
referrer) but with `Content-Disposition: inline` so <img>/<video> can show it. Nothing is ever
fetched from the sender's servers: remote images in mail stay blocked by the sanitiser.

HTML that is only paragraphs, line breaks, links and emphasis (a social post, a short chat message)
says nothing its plain text does not: it is shown as that text, inline, instead of in a sandboxed
frame sized for a newsletter. Anything with more structure keeps the frame.
"""

from __future__ import annotations

import re

from flask import Blueprint, abort, send_file

from inbox import access
from inbox.attachments import safe_filename
from inbox.web import get_store
from inbox.web.auth import current_agent, login_required
from inbox.web.conversations import stored_file

bp = Blueprint("media", __name__)

INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
INLINE_VIDEO_TYPES = frozenset({"video/mp4", "video/webm"})
#: Larger files are offered as downloads only (a thread must stay quick to open).
MAX_INLINE_BYTES = 15 * 1024 * 1024


def inline_kind(attachment: dict) -> str | None:
    """"image", "video" or None: how an attachment may be shown in the thread."""
    if not attachment.get("stored") or attachment.get("type_mismatch") or not attachment.get("sha256"):
        return None
    if (attachment.get("size") or 0) > MAX_INLINE_BYTES:
        return None
    base = (attachment.get("content_type") or "").split(";")[0].strip().lower()
    if base in INLINE_IMAGE_TYPES:
        return "image"
    if base in INLINE_VIDEO_TYPES:
        return "video"
    return None


_TAG = re.compile(r"<\s*/?\s*([a-zA-Z][a-zA-Z0-9]*)")
#: Tags that carry nothing the plain text lacks.
PLAIN_TAGS = frozenset({"p", "br", "a", "span", "b", "strong", "i", "em", "u", "div"})
#: Longer HTML keeps its frame even when simple: a long mail reads better laid out.
MAX_PLAIN_HTML = 4000


def needs_frame(html: str | None) -> bool:
    """False when `html` is simple enough that its plain text says the same (see the module docstring)."""
    if not html:
        return False
    if len(html) > MAX_PLAIN_HTML:
        return True
    return any(tag.lower() not in PLAIN_TAGS for tag in _TAG.findall(html))


@bp.get("/attachments/<int:attachment_id>/inline")
@login_required
def inline(attachment_id: int):
    att = access.require_attachment(get_store(), current_agent(), attachment_id)
    if inline_kind(att) is None:
        abort(404)
    return sandboxed_file(att, inline=True, cache="private, max-age=86400")


def sandboxed_file(att, *, inline: bool, cache: str):
    """A stored attachment as a response that can never run: never sniffed, sandboxed, no referrer.
    Inline, its own type (a picture the page shows); else a download typed application/octet-stream."""
    content_type = (att["content_type"] or "").split(";")[0].strip().lower()
    name = safe_filename(att["filename"], content_type=content_type)
    response = send_file(stored_file(att), mimetype=content_type if inline else "application/octet-stream",
                         as_attachment=not inline, download_name=name, etag=att["sha256"], conditional=True)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = cache
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def init_app(app) -> None:
    app.jinja_env.globals["inline_kind"] = inline_kind
    app.jinja_env.filters["needs_frame"] = needs_frame
