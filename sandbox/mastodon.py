"""A loopback imitation of a Mastodon server's client API, for tests, benchmarks and the demo.

It follows shared/channels.md §6: `Authorization: Bearer <token>`; `GET /api/v1/notifications`
with `types[]`, `exclude_types[]`, `max_id`, `since_id`, `min_id` (ascending from the cursor, the
page then reversed to newest first) and `limit` (default 40, max 80), plus the `Link` header with
rel="next"/"prev"; `POST /api/v1/statuses` (form or JSON: `status`, `in_reply_to_id`,
`visibility`, `spoiler_text`) honouring `Idempotency-Key` for an hour; `GET /api/v1/statuses/:id`;
`GET /api/v2/instance`; `GET /api/v1/accounts/verify_credentials` (the token's
CredentialAccount: `id`, `username`, `acct`, `display_name`, `url`, `source`, ...); media files under `/system/media_attachments/files/`; uploads with
`POST /api/v2/media` (multipart `file`; 200 with `url` for an image, 202 with `url: null` while a
video or audio file is processed; 422 "File content type is invalid" or "File file size must be
less than 10 MB"; its own rate limit of 30 per 30 minutes) and `GET /api/v1/media/:id` (206 while
processing, then 200 with `url`), their ids given to a status as `media_ids[]` (at most 4; 422
"Cannot attach files that have not finished processing" before that). Every answer carries
`X-RateLimit-Limit/Remaining/Reset` (reset as ISO 8601); errors are `{"error": "..."}` with
Mastodon's status codes (401 invalid token, 404 "Record not found", 422 "Validation failed: ...",
429 "Too many requests").

Ids are opaque strings ordered by length, then text; notification ids start just below a power of
ten so that a client comparing them as text (or as floats) gets the order wrong.

Customers post with `mention(...)` and `direct(...)` (a status with visibility `direct`);
`our_status(...)` is a status of the support account that customers may answer (`in_reply_to=`).
A status we post without `in_reply_to_id` starts a thread (a private mention when `direct`): as on
Mastodon, each `@user@server` in its text that names a known account (matched without regard to
case) becomes one of its `mentions` and is reached; a mention of an account the server cannot find,
or of one the support account blocked (`block(account)`), stays plain text, is left out of
`mentions` and reaches nobody, and the status is posted all the same.
`sent` lists the statuses we posted, each with its `idempotency_key` and who it reached. Faults:
`rate_limited(seconds)`, `server_error()`, `malformed_notification()`, `duplicate_notification()`,
`delete_status(status)` (GET 404, its notifications keep `"status": null`), `revoke_token()`,
`favourite(...)` (a notification of another type).
"""

from __future__ import annotations

import copy
import datetime as dt
import html
import itertools
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlencode

from sandbox.base import Imitation, Request, route
from sandbox.multipart import parse_form

DEFAULT_TOKEN = "mastodon-imitation-token-ZmFrZS10b2tlbg"
RATE_LIMIT = 300
RATE_WINDOW = 300
IDEMPOTENCY_SECONDS = 3600
#: Media uploads have a limit of their own: 30 per 30 minutes per account (api/rate-limits).
MEDIA_RATE_LIMIT = 30
MEDIA_RATE_WINDOW = 1800
#: `configuration.media_attachments` of the documented `GET /api/v2/instance` example.
SUPPORTED_MIME_TYPES = (
    "image/jpeg", "image/png", "image/gif", "image/heic", "image/heif", "image/webp", "video/webm", "video/mp4",
    "video/quicktime", "video/ogg", "audio/wave", "audio/wav", "audio/x-wav", "audio/x-pn-wave", "audio/vnd.wave",
    "audio/ogg", "audio/vorbis", "audio/mpeg", "audio/mp3", "audio/webm", "audio/flac", "audio/aac", "audio/m4a",
    "audio/x-m4a", "audio/mp4", "audio/3gpp", "video/x-ms-asf")
IMAGE_SIZE_LIMIT = 10485760
VIDEO_SIZE_LIMIT = 41943040
MAX_MEDIA_ATTACHMENTS = 4
_URL = re.compile(r"https?://[^\s<>\"']+")
_MENTION = re.compile(r"(?<![\w/])@(\w+(?:[.-]+\w+)*)(?:@([\w.-]+\w))?", re.ASCII)


def id_key(value: str) -> tuple[int, str]:
    return len(value), value


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class MastodonImitation(Imitation):
    """One Mastodon server as our support account sees it."""

    name = "mastodon"

    def __init__(self, token: str = DEFAULT_TOKEN, *, domain: str = "acme.social", username: str = "support",
                 max_characters: int = 500, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.token = token
        self.domain = domain
        self.max_characters = max_characters
        self.accounts: dict[str, dict] = {}
        self.statuses: dict[str, dict] = {}
        self.notifications: list[dict] = []
        self.sent: list[dict] = []
        #: Accounts (acct) the support account blocked: Mastodon drops mentions of them from our statuses.
        self.blocked: set[str] = set()
        self.idempotency: dict[str, tuple[float, str]] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        #: Our uploads by media id: {"entity", "data", "content_type", "filename", "polls_left", "status_id"}.
        self.uploads: dict[str, dict[str, Any]] = {}
        #: How many `GET /api/v1/media/:id` answer 206 before an upload is processed; images are processed
        #: at once (200) unless this is set, video and audio answer 202 and need at least one more look.
        self.processing_polls = 0
        self._media_ids = itertools.count(22348641)
        self._media_window_start = time.time()
        self._media_window_used = 0
        self._status_ids = itertools.count(103186126728896492)
        self._notification_ids = itertools.count(99999995)
        self._account_ids = itertools.count(971724)
        self._clock = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        self._window_start = time.time()
        self._window_used = 0
        self.me = self.account(username, domain=domain, display_name="Acme Support")

    # Customers ----------------------------------------------------------------------------------

    def account(self, username: str, *, domain: str = "example.social", display_name: str | None = None) -> dict:
        """The account `username@domain` (made on first use)."""
        acct = username if domain == self.domain else f"{username}@{domain}"
        with self.lock:
            if acct not in self.accounts:
                self.accounts[acct] = {"id": str(next(self._account_ids)), "username": username, "acct": acct,
                                       "display_name": display_name if display_name is not None else username.title(),
                                       "url": f"https://{domain}/@{username}"}
            return self.accounts[acct]

    def mention(self, account: dict | str, text: str, *, visibility: str = "public", in_reply_to: dict | None = None,
                media: list[tuple[str, bytes, str]] | None = None, spoiler_text: str = "",
                content: str | None = None) -> dict:
        """`account` posts a status mentioning us; returns the Status. `content` overrides the HTML."""
        account = self.account(account) if isinstance(account, str) else account
        with self.lock:
            me = self.me
            if content is None:
                content = (f'<p><span class="h-card"><a href="{me["url"]}" class="u-url mention">'
                           f'@<span>{me["username"]}</span></a></span> {html.escape(text)}</p>')
            status = self._status(account, content, visibility=visibility, in_reply_to=in_reply_to,
                                  spoiler_text=spoiler_text, mentions=[me], media=media or [])
            self._notify("mention", account, status)
            return status

    def direct(self, account: dict | str, text: str, **kwargs: Any) -> dict:
        """`account` sends us a direct message (a status with visibility `direct`)."""
        return self.mention(account, text, visibility="direct", **kwargs)

    def favourite(self, account: dict | str, status: dict) -> dict:
        """A notification of another type (someone favourited a status): not a mention."""
        account = self.account(account) if isinstance(account, str) else account
        with self.lock:
            return self._notify("favourite", account, status)

    def our_status(self, text: str, *, visibility: str = "public") -> dict:
        """A status of the support account itself (an announcement customers answer)."""
        with self.lock:
            return self._status(self.me, f"<p>{html.escape(text)}</p>", visibility=visibility, in_reply_to=None,
                                spoiler_text="", mentions=[], media=[])

    def delete_status(self, status: dict) -> None:
        """The status is deleted: GET answers 404, and its notifications carry `"status": null`."""
        with self.lock:
            self.statuses.pop(status["id"], None)
            for notification in self.notifications:
                if notification.get("status") is not None and notification["status"]["id"] == status["id"]:
                    notification["status"] = None

    def block(self, account: dict) -> None:
        """The support account blocks `account`: our statuses no longer mention (or reach) it."""
        with self.lock:
            self.blocked.add(account["acct"])

    def replies(self) -> list[dict]:
        with self.lock:
            return list(self.sent)

    # Faults -------------------------------------------------------------------------------------

    def rate_limited(self, seconds: int = 30) -> None:
        """The next request exceeds the limit: 429 with X-RateLimit-Reset `seconds` from now."""
        reset = _iso(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))
        self.fail_next(429, {"error": "Too many requests"}, {
            "X-RateLimit-Limit": str(RATE_LIMIT), "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
            path_prefix="/api/")

    def media_rate_limited(self, seconds: int = 30) -> None:
        """The next upload exceeds the media limit (30 per 30 minutes): 429 with its headers."""
        reset = _iso(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))
        self.fail_next(429, {"error": "Too many requests"}, {
            "X-RateLimit-Limit": str(MEDIA_RATE_LIMIT), "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
            path_prefix="/api/v2/media")

    def server_error(self) -> None:
        self.fail_next(503, {"error": "Remote data could not be fetched"}, path_prefix="/api/")

    def malformed_notification(self) -> dict:
        """A mention whose status lacks its account and date (schema drift)."""
        with self.lock:
            notification = {"id": str(next(self._notification_ids)), "type": "mention",
                            "created_at": self._tick(), "group_key": "ungrouped",
                            "status": {"id": str(next(self._status_ids)), "content": "<p>half a status</p>",
                                       "visibility": "public"}}
            notification["group_key"] = f"ungrouped-{notification['id']}"
            self.notifications.append(notification)
            return notification

    def duplicate_notification(self) -> dict:
        """A second notification for the last mentioned status (a status edited, or delivered twice)."""
        with self.lock:
            last = self.notifications[-1]
            return self._notify(last["type"], last["account"], last["status"])

    def revoke_token(self) -> None:
        self.token = "revoked"

    # The API ------------------------------------------------------------------------------------

    @route("GET", r"/api/v1/notifications")
    def get_notifications(self, request: Request):
        if not self._authorized(request):
            return self._unauthorized()
        types = request.query.get("types[]") or request.query.get("types") or []
        excluded = request.query.get("exclude_types[]") or request.query.get("exclude_types") or []
        try:
            limit = int(request.arg("limit") or 40)
        except ValueError:
            limit = 40
        limit = min(max(limit, 1), 80)
        max_id, since_id, min_id = request.arg("max_id"), request.arg("since_id"), request.arg("min_id")
        with self.lock:
            selected = [n for n in sorted(self.notifications, key=lambda n: id_key(n["id"]))
                        if (not types or n["type"] in types) and n["type"] not in excluded
                        and (max_id is None or id_key(n["id"]) < id_key(max_id))
                        and (since_id is None or id_key(n["id"]) > id_key(since_id))
                        and (min_id is None or id_key(n["id"]) > id_key(min_id))]
            if min_id is not None:
                page = list(reversed(selected[:limit]))  # ascending from the cursor, then newest first
            else:
                page = list(reversed(selected))[:limit]
            headers = self._rate_headers()
            if page:
                base = f"{self.url}/api/v1/notifications"
                keep = [("types[]", t) for t in types] + [("exclude_types[]", t) for t in excluded]
                older = urlencode(keep + [("max_id", page[-1]["id"])])
                newer = urlencode(keep + [("min_id", page[0]["id"])])
                headers["Link"] = f'<{base}?{older}>; rel="next", <{base}?{newer}>; rel="prev"'
            return 200, copy.deepcopy(page), headers

    @route("POST", r"/api/v1/statuses")
    def post_status(self, request: Request):
        if not self._authorized(request):
            return self._unauthorized()
        is_json = "json" in request.headers.get("Content-Type", "")
        params = request.json() if is_json else request.form()
        if is_json:
            media_ids = [str(m) for m in params.get("media_ids") or []]
        else:
            media_ids = parse_qs(request.body.decode("utf-8", "replace")).get("media_ids[]", [])
        key = request.headers.get("Idempotency-Key")
        with self.lock:
            now = time.time()
            if key and key in self.idempotency and now - self.idempotency[key][0] < IDEMPOTENCY_SECONDS:
                # "prevent duplicate submissions of the same status": the first one is answered again.
                return 200, copy.deepcopy(self.statuses[self.idempotency[key][1]]), self._rate_headers()
            text = str(params.get("status") or "")
            visibility = str(params.get("visibility") or "public")
            if visibility not in ("public", "unlisted", "private", "direct"):
                return 422, {"error": "Validation failed: Visibility is not included in the list"}, self._rate_headers()
            if len(media_ids) > MAX_MEDIA_ATTACHMENTS:
                return 422, {"error": f"Cannot attach more than {MAX_MEDIA_ATTACHMENTS} files"}, self._rate_headers()
            # Ids of media that are not ours, or already attached, are ignored (as Mastodon does).
            uploaded = [self.uploads[m] for m in media_ids
                        if m in self.uploads and self.uploads[m]["status_id"] is None]
            if any(u["entity"]["url"] is None for u in uploaded):
                return 422, {"error": "Cannot attach files that have not finished processing. Try again in a moment!"}, \
                    self._rate_headers()
            if not text.strip() and not uploaded:
                return 422, {"error": "Validation failed: Text can't be blank"}, self._rate_headers()
            if self._length(text) > self.max_characters:
                return 422, {"error": f"Validation failed: Text character limit of {self.max_characters} exceeded"}, \
                    self._rate_headers()
            parent = None
            if params.get("in_reply_to_id"):
                parent = self.statuses.get(str(params["in_reply_to_id"]))
                if parent is None:
                    return 404, {"error": "Record not found"}, self._rate_headers()
            mentioned = self._mentioned(text)
            status = self._status(self.me, f"<p>{html.escape(text)}</p>", visibility=visibility, in_reply_to=parent,
                                  spoiler_text=str(params.get("spoiler_text") or ""), mentions=mentioned, media=[])
            for upload in uploaded:
                upload["status_id"] = status["id"]
                status["media_attachments"].append(copy.deepcopy(upload["entity"]))
            if key:
                self.idempotency[key] = (now, status["id"])
            # A direct status reaches only those it mentions; others reach every follower as well.
            reached = [m["acct"] for m in mentioned]
            self.sent.append({"id": status["id"], "text": text, "in_reply_to_id": status["in_reply_to_id"],
                              "visibility": visibility, "idempotency_key": key, "reached": reached,
                              "status": status, "media": [{k: u[k] for k in ("data", "content_type", "filename")}
                                                          | {"id": u["entity"]["id"]} for u in uploaded]})
            return 200, copy.deepcopy(status), self._rate_headers()

    @route("GET", r"/api/v1/statuses/(?P<status_id>\w+)")
    def get_status(self, request: Request, status_id: str):
        if not self._authorized(request):
            return self._unauthorized()
        with self.lock:
            status = self.statuses.get(status_id)
            if status is None:
                return 404, {"error": "Record not found"}, self._rate_headers()
            return 200, copy.deepcopy(status), self._rate_headers()

    @route("POST", r"/api/v2/media")
    def upload_media(self, request: Request):
        """Multipart `file` (with its MIME type) and optional `description`: 200 when processed, else 202."""
        if not self._authorized(request):
            return self._unauthorized()
        with self.lock:
            headers = self._media_rate_headers()
            form = parse_form(request.headers.get("Content-Type", ""), request.body)
            upload = (form.get("file") or [None])[0]
            if upload is None or not upload.data:
                return 422, {"error": "Validation failed: File can't be blank"}, headers
            content_type = upload.content_type or ""
            if content_type not in SUPPORTED_MIME_TYPES:
                return 422, {"error": "Validation failed: File content type is invalid, File is invalid"}, headers
            kind = "image" if content_type.startswith("image/") else content_type.split("/")[0]
            limit = IMAGE_SIZE_LIMIT if kind == "image" else VIDEO_SIZE_LIMIT
            if len(upload.data) > limit:
                return 422, {"error": f"Validation failed: File file size must be less than {limit // 1048576} MB"}, \
                    headers
            media_id = str(next(self._media_ids))
            filename = upload.filename or f"{media_id}.bin"
            path = f"{media_id[:3]}/{media_id[3:6]}/{media_id[6:]}/original/{filename}"
            self.files[path] = (upload.data, content_type)
            polls = self.processing_polls if kind == "image" else max(1, self.processing_polls)
            description = (form.get("description") or [None])[0]
            entity = {"id": media_id, "type": kind if kind in ("image", "video", "audio") else "unknown",
                      "url": None if polls else f"{self.url}/system/media_attachments/files/{path}",
                      "preview_url": f"{self.url}/system/media_attachments/files/{path}", "remote_url": None,
                      "description": description.text if description else None, "meta": {}, "blurhash": None}
            self.uploads[media_id] = {"entity": entity, "data": upload.data, "content_type": content_type,
                                      "filename": filename, "polls_left": polls, "status_id": None,
                                      "path": path}
            return (202 if polls else 200), copy.deepcopy(entity), headers

    @route("GET", r"/api/v1/media/(?P<media_id>\w+)")
    def get_media(self, request: Request, media_id: str):
        if not self._authorized(request):
            return self._unauthorized()
        with self.lock:
            upload = self.uploads.get(media_id)
            if upload is None:
                return 404, {"error": "Record not found"}, self._rate_headers()
            if upload["polls_left"] > 0:
                upload["polls_left"] -= 1
                return 206, b"", self._rate_headers()  # "The media attachment is still being processed"
            upload["entity"]["url"] = f"{self.url}/system/media_attachments/files/{upload['path']}"
            return 200, copy.deepcopy(upload["entity"]), self._rate_headers()

    @route("GET", r"/api/v1/accounts/verify_credentials")
    def verify_credentials(self, request: Request):
        """The token's account as a CredentialAccount: the Account plus `source` (its defaults)."""
        with self.lock:
            if not self._authorized(request):
                return self._unauthorized()
            source = {"privacy": "public", "sensitive": False, "language": "en", "note": "", "fields": [],
                      "follow_requests_count": 0}
            return 200, {**self.me, "locked": False, "bot": False, "note": "", "source": source}, self._rate_headers()

    @route("GET", r"/api/v2/instance")
    def instance(self, request: Request):
        return 200, {"domain": self.domain, "title": "Acme Social", "version": "4.3.0",
                     "configuration": {"statuses": {"max_characters": self.max_characters,
                                                    "max_media_attachments": 4,
                                                    "characters_reserved_per_url": 23},
                                       "media_attachments": {"supported_mime_types": list(SUPPORTED_MIME_TYPES),
                                                             "image_size_limit": IMAGE_SIZE_LIMIT,
                                                             "video_size_limit": VIDEO_SIZE_LIMIT}}}, \
            self._rate_headers()

    @route("GET", r"/system/media_attachments/files/(?P<path>.+)")
    def media_file(self, request: Request, path: str):
        with self.lock:
            found = self.files.get(path)
        if found is None:
            return 404, {"error": "Record not found"}
        data, content_type = found
        return 200, data, {"Content-Type": content_type}

    # Internals ----------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    def _unauthorized(self):
        return 401, {"error": "The access token is invalid"}, self._rate_headers()

    def _rate_headers(self) -> dict[str, str]:
        now = time.time()
        if now - self._window_start >= RATE_WINDOW:
            self._window_start, self._window_used = now, 0
        self._window_used += 1
        reset = dt.datetime.fromtimestamp(self._window_start + RATE_WINDOW, dt.UTC)
        return {"X-RateLimit-Limit": str(RATE_LIMIT),
                "X-RateLimit-Remaining": str(max(RATE_LIMIT - self._window_used, 0)),
                "X-RateLimit-Reset": _iso(reset)}

    def _media_rate_headers(self) -> dict[str, str]:
        now = time.time()
        if now - self._media_window_start >= MEDIA_RATE_WINDOW:
            self._media_window_start, self._media_window_used = now, 0
        self._media_window_used += 1
        reset = dt.datetime.fromtimestamp(self._media_window_start + MEDIA_RATE_WINDOW, dt.UTC)
        return {"X-RateLimit-Limit": str(MEDIA_RATE_LIMIT),
                "X-RateLimit-Remaining": str(max(MEDIA_RATE_LIMIT - self._media_window_used, 0)),
                "X-RateLimit-Reset": _iso(reset)}

    def _tick(self) -> str:
        self._clock += dt.timedelta(seconds=1, milliseconds=37)
        return _iso(self._clock)

    def _status(self, account: dict, content: str, *, visibility: str, in_reply_to: dict | None,
                spoiler_text: str, mentions: list[dict], media: list[tuple[str, bytes, str]]) -> dict:
        status_id = str(next(self._status_ids))
        host = account["acct"].split("@")[1] if "@" in account["acct"] else self.domain
        attachments = []
        for index, (filename, data, content_type) in enumerate(media, start=1):
            path = f"{status_id[:3]}/{status_id[3:6]}/{index:03d}/original/{filename}"
            self.files[path] = (data, content_type)
            kind = content_type.split("/")[0] if content_type.split("/")[0] in ("image", "video", "audio") else "unknown"
            attachments.append({"id": f"{status_id}{index}", "type": kind,
                                "url": f"{self.url}/system/media_attachments/files/{path}",
                                "preview_url": f"{self.url}/system/media_attachments/files/{path}",
                                "remote_url": None, "description": None})
        status = {
            "id": status_id, "created_at": self._tick(),
            "in_reply_to_id": in_reply_to["id"] if in_reply_to else None,
            "in_reply_to_account_id": in_reply_to["account"]["id"] if in_reply_to else None,
            "visibility": visibility, "spoiler_text": spoiler_text, "language": "en", "content": content,
            "uri": f"https://{host}/users/{account['username']}/statuses/{status_id}",
            "url": f"https://{host}/@{account['username']}/{status_id}",
            "account": dict(account), "media_attachments": attachments,
            "mentions": [{k: m[k] for k in ("id", "username", "url", "acct")} for m in mentions],
        }
        self.statuses[status_id] = status
        return status

    def _notify(self, kind: str, account: dict, status: dict) -> dict:
        notification = {"id": str(next(self._notification_ids)), "type": kind, "created_at": self._tick(),
                        "account": dict(account), "status": status}
        notification["group_key"] = f"ungrouped-{notification['id']}"
        self.notifications.append(notification)
        return notification

    def _mentioned(self, text: str) -> list[dict]:
        """The known accounts `text` mentions (user names and domains match without regard to case),
        less those we blocked: what a status reaches when it is direct."""
        by_acct = {acct.lower(): account for acct, account in self.accounts.items() if acct not in self.blocked}
        found = []
        for match in _MENTION.finditer(text):
            username, domain = match.group(1).lower(), (match.group(2) or self.domain).lower()
            account = by_acct.get(username if domain == self.domain.lower() else f"{username}@{domain}")
            if account is not None and account not in found:
                found.append(account)
        return found

    def _length(self, text: str) -> int:
        counted = _URL.sub("x" * 23, text)
        return len(_MENTION.sub(lambda m: "@" + m.group(1), counted))


if __name__ == "__main__":  # pragma: no cover - manual use
    with MastodonImitation() as imitation:
        print(f"Mastodon imitation at {imitation.url}  token {imitation.token}")
        imitation.direct(imitation.account("jane", display_name="Jane Doe"), "my order #1234 arrived broken")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
