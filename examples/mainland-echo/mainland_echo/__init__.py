"""Echo chat: an example connector that lives outside Mainland's `connectors/` folder.

It reads messages from a tiny JSON API (`GET /messages?after=<id>` → `{"messages": [...], "more": bool}`)
and answers with `POST /messages` (`{"chat": ..., "text": ..., "reply_to": ...}` → `{"id": ...}`).
Installed with pip, it registers under the `mainland.connectors` entry-point group and serves a
channel exactly like a built-in:

    channels:
      echo:
        kind: echo
        api_url: http://127.0.0.1:8025
        token: {"$env": "ECHO_TOKEN"}

Cursor: the id of the newest message returned; the API returns messages with id > after.
"""

from __future__ import annotations

import datetime as dt

from connectors._http import Http
from connectors.base import Connector, Limits, Setting, pick
from inbox.models import Author, FetchResult, InboundItem, OutboundReply


class EchoConnector(Connector):
    kind = "echo"
    display_name = "Echo chat (example)"
    settings = (
        Setting("api_url", required=True, help="Base URL of the echo API"),
        Setting("token", required=True, secret=True, help="Bearer token for the echo API"),
    )
    limits = Limits(max_text_length=1000, formatting="plain")
    default_poll_every = 30.0

    def __init__(self, name, config, **kwargs):
        super().__init__(name, config, **kwargs)
        self.http = Http(self.config["api_url"], headers={"Authorization": f"Bearer {self.config['token']}"},
                         redact=self.redact)

    def fetch(self, cursor: str | None) -> FetchResult:
        data = self.http.get_json("/messages", params={"after": cursor or "0"})
        raw = data.get("messages", [])
        items, rejects = self.each(raw, self._to_item)
        new_cursor = str(raw[-1]["id"]) if raw and "id" in raw[-1] else cursor
        return FetchResult(items, new_cursor, rejects, more=bool(data.get("more")))

    def send(self, reply: OutboundReply) -> str:
        data = self.http.post_json("/messages", {"chat": reply.thread_key, "text": reply.text,
                                                 "reply_to": reply.reply_to_external_id})
        return str(data["id"])

    def _to_item(self, raw: dict) -> InboundItem:
        return InboundItem(
            channel=self.name,
            external_id=str(pick(raw, "id")),
            author=Author(handle=str(pick(raw, "from", "id")), name=str(raw["from"].get("name", "")),
                          identity_kind="echo"),
            text=pick(raw, "text", type=str),
            thread_key=str(pick(raw, "chat")),
            sent_at=dt.datetime.fromtimestamp(pick(raw, "ts", type=(int, float)), dt.UTC),
        )

    def close(self) -> None:
        self.http.close()
