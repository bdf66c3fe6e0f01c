"""The undo-send toast on every page: replies of this agent still in the undo window, wherever they went.

After "Send + resolve" the agent is taken straight on to the next conversation; the reply waits in
the outbox for `web.undo_send_seconds` (inbox/outbox.py) and this toast, at the bottom of whatever
page they are on, counts down with an Undo button (the same `undo-send` route as the composer's own).
Undoing brings them back to that conversation with the text in the composer (kept as a draft).
The conversation the reply belongs to shows its own undo bar in the composer instead.
"""

from __future__ import annotations

import math
from typing import Any

from flask import Flask, request

from inbox import clock
from inbox.store.base import parse_iso
from inbox.web import get_store


def pending_sends() -> list[dict[str, Any]]:
    from inbox.web.auth import current_agent

    agent = current_agent()
    if agent is None:
        return []
    now = clock.now()
    here = (request.view_args or {}).get("conversation_id") if request.endpoint == "conversations.show" else None
    shown = []
    for row in get_store().undoable_replies_of(agent["id"]):
        if row["conversation_id"] == here:
            continue
        due = parse_iso(row["next_at"]) or now
        left = math.ceil((due - now).total_seconds())
        if left > 0:
            shown.append({**row, "seconds_left": left})
    return shown


def init_app(app: Flask) -> None:
    app.jinja_env.globals["pending_sends"] = pending_sends
