"""/admin/quarantine: what could not be taken in, for admins, in the browser as on the command line.

The list shows held items (or released ones, or both) newest first, 50 a page by id, filtered by
channel. One item shows its reason and its raw bytes as escaped text (never rendered as HTML: they
are whatever a channel or a stranger sent), with a download of the exact bytes. "Reprocess" runs
`inbox.reprocess.reprocess`, the code path of `mainland quarantine reprocess`; "Delete" removes the
item and its bytes. Both are POSTs with the CSRF token, and every look, download and change is
written to the audit log.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for

from inbox import clock
from inbox.i18n import gettext as _
from inbox.reprocess import reprocess as reprocess_item
from inbox.sanitize import CONTROLS
from inbox.store import NotFound, now_iso
from inbox.store.quarantine import QUARANTINE_PAGE, QUARANTINE_STATES
from inbox.web import get_store, mainland
from inbox.web.auth import role_required
from inbox.web.conversations import content_disposition

bp = Blueprint("quarantine", __name__)

admin_only = role_required("admin")

#: Bytes of an item shown on its page; the download has all of them.
MAX_SHOWN_BYTES = 256 * 1024


def _actor() -> str:
    return f"agent:{g.agent['id']}"


def _audit(action: str, quarantine_id: int, **details: Any) -> None:
    store = get_store()
    with store.write():
        store.audit(now_iso(), _actor(), action, "quarantine", quarantine_id, ip=request.remote_addr, **details)


def _item_or_404(quarantine_id: int) -> dict[str, Any]:
    try:
        return get_store().quarantine_item(quarantine_id)
    except NotFound:
        abort(404)


def shown_text(raw: bytes, limit: int = MAX_SHOWN_BYTES) -> tuple[str, bool]:
    """The bytes as text for a page: UTF-8 where it is, U+FFFD for the rest and for control characters.

    Returns the text and whether it was cut at `limit` bytes. The template escapes it like any text.
    """
    text = raw[:limit].decode("utf-8", errors="replace")
    return CONTROLS.sub("\ufffd", text), len(raw) > limit


@bp.get("/admin/quarantine")
@admin_only
def index():
    store = get_store()
    channel = request.args.get("channel", "").strip()[:200] or None
    status = request.args.get("status", "held")
    if status not in QUARANTINE_STATES:
        abort(400)
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before < 1 << 62:
        abort(404)
    rows = store.quarantine.page(channel=channel, status=status, before=before, limit=QUARANTINE_PAGE + 1)
    more = len(rows) > QUARANTINE_PAGE
    rows = rows[:QUARANTINE_PAGE]
    args = {k: v for k, v in (("channel", channel), ("status", status if status != "held" else None)) if v}
    return render_template(
        "admin/quarantine.html", rows=rows, channel=channel, status=status, args=args,
        channels=sorted(set(store.quarantine.channels()) | set(mainland().config.channels)),
        next_url=url_for("quarantine.index", before=rows[-1].id, **args) if more else None,
        first_url=url_for("quarantine.index", **args) if before is not None else None,
    )


@bp.get("/admin/quarantine/<int:quarantine_id>")
@admin_only
def show(quarantine_id: int):
    item = _item_or_404(quarantine_id)
    if request.method == "GET":
        # The raw bytes are someone's message: who read them is on record (once an hour per admin).
        get_store().audit_log.record_view(clock.now(), _actor(), "quarantine", quarantine_id,
                                           action="quarantine_viewed")
    text, cut = shown_text(item["raw"])
    return render_template("admin/quarantine_item.html", item=item, size=len(item["raw"]), text=text, cut=cut,
                           shown_bytes=MAX_SHOWN_BYTES)


@bp.get("/admin/quarantine/<int:quarantine_id>/raw")
@admin_only
def download(quarantine_id: int):
    item = _item_or_404(quarantine_id)
    if request.method == "GET":
        _audit("quarantine_downloaded", quarantine_id)
    response = Response(item["raw"], mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = content_disposition(f"quarantine-{quarantine_id}-{item['channel']}.bin")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/admin/quarantine/<int:quarantine_id>/reprocess")
@admin_only
def reprocess(quarantine_id: int):
    item = _item_or_404(quarantine_id)
    if item["status"] != "held":
        flash(_("Item #%(id)d is not held any more.", id=quarantine_id), "error")
        return redirect(url_for("quarantine.show", quarantine_id=quarantine_id))
    result = reprocess_item(mainland(), get_store(), quarantine_id)
    _audit("quarantine_reprocessed", quarantine_id, outcome=result.outcome, message_id=result.message_id)
    if result.outcome == "still failing":
        flash(_("Item #%(id)d still cannot be taken in: %(reason)s", id=quarantine_id, reason=result.detail),
              "error")
    elif result.outcome == "duplicate":
        flash(_("Item #%(id)d was already in the inbox; it is released from the quarantine.", id=quarantine_id),
              "success")
    else:
        flash(_("Item #%(id)d is taken in and released from the quarantine.", id=quarantine_id), "success")
    return redirect(url_for("quarantine.show", quarantine_id=quarantine_id))


@bp.post("/admin/quarantine/<int:quarantine_id>/delete")
@admin_only
def delete(quarantine_id: int):
    item = _item_or_404(quarantine_id)
    get_store().quarantine.delete(quarantine_id)
    _audit("quarantine_deleted", quarantine_id, channel=item["channel"], reason=item["reason"][:200])
    flash(_("Item #%(id)d is deleted with its bytes.", id=quarantine_id), "success")
    return redirect(url_for("quarantine.index"))
