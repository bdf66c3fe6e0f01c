"""Instagram: direct messages and comments on the account's media, by webhook and by polling.

What it does
------------
- **Direct messages** to the Instagram professional account become *private* conversations, one
  per person (thread key: the person's Instagram-scoped id, IGSID). They arrive as Messenger-
  shaped `messaging` events under `object: "instagram"`; echoes of what we sent are skipped.
- **Comments** on the account's posts and reels become *public* conversations, one per media
  (thread key `media:<media id>`); a reply to a comment refers to it (`parent_id`). The account's
  own comments are skipped.
- **@mentions** of the account by others (webhook field `mentions`: `media_id`, and
  `comment_id` for a mention in a comment) become *public* conversations, one per media
  (thread key `mention:<media id>`), from the mentioning user (known by username only). The
  webhook names ids only, so the comment or caption is read as documented:
  `GET /{ig-id}?fields=mentioned_comment.comment_id(<id>){...}` (with the media's caption and
  permalink, shown above the comment as the post it is on) or
  `mentioned_media.media_id(<id>){...}` (the caption is the text, the permalink the context).
  A mention in a comment on our own post is left to its `comments` event, so it is stored once,
  in the post's conversation. Mentions come by webhook only: Meta keeps no list to poll.
- **Button presses** (`messaging_postbacks`: ice breakers, buttons) are DMs with the button's
  title as text and the payload in the `pressed` header, as on Messenger.
- **Read receipts** (`messaging_seen`, `read.mid`) move our replies to "read".

Two ways to connect (setting `login`)
-------------------------------------
- `facebook` (default): the Instagram account is linked to a Facebook Page and the app uses
  Facebook Login with a **Page access token**. Calls go to `https://graph.facebook.com`:
  conversations at `GET /{page-id}/conversations?platform=instagram`, replies through
  `POST /{page-id}/messages`. Needs `page_id` and `account_id` (the Instagram account's id).
- `instagram`: the app uses the Instagram API with Instagram Login and an **Instagram user
  token**. Calls go to `https://graph.instagram.com`: `GET /{ig-id}/conversations` and
  `POST /{ig-id}/messages`. Needs `account_id` only.

Inbound: webhooks first, polling as the safety net
--------------------------------------------------
Webhooks arrive at `<base_url>/webhooks/<channel>` and are verified exactly like the Facebook
Page's (`X-Hub-Signature-256` over the raw body with `app_secret`; the `hub.challenge`
handshake with `verify_token`). The worker also polls (default every 300 s): the Conversations
API (newest first, down to the stored `updated_time`; Meta shows the 20 newest messages of a
conversation and leaves out Requests-folder conversations idle for 30 days), and the comments of
the `recent_posts` newest media (`GET /{ig-id}/media`, whose `caption` and `permalink` are shown
above its comments, then `GET /{media-id}/comments` with the `replies` of each). Meta's ids (message `mid`s, comment ids) are the keys, so what came both ways
is stored once. The cursor is the same JSON object as the Facebook connector's.

Replies
-------
- In a DM conversation: `POST /{node}/messages` to the IGSID: `RESPONSE` within 24 hours of the
  customer's last message, `MESSAGE_TAG` + `HUMAN_AGENT` up to 7 days (setting `human_agent`),
  refused after that with the reason. At most 1000 characters.
- In a comment conversation: a public reply `POST /{ig-comment-id}/replies`. Instagram only
  threads replies under top-level comments: a reply to a reply lands under its top-level comment.
- A private reply to a comment (an `OutboundReply` with `public=False` in a comment conversation):
  one DM to the commenter (`recipient: {"comment_id": ...}`), once per comment, within 7 days.
- In a mention conversation: a public comment `POST /{ig-id}/mentions` (`media_id`, `comment_id`
  for a comment mention, `message`); there is no private reply to a mention.

Files
-----
Replies carry **no files** here, and the limits say so (`supports_attachments`,
`attachments_public` and `attachments_private` all False), so the composer tells the agent
before they try; `send()` refuses a reply with files with the reason. Meta's documented ways to
send a file in an Instagram DM take it by public URL (`message.attachment.payload.url`, or the
Attachment Upload API, which uploads images only from a URL and audio/video from a server in a
separate step with `platform=instagram`), and comment replies take text only. Mainland does not
publish agents' files at public URLs, so it does not offer them here.

Setup, permissions and settings: docs/channels/instagram.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from connectors._meta import (
    COMMON_SETTINGS,
    MetaConnector,
    _data,
    _display,
    _not_before,
    _raw,
    graph_time,
    reply_context,
)
from connectors.base import N_, IdentityRule, Limits, PermanentError, Phrase, Setting, pick
from inbox.models import Author, InboundItem, OutboundReply, Reject

MAX_MESSAGE_LENGTH = 1000
LOGINS = ("facebook", "instagram")
API_URLS = {"facebook": "https://graph.facebook.com", "instagram": "https://graph.instagram.com"}
COMMENT_FIELDS = "id,text,timestamp,from{id,username},username,parent_id"
#: Thread keys of mention conversations: `mention:<media id>`.
MENTION_PREFIX = "mention:"
#: What is asked of a mentioned media (the post a mention is on, or whose caption mentions us).
MENTIONED_MEDIA_FIELDS = "id,caption,permalink,timestamp,username,owner"
MENTIONED_COMMENT_FIELDS = f"id,text,timestamp,username,media{{{MENTIONED_MEDIA_FIELDS}}}"


class InstagramConnector(MetaConnector):
    kind = "instagram"
    identities = (IdentityRule("instagram", case_insensitive=True, strip_at=True),)
    display_name = N_("Instagram")
    icon_text = "IG"
    icon_color = "#b4237a"
    platform = "instagram"
    webhook_object = "instagram"
    identity_kind = "instagram"
    max_dm_length = MAX_MESSAGE_LENGTH
    comment_prefix = "media:"
    profile_fields = "name,username"
    settings = (
        Setting("account_id", required=True, help=N_("The Instagram professional account's id (IG user id).")),
        Setting("login", default="facebook",
                help=N_("facebook (Page token, account linked to a Page) or instagram (Instagram Login token).")),
        Setting("page_id", help=N_("The linked Facebook Page's id; required with login: facebook.")),
        *COMMON_SETTINGS,
        Setting("api_url", help=N_("Base URL of the Graph API (default by login: graph.facebook.com or "
                                   "graph.instagram.com).")),
    )
    # No files anywhere: see "Files" in the module docstring.
    limits = Limits(max_text_length=MAX_MESSAGE_LENGTH, formatting="plain", reply_window_hours=24 * 7,
                    private_replies=True,
                    supports_attachments=False, attachments_public=False, attachments_private=False)
    message_files_refused = (
        "Instagram messages can carry a file only as a public link in Meta's API, which Mainland does not "
        "make. Remove the file, or put a link to it in the text.")
    default_poll_every = 300.0

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_config(config)
        problems = []
        if merged["login"] not in LOGINS:
            problems.append(f"login: {str(merged['login'])[:20]!r} is not one of {', '.join(LOGINS)}")
        elif merged["login"] == "facebook" and not str(merged.get("page_id") or "").strip().isdigit():
            problems.append("page_id: the linked Page's numeric id is required with login: facebook")
        if not str(merged["account_id"]).strip().isdigit():
            problems.append("account_id: must be the Instagram account's numeric id")
        if problems:
            raise PermanentError("; ".join(problems))
        return merged

    def __init__(self, name: str, config: Any, **kwargs: Any) -> None:
        self.ig_id = str(config.get("account_id") or "").strip()
        self.page_id = str(config.get("page_id") or "").strip()
        super().__init__(name, config, **kwargs)

    @property
    def api_url(self) -> str:
        return str(self.config.get("api_url") or API_URLS[self.config["login"]])

    @property
    def account_id(self) -> str:
        return self.ig_id

    @property
    def node(self) -> str:
        return self.page_id if self.config["login"] == "facebook" else self.ig_id

    @property
    def own_ids(self) -> set[str]:
        return {i for i in (self.ig_id, self.page_id) if i}

    # Connection test -----------------------------------------------------------------------------

    def probe_request(self) -> tuple[str, str]:
        return f"/{self.ig_id}", "id,username"

    def probe_summary(self, body: Any) -> Phrase:
        return Phrase(N_("Signed in as @{username} (id {id})"), {"username": str(body["username"]), "id": str(body["id"])})

    # Comments -----------------------------------------------------------------------------------

    def comment_change(self, change: dict[str, Any], entry: dict[str, Any]) -> InboundItem | None:
        if change.get("field") == "mentions":
            return self._mention(pick(change, "value", type=dict), entry)
        if change.get("field") != "comments":
            return None  # live comments, story insights: not handled
        value = pick(change, "value", type=dict)
        sender = pick(value, "from", "id", type=(str, int))
        if str(sender) in self.own_ids:
            return None
        return self._comment_item({
            "id": pick(value, "id", type=str), "media_id": pick(value, "media", "id", type=(str, int)),
            "parent_id": value.get("parent_id"), "from": value["from"], "text": value.get("text"),
            "timestamp": value.get("timestamp") or entry.get("time"),
            "media_product_type": (value.get("media") or {}).get("media_product_type"),
        })

    def _comment_item(self, comment: dict[str, Any]) -> InboundItem:
        comment_id = pick(comment, "id", type=str)
        media_id = str(pick(comment, "media_id", type=(str, int)))
        sender = pick(comment, "from", "id", type=(str, int))
        username = comment["from"].get("username") or comment.get("username") or ""
        parent = comment.get("parent_id")
        text = comment.get("text") if isinstance(comment.get("text"), str) else ""
        headers = {"platform": "instagram_comment", "media_id": media_id}
        if username:
            headers["username"] = f"@{username}"
        if isinstance(comment.get("permalink"), str):
            headers["url"] = comment["permalink"]
        context_text, context_url = reply_context(comment.get("caption"), comment.get("permalink"))
        return InboundItem(
            channel=self.name, external_id=comment_id,
            author=Author(handle=str(sender), name=_display(username), identity_kind=self.identity_kind),
            text=text, sent_at=graph_time(comment.get("timestamp")), thread_key=f"media:{media_id}",
            references=(str(parent),) if isinstance(parent, str | int) and str(parent) else (), public=True,
            headers=headers, raw=_raw("comment", comment), context_text=context_text, context_url=context_url,
        )

    # Mentions -----------------------------------------------------------------------------------

    def _mention(self, value: dict[str, Any], entry: dict[str, Any]) -> InboundItem | None:
        """A `mentions` change: the comment (or caption) is fetched, as the webhook carries only ids."""
        media_id = str(pick(value, "media_id", type=(str, int)))
        comment_id = value.get("comment_id")
        if isinstance(comment_id, str | int) and str(comment_id):
            fields = f"mentioned_comment.comment_id({comment_id}){{{MENTIONED_COMMENT_FIELDS}}}"
            comment = pick(self.graph.call("GET", f"/{self.ig_id}", params={"fields": fields}),
                           "mentioned_comment", type=dict)
            media = comment.get("media") if isinstance(comment.get("media"), dict) else {}
            mention = {"id": str(comment_id), "media_id": str(media.get("id") or media_id),
                       "text": comment.get("text"), "timestamp": comment.get("timestamp") or entry.get("time"),
                       "username": comment.get("username"), "caption": media.get("caption"),
                       "permalink": media.get("permalink"), "media_owner": media.get("owner")}
        else:
            fields = f"mentioned_media.media_id({media_id}){{{MENTIONED_MEDIA_FIELDS}}}"
            media = pick(self.graph.call("GET", f"/{self.ig_id}", params={"fields": fields}),
                         "mentioned_media", type=dict)
            mention = {"id": media_id, "media_id": media_id, "text": media.get("caption"),
                       "timestamp": media.get("timestamp") or entry.get("time"), "username": media.get("username"),
                       "permalink": media.get("permalink"), "media_owner": media.get("owner")}
        return self._mention_item(mention)

    def _mention_item(self, mention: dict[str, Any]) -> InboundItem | None:
        """A mention as a public item from the mentioning user, with the post it is on as context."""
        username = pick(mention, "username", type=str)
        media_id = str(pick(mention, "media_id", type=(str, int)))
        owner = mention.get("media_owner") if isinstance(mention.get("media_owner"), dict) else {}
        if str(owner.get("id")) in self.own_ids:
            # A mention in a comment on our own post is also that post's comment: Meta sends a
            # `comments` event for it and the poll reads it, so it joins the post's conversation.
            return None
        in_caption = mention["id"] == media_id
        headers = {"platform": "instagram_mention", "media_id": media_id, "username": f"@{username}"}
        if isinstance(mention.get("permalink"), str):
            headers["url"] = mention["permalink"]
        # A caption mention is the post itself: only its link is context; a comment shows its post.
        context_text, context_url = reply_context(None if in_caption else mention.get("caption"),
                                                  mention.get("permalink"))
        text = mention.get("text") if isinstance(mention.get("text"), str) else ""
        return InboundItem(
            channel=self.name, external_id=str(mention["id"]),
            author=Author(handle=username, name=_display(username), identity_kind=self.identity_kind),
            text=text, sent_at=graph_time(mention.get("timestamp")), thread_key=f"{MENTION_PREFIX}{media_id}",
            public=True, headers=headers, raw=_raw("mention", mention),
            context_text=context_text, context_url=context_url,
        )

    def parse_raw_comment(self, kind: str, body: Any) -> InboundItem | None:
        if kind == "mention":
            return self._mention_item(body)
        return super().parse_raw_comment(kind, body)

    def send(self, reply: OutboundReply) -> str:
        if (reply.thread_key or "").startswith(MENTION_PREFIX):
            return self.reply_to_mention(reply)
        return super().send(reply)

    def reply_to_mention(self, reply: OutboundReply) -> str:
        """A public comment answering a mention: `POST /{ig-user-id}/mentions`."""
        if reply.attachments:
            raise PermanentError(self.comment_files_refused)
        if not reply.public:
            raise PermanentError("An Instagram mention can only be answered publicly, under the post or comment "
                                 "that mentions the account; Instagram has no private reply to a mention.")
        text = reply.text.strip()
        if not text:
            raise PermanentError("the reply is empty")
        media_id = (reply.thread_key or "").removeprefix(MENTION_PREFIX)
        form = {"media_id": media_id, "message": text}
        if reply.reply_to_external_id and reply.reply_to_external_id != media_id:
            form["comment_id"] = reply.reply_to_external_id
        answer = self.graph.call("POST", f"/{self.ig_id}/mentions", form=form)
        return str(pick(answer, "id"))

    def poll_comments(self, watermark: dt.datetime) -> tuple[list[InboundItem], list[Reject], dt.datetime | None]:
        media = self.graph.call("GET", f"/{self.ig_id}/media", params={
            "fields": "id,timestamp,caption,permalink,comments_count", "limit": int(self.config["recent_posts"])})
        items: list[InboundItem] = []
        rejects: list[Reject] = []
        newest = None
        for entry in _data(media):
            media_id = entry.get("id")
            if not isinstance(media_id, str | int) or entry.get("comments_count") == 0:
                continue
            params = {"fields": f"{COMMENT_FIELDS},replies{{{COMMENT_FIELDS}}}",
                      "limit": int(self.config["page_size"])}
            tops: list[dict[str, Any]] = []
            for data, _, _ in self.graph.pages(f"/{media_id}/comments", params,
                                               max_pages=int(self.config["pages_per_fetch"])):
                tops += data
            flat = []
            # Top-level comments come newest first, each followed by its replies (oldest first).
            for comment in tops[::-1]:
                flat.append(comment)
                flat += [dict(r, parent_id=r.get("parent_id") or comment.get("id"))
                         for r in _data(comment.get("replies"))]
            fresh = [dict(c, media_id=str(media_id), permalink=entry.get("permalink"), caption=entry.get("caption"))
                     for c in flat
                     if _not_before(c, watermark) and not (
                         isinstance(c.get("from"), dict) and str(c["from"].get("id")) in self.own_ids)]
            found, bad = self.each(fresh, self._comment_item, raw_of=lambda c: _raw("comment", c))
            items += found
            rejects += bad
            for item in found:
                newest = max(newest or item.sent_at, item.sent_at)
        return items, rejects, newest

    def reply_to_comment(self, comment_id: str, text: str) -> str:
        answer = self.graph.call("POST", f"/{comment_id}/replies", json_body={"message": text})
        return str(pick(answer, "id"))
