"""The web form channel: a public contact form, embeddable on any site, whose submissions join the queue.

Nothing is polled: the web layer (inbox/web/forms.py) hands each POST to `verify_webhook` and
`parse_webhook` as a `WebhookRequest`, so the whole protocol lives here and is testable without
Flask. The protections, modelled on Zammad's form token and the honeypots of Formspree/Cockpit:

- the form page carries a `submission_id` (UUID4, made when the page is rendered), `issued_at` and
  `token` = HMAC-SHA256(signing_key("webform:<channel>"), "<submission_id>:<issued_at>"); a token
  that does not match, is older than 24 hours or comes from the future is refused;
- the honeypot field `website` must be present and empty (a bot fills it in or, replaying a stored
  POST, leaves it out);
- `submission_id` is the item's external id, so a double click or a browser retry is stored once;
- the email must be exactly one plain address (no CR/LF, no lists), because replies go there.

Replies are not sent from here: the `reply_channel` setting names an email channel and
`Mainland.sending_connector` sends through it. See docs/web-forms.md.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import io
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from email.headerregistry import Address
from typing import Any, ClassVar
from urllib.parse import urlsplit

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser
from werkzeug.http import parse_options_header

from connectors.base import (
    EMAIL_IDENTITY,
    N_,
    Connector,
    ItemError,
    Limits,
    PermanentError,
    ProbeResult,
    Setting,
    WebhookRequest,
)
from inbox.models import Attachment, Author, FetchResult, InboundItem, OutboundReply
from inbox.sanitize import CONTROLS

#: A token is good for this long after the page was rendered (Zammad uses the same 24 hours).
TOKEN_MAX_AGE = 24 * 3600
#: Clocks of several web workers may differ a little; more than this in the future is a forgery.
TOKEN_FUTURE_SKEW = 60
HONEYPOT_FIELD = "website"
MAX_NAME_CHARS = 200
MAX_SUBJECT_CHARS = 200
MAX_EMAIL_CHARS = 254  # RFC 5321 path limit minus the angle brackets
#: Room for the small fields, the token and multipart framing on top of the text and files.
FORM_OVERHEAD_BYTES = 64 * 1024
#: A percent-encoded UTF-8 character takes up to 12 bytes ("%F0%9F%98%80" is 4 bytes, 12 chars).
BYTES_PER_CHAR = 12
#: Parts in one multipart body: our fields plus the files; more is an attack on the parser.
MAX_FORM_PARTS = 50

_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class FormError(ItemError):
    """The submission cannot be accepted as filled in; the form is shown again with the errors.

    `errors` maps a field name (or "form") to an English message; `codes` maps it to a stable
    code the web layer translates. `status` is the HTTP status to answer with (413 when the
    problem is size).
    """

    def __init__(self, errors: Mapping[str, str], *, codes: Mapping[str, str] | None = None,
                 status: int = 400) -> None:
        self.errors = dict(errors)
        self.codes = dict(codes or {})
        self.status = status
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


class FormRefused(PermanentError):
    """The request is not a genuine submission of our form. `reason` is one of
    "honeypot", "expired", "invalid_token" (the web layer answers each differently)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Submission:
    """A form body read into plain values (before any validation)."""

    fields: dict[str, str]
    files: list[Attachment] = field(default_factory=list)
    present: set[str] = field(default_factory=set)


def clean_email(value: str) -> str:
    """The one address in `value`, lower-cased; `ValueError` (with the reason) unless it is
    exactly one plain address that replies can go to.

    Stricter than RFC 5322 on purpose (IN-62): no display names, no lists, no comments, no
    whitespace or line breaks, an ASCII local part and a domain with a dot. A quoted local part
    that needs no quotes (`"a"@b.example`) is normalised to `a@b.example`.
    """
    value = value.strip()
    if not value:
        raise ValueError("required")
    if len(value) > MAX_EMAIL_CHARS:
        raise ValueError("too long")
    if any(c in value for c in ",;<>()") or any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in value):
        raise ValueError("one plain address only")
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("not an address")
    if len(local) > 2 and local.startswith('"') and local.endswith('"'):
        local = local[1:-1]
    if not _LOCAL_PART.match(local) or len(local) > 64:
        raise ValueError("not an address")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError("not an address") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise ValueError("not an address")
    try:
        address = Address(username=local, domain=ascii_domain)
    except (ValueError, IndexError):
        raise ValueError("not an address") from None
    return address.addr_spec.lower()


def _one_line(value: str) -> str:
    """`value` with every run of whitespace and control characters turned into one space."""
    return " ".join(CONTROLS.sub(" ", value).split())


def _header(headers: Mapping[str, str], name: str) -> str:
    """A header of a plain dict or a werkzeug `Headers`, case-insensitively."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return str(value or "")


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of a URL or an Origin header, lower-cased; None if it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def checked_origins(value: Any, problems: list[str]) -> tuple[str, ...]:
    """The `allowed_origins` setting as normalised origins (a list, or one text of origins separated by
    commas or spaces); each value that is no origin is reported in `problems` and left out."""
    origins = value or []
    if isinstance(origins, str):
        origins = origins.replace(",", " ").split()
    if not isinstance(origins, list | tuple):
        problems.append("allowed_origins: must be a list of origins like https://www.example.com")
        origins = []
    normalized = []
    for item in origins:
        origin = origin_of(str(item))
        if origin is None or urlsplit(str(item)).path not in ("", "/"):
            problems.append(f"allowed_origins: {item!r} is not an origin like https://www.example.com")
        else:
            normalized.append(origin)
    return tuple(dict.fromkeys(normalized))


class WebformConnector(Connector):
    """A public contact form. Submissions arrive through the web layer; replies go out by email."""

    kind = "webform"
    identities = (replace(EMAIL_IDENTITY, aliases=("mail", "webform")),)
    #: Replies (and so surveys) go out by email; submissions come through the form's own pages.
    survey_style = "link"
    own_endpoint = True
    display_name = N_("Web form")
    icon_text = "F"
    icon_color = "#3e4c59"
    push_only = True
    limits = Limits(formatting="plain", supports_attachments=True)

    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("title", default="", help=N_("Heading of the form page (empty: a translated 'Contact us').")),
        Setting("intro", default="", help=N_("Text shown above the form, e.g. when to expect an answer.")),
        Setting("allowed_origins", default=(),
                help=N_("Sites that may embed the form and post to it, e.g. [\"https://www.example.com\"]. "
                        "Mainland's own origin is always allowed.")),
        Setting("reply_channel", required=True,
                help=N_("The email channel (e.g. an imap channel) whose SMTP sends agents' replies to submitters.")),
        Setting("max_attachment_bytes", default=5 * 1024 * 1024, help=N_("Largest file a visitor may attach.")),
        Setting("max_attachments", default=3, help=N_("How many files one submission may carry (0: no uploads).")),
        Setting("max_text_chars", default=20_000, help=N_("Longest message, in characters.")),
        Setting("per_ip_per_hour", default=20, help=N_("Submissions accepted from one IP address per hour.")),
        Setting("per_ip_per_day", default=240, help=N_("Submissions accepted from one IP address per day.")),
        Setting("success_message", default="",
                help=N_("Shown after sending (empty: a translated 'Thank you, we will answer by email').")),
    )

    #: Seconds since the epoch; tests replace it to travel in time.
    clock: ClassVar = staticmethod(time.time)

    def __init__(self, name: str, config: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(name, config, **kwargs)
        # verify_webhook and parse_webhook read the same body; parse it once per request.
        self._last_read: tuple[WebhookRequest, Submission] | None = None

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_config(config)
        problems: list[str] = []
        merged["allowed_origins"] = checked_origins(merged.get("allowed_origins"), problems)
        for key in ("max_attachment_bytes", "max_attachments", "max_text_chars", "per_ip_per_hour", "per_ip_per_day"):
            value = merged.get(key)
            minimum = 0 if key == "max_attachments" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                problems.append(f"{key}: must be a whole number of at least {minimum}")
        if problems:
            raise PermanentError("; ".join(problems))
        return merged

    # Caps -----------------------------------------------------------------------------------------

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        return self.config["allowed_origins"]

    @property
    def max_attachment_bytes(self) -> int:
        cap = int(self.config["max_attachment_bytes"])
        if self.context is not None:
            cap = min(cap, self.context.max_attachment_bytes)
        return cap

    @property
    def max_request_bytes(self) -> int:
        """The largest body a genuine submission can have; the web layer answers 413 above it."""
        files = int(self.config["max_attachments"]) * self.max_attachment_bytes
        text = (int(self.config["max_text_chars"]) + MAX_NAME_CHARS + MAX_SUBJECT_CHARS) * BYTES_PER_CHAR
        return files + text + FORM_OVERHEAD_BYTES

    # The form token ---------------------------------------------------------------------------------

    def _key(self) -> bytes:
        if self.context is None:
            raise PermanentError("the web form needs the installation's signing key (no context given)")
        return self.context.signing_key(f"webform:{self.name}")

    def sign(self, submission_id: str, issued_at: int) -> str:
        return hmac.new(self._key(), f"{submission_id}:{issued_at}".encode(), hashlib.sha256).hexdigest()

    def new_form_token(self) -> dict[str, str]:
        """The hidden fields of a freshly rendered form: submission_id, issued_at and token."""
        submission_id = str(uuid.uuid4())
        issued_at = int(self.clock())
        return {"submission_id": submission_id, "issued_at": str(issued_at), "token": self.sign(submission_id, issued_at)}

    # Reading the body -------------------------------------------------------------------------------

    def read(self, request: WebhookRequest) -> Submission:
        """The body's fields and files; `FormError` when the body cannot be read or is too large."""
        if self._last_read is not None and self._last_read[0] is request:
            return self._last_read[1]
        mimetype, options = parse_options_header(_header(request.headers, "Content-Type"))
        if len(request.body) > self.max_request_bytes:
            raise FormError({"form": "the submission is too large"}, codes={"form": "too_large"}, status=413)
        if mimetype == "application/json":
            submission = self._read_json(request.body)
        elif mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
            submission = self._read_form(request.body, mimetype, options)
        else:
            raise FormError({"form": f"unsupported content type {mimetype or 'none'!r}"},
                            codes={"form": "unsupported"}, status=415)
        self._last_read = (request, submission)
        return submission

    def _read_form(self, body: bytes, mimetype: str, options: dict[str, str]) -> Submission:
        text_cap = (int(self.config["max_text_chars"]) + MAX_SUBJECT_CHARS + MAX_NAME_CHARS) * BYTES_PER_CHAR
        parser = FormDataParser(
            max_form_memory_size=text_cap + FORM_OVERHEAD_BYTES,
            max_content_length=self.max_request_bytes,
            silent=False,
            max_form_parts=MAX_FORM_PARTS,
        )
        if mimetype == "application/x-www-form-urlencoded":
            # Browsers percent-encode; raw bytes that are not UTF-8 come from scripts. Keep them
            # readable (U+FFFD) instead of refusing the whole submission.
            body = body.decode("utf-8", "replace").encode("utf-8")
        try:
            _, form, files = parser.parse(io.BytesIO(body), mimetype, len(body), options)
        except RequestEntityTooLarge:
            raise FormError({"message": "the message is too long"}, codes={"message": "too_large"},
                            status=413) from None
        except ValueError as exc:
            raise FormError({"form": f"the form data cannot be read ({exc})"}, codes={"form": "unreadable"}) from None
        fields = {key: form.get(key, "") for key in form}
        attachments = []
        cap = self.max_attachment_bytes
        for storage in files.getlist("attachments") + files.getlist("attachment"):
            data = storage.stream.read(cap + 1)
            if not data and not storage.filename:
                continue  # the empty part a browser sends when no file was chosen
            if len(data) > cap:
                raise FormError({"attachments": f"a file is larger than {cap} bytes"},
                                codes={"attachments": "file_too_large"}, status=413)
            attachments.append(Attachment(
                filename=storage.filename or "", content_type=storage.mimetype or "application/octet-stream",
                data=data, size=len(data),
            ))
        return Submission(fields=fields, files=attachments, present=set(form))

    def _read_json(self, body: bytes) -> Submission:
        try:
            data = json.loads(body.decode("utf-8", "replace"))
        except (ValueError, RecursionError):
            raise FormError({"form": "the body is not valid JSON"}, codes={"form": "unreadable"}) from None
        if not isinstance(data, dict):
            raise FormError({"form": "the body must be a JSON object"}, codes={"form": "unreadable"})
        fields: dict[str, str] = {}
        for key, value in data.items():
            if key == "attachments":
                continue
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise FormError({key: "must be text"}, codes={key: "invalid"})
            fields[key] = str(value)
        attachments = []
        raw_files = data.get("attachments") or []
        if not isinstance(raw_files, list):
            raise FormError({"attachments": "must be a list"}, codes={"attachments": "invalid"})
        cap = self.max_attachment_bytes
        for entry in raw_files[: int(self.config["max_attachments"]) + 1]:
            if not isinstance(entry, dict) or not isinstance(entry.get("data"), str):
                raise FormError({"attachments": "each file needs filename, content_type and base64 data"},
                                codes={"attachments": "invalid"})
            try:
                content = base64.b64decode(entry["data"], validate=True)
            except (binascii.Error, ValueError):
                raise FormError({"attachments": "file data is not base64"}, codes={"attachments": "invalid"}) from None
            if len(content) > cap:
                raise FormError({"attachments": f"a file is larger than {cap} bytes"},
                                codes={"attachments": "file_too_large"}, status=413)
            attachments.append(Attachment(
                filename=str(entry.get("filename") or ""),
                content_type=str(entry.get("content_type") or "application/octet-stream"),
                data=content, size=len(content),
            ))
        return Submission(fields=fields, files=attachments, present=set(fields))

    # The connector contract -------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Refuse (`FormRefused`, a `PermanentError`) anything but a genuine, fresh form submission."""
        submission = self.read(request)
        fields = submission.fields
        if HONEYPOT_FIELD not in submission.present or fields.get(HONEYPOT_FIELD, "") != "":
            raise FormRefused("the honeypot field was filled in or left out", reason="honeypot")
        try:
            submission_id = str(uuid.UUID(fields.get("submission_id", "")))
            issued_at = int(fields.get("issued_at", ""))
        except ValueError:
            raise FormRefused("the form token is missing or malformed", reason="invalid_token") from None
        expected = self.sign(submission_id, issued_at)
        if not hmac.compare_digest(expected.encode(), fields.get("token", "").encode("utf-8", "replace")):
            raise FormRefused("the form token does not match", reason="invalid_token")
        now = self.clock()
        if issued_at > now + TOKEN_FUTURE_SKEW:
            raise FormRefused("the form token is issued in the future", reason="invalid_token")
        if now - issued_at > TOKEN_MAX_AGE:
            raise FormRefused("the form token is older than 24 hours", reason="expired")

    def parse_webhook(self, request: WebhookRequest) -> FetchResult:
        """The verified submission as one item; `FormError` with every field problem at once."""
        submission = self.read(request)
        item = self._item(submission, request)
        return FetchResult(items=[item], cursor=None)

    def _item(self, submission: Submission, request: WebhookRequest) -> InboundItem:
        fields = submission.fields
        errors: dict[str, str] = {}
        codes: dict[str, str] = {}
        status = 400

        def fail(name: str, code: str, message: str) -> None:
            errors.setdefault(name, message)
            codes.setdefault(name, code)

        try:
            email_address = clean_email(fields.get("email", ""))
        except ValueError as exc:
            email_address = ""
            fail("email", "required" if str(exc) == "required" else "invalid_email",
                 f"enter one email address ({exc})")
        name = _one_line(fields.get("name", ""))
        if len(name) > MAX_NAME_CHARS:
            fail("name", "too_long", f"at most {MAX_NAME_CHARS} characters")
        subject = _one_line(fields.get("subject", ""))
        if len(subject) > MAX_SUBJECT_CHARS:
            fail("subject", "too_long", f"at most {MAX_SUBJECT_CHARS} characters")
        # NUL and other control characters are never meaningful in a typed message.
        message = CONTROLS.sub("", fields.get("message", "")).replace("\r\n", "\n").strip()
        max_chars = int(self.config["max_text_chars"])
        if not message:
            fail("message", "required", "write a message")
        elif len(message) > max_chars:
            fail("message", "too_large", f"at most {max_chars} characters")
            status = 413
        if len(submission.files) > int(self.config["max_attachments"]):
            fail("attachments", "too_many", f"at most {self.config['max_attachments']} files")
        if errors:
            raise FormError(errors, codes=codes, status=status)

        submission_id = str(uuid.UUID(fields.get("submission_id", "")))
        first_line = next((line.strip() for line in message.splitlines() if line.strip()), "")
        headers = {
            "Origin": _header(request.headers, "Origin")[:300],
            "Referer": _header(request.headers, "Referer")[:500],
            "User-Agent": _header(request.headers, "User-Agent")[:500],
            "Remote-Addr": (request.remote_addr or "")[:64],
        }
        headers = {k: _one_line(v) for k, v in headers.items() if v}
        raw = json.dumps({
            "webform": 1, "submission_id": submission_id, "name": name, "email": email_address,
            "subject": subject, "message": message, "headers": headers,
            "attachments": [{"filename": a.filename, "content_type": a.content_type, "size": a.size}
                            for a in submission.files],
        }, ensure_ascii=False).encode("utf-8")
        return InboundItem(
            channel=self.name,
            external_id=submission_id,
            author=Author(handle=email_address, name=name, identity_kind="email", proven=False),
            text=message,
            subject=subject or first_line[:120],
            sent_at=dt.datetime.fromtimestamp(self.clock(), dt.UTC),
            public=False,
            attachments=tuple(submission.files),
            headers=headers,
            raw=raw,
            source_ref=f"webform:{submission_id}",
            size=len(request.body),
        )

    def parse_raw(self, raw: bytes, source_ref: str | None = None) -> InboundItem:
        """A stored submission (the JSON kept as the item's raw bytes) as an item again, without files."""
        try:
            data = json.loads(raw.decode("utf-8"))
            submission_id = str(uuid.UUID(data["submission_id"]))
            email_address = clean_email(data["email"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise ItemError(f"not a stored web form submission: {exc}") from None
        message = str(data.get("message") or "")
        return InboundItem(
            channel=self.name, external_id=submission_id,
            author=Author(handle=email_address, name=str(data.get("name") or ""), identity_kind="email", proven=False),
            text=message, subject=str(data.get("subject") or "") or message.strip().split("\n")[0][:120],
            headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
            raw=raw, source_ref=source_ref or f"webform:{submission_id}",
        )

    def fetch(self, cursor: str | None) -> FetchResult:
        """Nothing to poll: submissions arrive through the web layer."""
        return FetchResult(items=[], cursor=cursor)

    def send(self, reply: OutboundReply) -> str:
        raise PermanentError("web form replies go out by email through reply_channel")

    def probe(self) -> ProbeResult:
        """Nothing to connect to: the form's address, for the admin to open (its replies go out through
        `reply_channel`, whose own test covers them)."""
        base = (self.context.base_url if self.context else "").rstrip("/")
        url = f"{base}/forms/{self.name}"
        return ProbeResult.said(True, N_("Web forms receive posts; nothing to connect to"), detail=url)
