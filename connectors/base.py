"""The connector contract: what a channel module must provide, and the errors it raises.

A connector is one class in one file in `connectors/` (or in an outside package registered under
the `mainland.connectors` entry-point group). It knows its channel's API and nothing of the store:

- `fetch(cursor)` returns the items after `cursor`, oldest first, at most one page, plus the new
  cursor. The ingest pipeline stores the items and the cursor in one transaction, so a poll that
  dies halfway is simply repeated; the store drops items it already has.
- `send(reply)` delivers an agent's reply threaded to the item it answers and returns the
  channel's id for it.
- `parse_raw(raw)` turns raw bytes kept in quarantine back into an item (for reprocessing).
- push-only channels implement `verify_webhook` and `parse_webhook`.
- `probe()` asks the channel's documented "who am I" question and says, in a `ProbeResult`, whether
  the settings work (the admin page's "Test connection"). It changes nothing anywhere.

Words a person reads (a setting's `help` and `label`, a probe's summary) are English, marked with `N_`
for extraction: connectors import neither Flask nor Babel and run outside any request, so the admin
page translates them when it shows them (`Phrase` carries a summary's values beside its template).

Errors say what the caller should do next: `RetryableError` (wait, maybe `retry_after` seconds,
then try again; the cursor does not move) or `PermanentError` (stop until a person fixes it).
See docs/connectors.md for the walkthrough.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

# The contract's errors live on neutral ground (inbox.errors, which inbox.mail raises too); imported
# from here as ever.
from inbox.errors import ConnectorError as ConnectorError
from inbox.errors import ItemError as ItemError
from inbox.errors import PermanentError as PermanentError
from inbox.errors import RetryableError as RetryableError
from inbox.errors import UncertainError as UncertainError
from inbox.models import (
    Attachment,
    FetchResult,
    InboundItem,
    OutboundReply,
    ParsedPage,
    RawPage,
    Reject,
    TemplateInfo,
)


def N_(text: str) -> str:  # noqa: N802 - gettext's standard name, one of Babel's default keywords
    """Mark `text` for translation and return it unchanged (gettext's no-op idiom).

    pybabel extracts every `N_("...")` into the catalog; the admin page translates the text when it
    shows it. A third-party connector's unmarked text is simply shown as written."""
    return text


@dataclass(frozen=True)
class Phrase:
    """A sentence with values in it: `template` (English, marked with `N_`, `{name}` placeholders) and
    its `values`. `str()` is the English sentence (logs, the CLI, the REST API); `render(translate)` the
    sentence in a person's language, values filled in after translating (a value may be a Phrase too)."""

    template: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def render(self, translate: Callable[[str], str] = lambda text: text) -> str:
        values = {key: value.render(translate) if isinstance(value, Phrase) else value
                  for key, value in self.values.items()}
        try:
            return translate(self.template).format(**values)
        except (KeyError, IndexError, ValueError):  # a translation that lost a placeholder: say it in English
            return self.template.format(**values)

    def redacted(self, redact: Callable[[str], str]) -> Phrase:
        """The phrase with `redact` applied to every value (a secret never shows in a filled-in sentence)."""
        return Phrase(self.template, {key: value.redacted(redact) if isinstance(value, Phrase)
                                      else redact(value) if isinstance(value, str) else value
                                      for key, value in self.values.items()})

    def __str__(self) -> str:
        return self.render()


@dataclass(frozen=True)
class Setting:
    """A configuration key a connector reads. `secret` keys are never logged or shown."""

    name: str
    required: bool = False
    default: Any = None
    secret: bool = False
    #: One or two sentences under the field on the admin page, marked with `N_` for translation.
    help: str = ""
    #: A secret the admin must copy into the provider's own settings (a webhook verify token): the
    #: channel's admin page shows it, with a copy button, beside the webhook address.
    copy_to_provider: bool = False
    #: The field's name on the admin page, marked with `N_`; empty: made from `name`
    #: ("verify_token" -> "Verify token").
    label: str = ""

    @property
    def shown_label(self) -> str:
        """`label`, or the key as words with a capital: the English the admin page translates."""
        if self.label:
            return self.label
        words = self.name.replace("_", " ")
        return words[:1].upper() + words[1:]


@dataclass(frozen=True)
class Limits:
    """A channel's rules that the inbox respects when agents reply."""

    max_text_length: int | None = None
    formatting: str = "plain"  # "plain", "markdown" or "html"
    reply_window_hours: float | None = None
    max_attachment_bytes: int | None = None
    supports_attachments: bool = True
    #: A public conversation (a comment) can also be answered privately, once (Meta's private reply).
    private_replies: bool = False
    #: Where an agent's reply may carry files: in a public reply (comment, mention) and in a private
    #: one (DM, mail). Both are ignored when `supports_attachments` is False.
    attachments_public: bool = True
    attachments_private: bool = True
    #: MIME types a reply's files may have ("image/jpeg", or "image/*" for a family); () means any.
    attachment_types: tuple[str, ...] = ()
    #: Files per reply; None means no limit of the channel's own.
    max_attachments: int | None = None
    #: False when one channel message cannot hold both text and a file (Messenger): the outbox then
    #: sends the text and each file as messages of their own, each sent once and tracked on its own.
    files_with_text: bool = True
    #: True when a reply may also go to further people in copy (email's Cc and Bcc): the composer
    #: then offers CC and BCC fields, filled from the customer's last message.
    copies: bool = False
    #: Whether an agent may write first (a new conversation that answers nothing): "any" (email; a chat
    #: network whose API lets a business message a known handle), "template" (only an approved template,
    #: as WhatsApp outside the 24-hour window), or None (only replies). See `Connector.writes_to`.
    starts_conversations: str | None = None

    def accepts_files(self, *, public: bool) -> bool:
        """True when a reply (public or private) on this channel may carry files at all."""
        if not self.supports_attachments:
            return False
        return self.attachments_public if public else self.attachments_private

    def accepts_type(self, content_type: str) -> bool:
        """True when a file of `content_type` may go out on this channel."""
        if not self.attachment_types:
            return True
        kind = (content_type or "").split(";")[0].strip().lower()
        family = kind.split("/")[0] + "/*"
        return kind in self.attachment_types or family in self.attachment_types

    def refuse_files(self, files: Sequence[Attachment], *, public: bool, most: int | None = None,
                     cap: int | None = None) -> FileRefusal | None:
        """Why `files` cannot go out in one reply on this channel, or None when they can. `most` and
        `cap` narrow `max_attachments` and `max_attachment_bytes` (a DM that takes one image, the
        installation's own cap). The one rule behind the composer, the outbox and each connector."""
        if not files:
            return None
        if not self.accepts_files(public=public):
            return FileRefusal("none")
        counts = [n for n in (self.max_attachments, most) if n is not None]
        if counts and len(files) > min(counts):
            return FileRefusal("count", limit=min(counts))
        caps = [c for c in (self.max_attachment_bytes, cap) if c]
        for file in files:
            size = len(file.data or b"")
            if not size:
                return FileRefusal("empty", filename=file.filename)
            if not self.accepts_type(file.content_type):
                return FileRefusal("type", filename=file.filename, content_type=file.content_type)
            if caps and size > min(caps):
                return FileRefusal("size", filename=file.filename, limit=min(caps), size=size)
        return None


@dataclass(frozen=True)
class FileRefusal:
    """Why a reply's files cannot go out: `code` "none" (no files here), "count" (`limit`), "empty",
    "type" (`content_type`) or "size" (`limit` and `size` in bytes), with the file's name."""

    code: str
    filename: str | None = None
    content_type: str | None = None
    limit: int | None = None
    size: int | None = None


@dataclass(frozen=True)
class ProbeResult:
    """What a connection test found: `ok`, one line a person understands (`summary`, e.g. "Signed in as
    @acme_support (id 1234)", or what to do next), the provider's own answer (`detail`: status line and
    a trimmed body, secrets redacted) and its HTTP status when there was one.

    `summary` is English (logs, the CLI, the REST API); `phrase`, when set, is the same sentence as a
    marked template and its values, which the admin page shows translated. Build both with `said`."""

    ok: bool
    summary: str
    detail: str = ""
    status: int | None = None
    #: Not compared: two results that say the same English are equal.
    phrase: Phrase | None = field(default=None, compare=False)

    @classmethod
    def said(cls, ok: bool, template: str, values: Mapping[str, Any] | None = None, *, detail: str = "",
             status: int | None = None) -> ProbeResult:
        """A result whose summary is `template` (marked with `N_`) with `values` filled in."""
        phrase = Phrase(template, dict(values or {}))
        return cls(ok, str(phrase), detail=detail, status=status, phrase=phrase)

    @classmethod
    def of(cls, ok: bool, summary: str | Phrase, *, detail: str = "", status: int | None = None) -> ProbeResult:
        """A result from a plain English summary (shown as written) or a `Phrase`."""
        if isinstance(summary, Phrase):
            return cls(ok, str(summary), detail=detail, status=status, phrase=summary)
        return cls(ok, summary, detail=detail, status=status)

    def redacted(self, redact: Callable[[str], str]) -> ProbeResult:
        """The result with `redact` applied to the summary, the detail and the phrase's values."""
        return replace(self, summary=redact(self.summary), detail=redact(self.detail),
                       phrase=self.phrase.redacted(redact) if self.phrase else None)


@dataclass(frozen=True)
class IdentityRule:
    """How the core stores and matches one identity kind a channel's authors carry (`Author.identity_kind`).

    `kind` is the name stored with the identity ("telegram"); `aliases` are other names for it ("twitter"
    for "x"), also accepted as CSV columns by the customer import. A handle is matched in its normal form:
    `normalize(value, region)` when given, else NFKC, trimmed, a leading "@" dropped when `strip_at`,
    lower-cased when `case_insensitive`. `single`: a person has one of these (two records with different
    values are two people until an agent says otherwise). `contacts_in_text`: people type their email
    address or phone number into messages on this channel, which the core reads as evidence. `handle`:
    a network account, offered as a column of its own in the customer import.
    """

    kind: str
    case_insensitive: bool = False
    strip_at: bool = False
    single: bool = True
    contacts_in_text: bool = True
    handle: bool = True
    aliases: tuple[str, ...] = ()
    normalize: Callable[[str, str | None], str | None] | None = None


def _email_identity(value: str, region: str | None = None) -> str:
    from inbox.identity import normalize_email_identity

    return normalize_email_identity(value)


def _phone_identity(value: str, region: str | None = None) -> str:
    from inbox.identity import normalize_phone_identity

    return normalize_phone_identity(value, region)


#: Email addresses (mail, web forms): the core's own normal form, many per person, never a handle column.
EMAIL_IDENTITY = IdentityRule("email", case_insensitive=True, single=False, contacts_in_text=False, handle=False,
                              aliases=("mail",), normalize=_email_identity)
#: Phone numbers in E.164 (WhatsApp, SMS): many per person, people write addresses in their messages.
PHONE_IDENTITY = IdentityRule("phone", single=False, handle=False, aliases=("sms",), normalize=_phone_identity)


@dataclass(frozen=True)
class WebhookRequest:
    """The parts of an HTTP request a connector needs to verify and parse a webhook."""

    body: bytes
    headers: Mapping[str, str]
    remote_addr: str | None = None
    args: Mapping[str, str] | None = None


class Connector(abc.ABC):
    """One channel. Subclass this in connectors/<kind>.py; see docs/connectors.md."""

    kind: ClassVar[str]
    display_name: ClassVar[str]
    settings: ClassVar[tuple[Setting, ...]] = ()
    limits: ClassVar[Limits] = Limits()
    #: True when the channel only pushes (webhooks, forms): the worker never polls it.
    push_only: ClassVar[bool] = False
    #: Seconds between polls unless the config says otherwise.
    default_poll_every: ClassVar[float] = 60.0
    #: How the channel is drawn in lists: a one- or two-letter mark on the network's colour (a CSS
    #: hex colour with enough contrast for white text). None: the first letter of display_name on grey.
    icon_text: ClassVar[str | None] = None
    icon_color: ClassVar[str | None] = None
    #: The identity kinds this channel's handles are ("email", "phone", "telegram", ...): a new
    #: conversation can go to a customer's identity of one of these kinds (`limits.starts_conversations`).
    writes_to: ClassVar[tuple[str, ...]] = ()
    #: True when sending the same reply twice reaches the customer once: the channel takes an
    #: idempotency key (Mastodon's `Idempotency-Key` header, the outbox id) or the recipient's software
    #: folds copies together (email's stable Message-ID). Such replies are resent after an uncertain
    #: send; on other channels an agent decides.
    idempotent_sends: ClassVar[bool] = False

    # What the core reads about the channel (#15): each is a declaration here, never a table keyed by
    # kind in inbox/. ---------------------------------------------------------------------------------

    #: The identity kinds this channel's authors carry, with how they are matched (`IdentityRule`).
    #: Several channels may declare the same kind (web forms and email both carry "email").
    identities: ClassVar[tuple[IdentityRule, ...]] = ()
    #: How a satisfaction survey goes out after resolve: "chat" (a question answered with a number in
    #: the conversation) or "link" (a message with a one-click page, for email-like channels).
    survey_style: ClassVar[str] = "chat"
    #: True when the channel takes pushed requests through pages of its own (the web form's
    #: inbox/web/forms.py) rather than `POST /webhooks/<channel>`: that endpoint answers 404 for it,
    #: and the health page counts its last message as its last sign of life.
    own_endpoint: ClassVar[bool] = False
    #: What the composer calls a private reply here: "message" ("Private message on <channel>") or
    #: "email" ("Private email to the customer").
    private_medium: ClassVar[str] = "message"

    @staticmethod
    def measure_text(text: str) -> int:
        """The length of `text` as the channel counts it against `limits.max_text_length`
        (characters here; X weighs characters, Bluesky counts graphemes)."""
        return len(text)

    @classmethod
    def takes_webhooks(cls, settings: Mapping[str, Any]) -> bool:
        """True when a channel configured with `settings` takes events at `POST /webhooks/<channel>`:
        it verifies webhooks and has no endpoint of its own. Override when a setting decides
        (Telegram takes webhooks only in webhook mode)."""
        return cls.verify_webhook is not Connector.verify_webhook and not cls.own_endpoint

    def __init__(self, name: str, config: Mapping[str, Any], **kwargs: Any) -> None:
        self.name = name
        self.config = self.check_config(config)
        #: The installation's facts (instance id, mail domain, size caps): an
        #: `inbox.runtime.ConnectorContext`, or None when a test builds the connector bare.
        self.context = kwargs.get("context")
        self.log = logging.getLogger(f"mainland.connectors.{self.kind}.{name}")

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Fill defaults and report every missing required setting at once."""
        merged = dict(config)
        missing = []
        for setting in cls.settings:
            if merged.get(setting.name) in (None, ""):
                if setting.required:
                    missing.append(setting.name)
                else:
                    merged[setting.name] = setting.default
        if missing:
            raise PermanentError(f"missing required setting(s): {', '.join(missing)}")
        return merged

    @property
    def secrets(self) -> list[str]:
        """The configured secret values, for redaction in logs and errors."""
        return [str(self.config[s.name]) for s in self.settings if s.secret and self.config.get(s.name)]

    def redact(self, text: str) -> str:
        """`text` with every configured secret replaced by `***`."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    @abc.abstractmethod
    def fetch(self, cursor: str | None) -> FetchResult:
        """Return items after `cursor`, oldest first, at most one page.

        Raises:
            RetryableError: the channel asked us to wait (429, 5xx, timeout).
            PermanentError: credentials or request are wrong; polling stops until fixed.
        """

    def fetch_raw(self, cursor: str | None) -> RawPage:
        """The page `fetch` would return, with its parsing left to the caller (`RawPage`).

        Only channels whose parsing is heavy implement it (mail: the poller then parses a large
        poll's pages in worker processes, #16); `fetch` stays the one every connector has, and
        such a connector's `fetch` is `fetch_raw` parsed in place (`page_result`). Raises as `fetch`.
        """
        raise NotImplementedError(f"{self.kind} fetches parsed pages only")

    @classmethod
    def fetches_raw(cls) -> bool:
        """True when the connector implements `fetch_raw`."""
        return cls.fetch_raw is not Connector.fetch_raw

    def page_result(self, page: RawPage, parsed: ParsedPage) -> FetchResult:
        """A raw page and what its parse made of it, as the page `fetch` returns: the parse's rejects
        (their reasons redacted, each logged) before the fetch's own, in the order read."""
        rejects = []
        for reject in parsed.rejects:
            reason = self.redact(reject.reason)
            self.log.warning("%s of %s quarantined: %s", reject.source_ref or "an item", self.name, reason)
            rejects.append(replace(reject, reason=reason))
        return FetchResult(items=parsed.items, cursor=page.cursor, rejects=rejects + page.rejects, more=page.more)

    @abc.abstractmethod
    def send(self, reply: OutboundReply) -> str:
        """Deliver `reply`, threaded to the message it answers; return the channel's id for it.

        Raises:
            RetryableError: not delivered, try again later.
            PermanentError: the channel refused it for good; the agent is told why.
        """

    @classmethod
    def thread_key_for(cls, handle: str) -> str | None:
        """The thread key the channel's items from `handle` carry, so that the customer's answer to a
        conversation we started joins it (None: the channel threads by other means, as email does)."""
        return None

    def message_templates(self) -> list[TemplateInfo]:
        """The approved message templates an agent may send (channels with templates); [] otherwise.

        Raises:
            RetryableError / PermanentError: the channel could not be asked.
        """
        return []

    def probe(self) -> ProbeResult:
        """Test the connection: ask the channel who we are signed in as, and say so.

        A probe never changes anything at the provider or in our store (it consumes no message and
        moves no cursor), takes at most the channel's timeout (15 s at most), never raises, and
        never shows a secret: bad credentials, an unreachable or private host, a timeout or an
        answer that is not JSON are `ok=False` with a summary that says what to do next.
        `connectors._probe` holds the shared part (the SSRF check, the HTTP call, the wording).
        """
        return ProbeResult.said(False, N_("This channel has no connection test"))

    def parse_raw(self, raw: bytes, source_ref: str | None = None) -> InboundItem:
        """Turn raw bytes (as kept in quarantine) into an item again.

        Raises:
            ItemError: the bytes still cannot be understood.
        """
        raise ItemError(f"{self.kind} cannot reprocess raw items")

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Raise `PermanentError` unless the request really comes from the channel."""
        raise PermanentError(f"{self.kind} does not accept webhooks")

    def parse_webhook(self, request: WebhookRequest) -> FetchResult:
        """Turn a verified webhook request into items."""
        raise PermanentError(f"{self.kind} does not accept webhooks")

    def download(self, url: str, *, filename: str | None = None, content_type: str | None = None,
                 headers: Mapping[str, str] | None = None) -> Attachment:
        """Fetch a media URL the channel gave us as an attachment, through the SSRF-guarded fetch.

        Raises:
            ItemError: the URL was refused (a non-public address, too large, an error answer);
                catch it to keep the item without that file, or let the item go to quarantine.
        """
        from inbox.safe_fetch import FetchRefused, safe_fetch

        allow = self.context.fetch_allow_hosts if self.context else ()
        limit = self.context.max_attachment_bytes if self.context else 25 * 1024 * 1024
        try:
            fetched = safe_fetch(url, allow_hosts=allow, max_bytes=limit, headers=dict(headers or {}))
        except FetchRefused as exc:
            raise ItemError(self.redact(f"media {url.split('?')[0]} not fetched: {exc}")) from None
        return Attachment(filename=filename or fetched.filename or url.rstrip("/").rsplit("/", 1)[-1].split("?")[0],
                          content_type=content_type or fetched.content_type, data=fetched.data,
                          size=len(fetched.data))

    def close(self) -> None:  # noqa: B027 - optional hook; most connectors hold nothing open
        """Release connections held between calls."""

    def send_recorded(self, reply: OutboundReply, provider_id: str) -> None:  # noqa: B027 - optional hook
        """Called in the sending process once the reply is recorded as sent (committed): a channel whose
        readers wait in this process (the website chat's widgets) can tell them at once."""

    # Helpers shared by connectors -------------------------------------------------------------

    def each(
        self, raw_items: Iterable[Any], to_item: Callable[[Any], InboundItem], *, raw_of: Callable[[Any], bytes] = None
    ) -> tuple[list[InboundItem], list[Reject]]:
        """Convert every raw item; one that fails becomes a `Reject` and the rest go on."""
        items: list[InboundItem] = []
        rejects: list[Reject] = []
        for raw in raw_items:
            try:
                items.append(to_item(raw))
            except Exception as exc:  # a malformed item must never stop the poll
                data = raw_of(raw) if raw_of else repr(raw).encode("utf-8", "replace")
                rejects.append(Reject(raw=data, reason=self.redact(str(exc)) or type(exc).__name__,
                                      exception=type(exc).__name__))
        return items, rejects


def pick(data: Any, *path: str | int, type: type | tuple[type, ...] | None = None) -> Any:
    """`data[path[0]][path[1]]...`, with an `ItemError` that names the missing path."""
    current = data
    for depth, key in enumerate(path):
        try:
            current = current[key]
        except (KeyError, IndexError, TypeError):
            where = ".".join(str(p) for p in path[: depth + 1])
            raise ItemError(f"missing field {where}") from None
    if type is not None and not isinstance(current, type):
        where = ".".join(str(p) for p in path)
        raise ItemError(f"field {where} has the wrong type ({current.__class__.__name__})")
    return current
