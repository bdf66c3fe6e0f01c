"""Facebook Page: Messenger conversations and comments on the Page's posts, by webhook and by polling.

What it does
------------
- **Messenger messages** to the Page become *private* conversations, one per person: the thread
  key is the person's page-scoped id (PSID). A message that answers another (`reply_to.mid`)
  refers to it. Images, videos, audio and files sent in a message become attachments, fetched
  only from Meta's media hosts through the SSRF-guarded download.
- **Button presses** are messages too: a postback (a postback button, "Get started", a
  persistent-menu item; `messaging_postbacks`) reads as the button's `title`, a quick reply as the
  text the customer tapped; the payload behind it is kept in the `pressed` header ("title
  (payload)"). A postback without `mid` is keyed by an id made from sender, time and payload.
- **Comments** on the Page's posts become *public* conversations, one per post (thread key
  `post:<post id>`); a reply to a comment refers to the comment it answers (`parent_id`).
  Comments written by the Page itself, and Messenger echoes (what the Page sent), are never
  taken as customers' messages.
- **Delivery and read receipts** (`message_deliveries`, `message_reads`) move our sent replies to
  "delivered" and "read". Messenger's read receipt only gives a time ("read up to"), so the
  connector asks the Conversations API which of our messages that covers.

Inbound: webhooks first, polling as the safety net
--------------------------------------------------
Meta posts each event to `<base_url>/webhooks/<channel>`. The body's `X-Hub-Signature-256` is
checked against `app_secret` over the raw bytes before anything is parsed (a wrong or missing
signature is refused with 403 and nothing is stored); the subscription handshake (`GET` with
`hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`) is answered with the bare challenge
when the verify token matches. Entries for other Pages of the same app are ignored.

The worker also polls (every `poll_every` seconds, default 300), to pick up what a webhook missed
(an outage on our side longer than Meta's retries, a subscription switched off):

- `GET /{page-id}/conversations?platform=messenger&fields=id,updated_time,participants,
  messages.limit(20){id,created_time,from,to,message,attachments}`, newest first, following
  `paging.cursors.after` until a conversation older than the stored `updated_time`. Meta shows
  the 20 newest messages of a conversation.
- `GET /{page-id}/feed` (the `recent_posts` newest posts, with their `message` and `permalink_url`,
  shown above each comment as the post it is on), then for each post updated since the
  watermark `GET /{post-id}/comments?filter=stream&order=reverse_chronological&since=<watermark>`.

Items are keyed by Meta's ids (`m_...` message ids, `<post>_<comment>` comment ids), so an
event that came by webhook and again by polling, or a webhook Meta delivered twice, is stored
once. The cursor is a small JSON object: `conversations` (the newest `updated_time` read),
`comments` (the newest comment time read) and, while a long walk is unfinished,
`conversations_next` / `conversations_top`. The first poll reaches back `first_poll_hours`.

Replies
-------
- In a Messenger conversation: Send API `POST /{page-id}/messages` to the PSID. Within 24 hours
  of the customer's last message with `messaging_type=RESPONSE`; from 24 hours to 7 days with
  `messaging_type=MESSAGE_TAG, tag=HUMAN_AGENT` (setting `human_agent`; the app needs Meta's
  Human Agent permission); after 7 days the reply fails with a message saying the window has
  closed. The customer's last message time is read from the Conversations API just before
  sending (`?user_id=<PSID>`), so a message that only arrived at Meta counts too. At most 2000
  characters.
- **Files** in a Messenger conversation: one Send API call per file that uploads it, as Meta's
  "Saving assets" page shows: a multipart form with `recipient`, `messaging_type` (and `tag`),
  `message={"attachment": {"type": "image|video|audio|file", "payload": {"is_reusable": false}}}`
  and the bytes as `filedata`. Up to 25 MB. JPEG, PNG and GIF go as `image`, `video/*` and
  `audio/*` as themselves, anything else as `file`. A Messenger message holds text or a file,
  not both, and one file: the limits say so (`files_with_text=False`, `max_attachments=1`), the
  outbox sends the text and each file as replies of their own, and a reply that still has both
  is refused. Meta's "Upload attachment failure" (code 100/2018047) reaches the agent with what
  to do (a smaller file, another format, a link).
- Comment replies (public, or the one private reply) take **no files**: the Graph API attaches a
  file to a comment only by a public URL (`attachment_url`), and Mainland does not publish files;
  the composer says so before the agent tries (`attachments_public=False`), and `send()` refuses.
- In a comment conversation: a public reply under the customer's comment
  (`POST /{comment-id}/comments`). A caller that builds an `OutboundReply` with `public=False`
  for a comment conversation sends a **private reply** instead: a Messenger message to the
  commenter (`recipient: {"comment_id": ...}`), which Meta allows once per comment, within 7 days.

Setup, permissions and settings: docs/channels/facebook.md.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from connectors._meta import (
    COMMON_SETTINGS,
    MAX_UPLOAD_BYTES,
    MetaConnector,
    _data,
    _display,
    _not_before,
    _raw,
    graph_time,
    reply_context,
)
from connectors._probe import Mismatch
from connectors.base import N_, IdentityRule, ItemError, Limits, PermanentError, Phrase, Setting, pick
from inbox.models import Author, InboundItem, Reject

MAX_MESSAGE_LENGTH = 2000


class FacebookConnector(MetaConnector):
    kind = "facebook"
    identities = (IdentityRule("facebook"),)
    display_name = N_("Facebook Messenger")
    icon_text = "f"
    icon_color = "#1659c7"
    platform = "messenger"
    webhook_object = "page"
    identity_kind = "facebook"
    max_dm_length = MAX_MESSAGE_LENGTH
    comment_prefix = "post:"
    settings = (
        Setting("page_id", required=True, help=N_("The Facebook Page's numeric id.")),
        *COMMON_SETTINGS,
        Setting("api_url", default="https://graph.facebook.com", help=N_("Base URL of the Graph API.")),
    )
    # 24 hours with RESPONSE, up to 7 days with the HUMAN_AGENT tag; comment replies have no window.
    # Files: Messenger messages only (uploaded, one per message, never with text); comment replies
    # take files only as a public link, which Mainland does not make.
    limits = Limits(max_text_length=MAX_MESSAGE_LENGTH, formatting="plain", reply_window_hours=24 * 7,
                    private_replies=True,
                    supports_attachments=True, attachments_public=False, attachments_private=True,
                    max_attachment_bytes=MAX_UPLOAD_BYTES, max_attachments=1, files_with_text=False)
    # Webhooks carry the traffic; the poll only catches what they missed.
    default_poll_every = 300.0

    def __init__(self, name: str, config: Any, **kwargs: Any) -> None:
        super().__init__(name, config, **kwargs)
        self.page_id = str(self.config["page_id"]).strip()
        if not self.page_id.isdigit():
            raise PermanentError(f"page_id must be the Page's numeric id, not {self.page_id[:30]!r}")

    @property
    def api_url(self) -> str:
        return str(self.config["api_url"])

    @property
    def account_id(self) -> str:
        return self.page_id

    @property
    def node(self) -> str:
        return self.page_id

    @property
    def own_ids(self) -> set[str]:
        return {self.page_id}

    # Connection test -----------------------------------------------------------------------------

    def probe_request(self) -> tuple[str, str]:
        return "/me", "id,name"  # with a Page access token, "me" is the Page

    def probe_summary(self, body: Any) -> Phrase:
        page = {"page": str(body["name"]), "id": str(body["id"])}
        if str(body["id"]) != self.page_id:
            raise Mismatch(Phrase(N_("The token is for the Page {page} (id {id}), not for page_id {page_id}: "
                                     "paste that Page's own access token, or put {id} in page_id"),
                                  {**page, "page_id": self.page_id}))
        return Phrase(N_("Signed in as the Page {page} (id {id})"), page)

    # Comments -----------------------------------------------------------------------------------

    def comment_change(self, change: dict[str, Any], entry: dict[str, Any]) -> InboundItem | None:
        if change.get("field") != "feed":
            return None
        value = pick(change, "value", type=dict)
        if value.get("item") != "comment" or value.get("verb") != "add":
            return None  # new posts, reactions, edits and removals are not messages to answer
        sender = pick(value, "from", "id", type=(str, int))
        if str(sender) in self.own_ids:
            return None
        return self._comment_item({
            "id": pick(value, "comment_id", type=str), "post_id": pick(value, "post_id", type=str),
            "parent_id": value.get("parent_id"), "from": value["from"], "message": value.get("message"),
            "created_time": value.get("created_time") or entry.get("time"), "photo": value.get("photo"),
            # The webhook names the post (with its link) but not its text; no extra call for it here.
            "post_url": post.get("permalink_url") if isinstance(post := value.get("post"), dict) else None,
        })

    def _comment_item(self, comment: dict[str, Any]) -> InboundItem:
        """An item from a comment in our flat shape: id, post_id, parent_id, from, message, created_time."""
        comment_id = pick(comment, "id", type=str)
        post_id = pick(comment, "post_id", type=str)
        sender = pick(comment, "from", "id", type=(str, int))
        name = comment["from"].get("name") or ""
        parent = comment.get("parent_id")
        refs = (str(parent),) if isinstance(parent, str) and parent and parent != post_id else ()
        text = comment.get("message") if isinstance(comment.get("message"), str) else ""
        photo = self._attachment("image", comment.get("photo"), comment_id[-12:])
        headers = {"platform": "facebook_comment", "post_id": post_id}
        if isinstance(comment.get("permalink_url"), str):
            headers["url"] = comment["permalink_url"]
        context_text, context_url = reply_context(comment.get("post_message"), comment.get("post_url"))
        return InboundItem(
            channel=self.name, external_id=comment_id,
            author=Author(handle=str(sender), name=_display(name), identity_kind=self.identity_kind),
            text=text, sent_at=graph_time(comment.get("created_time")), thread_key=f"post:{post_id}",
            references=refs, public=True, attachments=(photo,) if photo else (), headers=headers,
            raw=_raw("comment", comment), context_text=context_text, context_url=context_url,
        )

    def poll_comments(self, watermark: dt.datetime) -> tuple[list[InboundItem], list[Reject], dt.datetime | None]:
        posts = self.graph.call("GET", f"/{self.page_id}/feed", params={
            "fields": "id,created_time,updated_time,message,permalink_url", "limit": int(self.config["recent_posts"])})
        items: list[InboundItem] = []
        rejects: list[Reject] = []
        newest = None
        for post in _data(posts):
            post_id = post.get("id")
            if not isinstance(post_id, str):
                continue
            try:
                # A post's updated_time moves when someone comments on it.
                if graph_time(post.get("updated_time") or post.get("created_time")) < watermark:
                    continue
            except ItemError:
                pass
            params = {"filter": "stream", "order": "reverse_chronological",
                      "since": int(watermark.timestamp()), "limit": int(self.config["page_size"]),
                      "fields": "id,message,from,created_time,parent{id},permalink_url,attachment"}
            fresh = []
            for data, _, _ in self.graph.pages(f"/{post_id}/comments", params,
                                               max_pages=int(self.config["pages_per_fetch"])):
                reached = False
                for comment in data:
                    if not _not_before(comment, watermark):
                        reached = True
                        break
                    if isinstance(comment.get("from"), dict) and str(comment["from"].get("id")) in self.own_ids:
                        continue
                    fresh.append(dict(_flat_comment(comment, post_id), post_message=post.get("message"),
                                      post_url=post.get("permalink_url")))
                if reached:
                    break
            # Newest first from Graph; reversed, comments of the same second keep their order.
            found, bad = self.each(fresh[::-1], self._comment_item, raw_of=lambda c: _raw("comment", c))
            items += found
            rejects += bad
            for item in found:
                newest = max(newest or item.sent_at, item.sent_at)
        return items, rejects, newest

    def reply_to_comment(self, comment_id: str, text: str) -> str:
        answer = self.graph.call("POST", f"/{comment_id}/comments", json_body={"message": text})
        return str(pick(answer, "id"))


def _flat_comment(comment: dict[str, Any], post_id: str) -> dict[str, Any]:
    """A Graph comment object in the flat shape a webhook `feed` change gives."""
    parent = comment.get("parent") if isinstance(comment.get("parent"), dict) else {}
    attachment = comment.get("attachment") if isinstance(comment.get("attachment"), dict) else {}
    media = attachment.get("media") if isinstance(attachment.get("media"), dict) else {}
    image = media.get("image") if isinstance(media.get("image"), dict) else {}
    flat = {k: v for k, v in comment.items() if k not in ("parent", "attachment")}
    flat.update({"post_id": post_id, "parent_id": parent.get("id") or post_id, "photo": image.get("src")})
    return flat

