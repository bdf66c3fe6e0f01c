"""Email channel: new mail is read from an IMAP mailbox, replies are sent over SMTP.

What it does
------------
Each poll opens the mailbox read-only (IMAP `EXAMINE`), asks for the UIDs above the last one
already stored and reads those messages oldest first, a page (`batch_size`) at a time. Reading
uses `BODY.PEEK[]`, so Mainland never marks mail as read, moves it or deletes it: the mailbox is
left exactly as it was and a person or another client can keep using it.

- A message bigger than the installation's `max_message_bytes` (its `RFC822.SIZE`, asked for
  before any body is read) is not downloaded whole: only its first bytes are (a partial FETCH,
  `BODY.PEEK[]<0.N>` with N = `inbox.mail.oversize_prefix_bytes`, at most 1 MiB). Mailers put the
  text before the attachments, so those bytes hold the headers and what the customer wrote; the
  message is stored with them, flagged "oversized" and "truncated", and a note at the end of its
  text says that the rest (the attachments) was not stored and is still on the server. One partial
  FETCH works the same on every IMAP4rev1 server and goes through the same parser as whole mail;
  fetching part by part from BODYSTRUCTURE would also find text placed after a large file, at the
  cost of one round trip per part and each server's BODYSTRUCTURE quirks.
- A message that cannot be understood (no sender at all, or a parser failure) goes to the
  quarantine with the reason; the rest of the poll goes on. `mainland quarantine reprocess`
  tries it again later.
- At most `max_per_poll` messages are read per poll; the next poll continues from there.
- The connector fetches; the poller parses (#16). `fetch_raw` hands back a page's raw bytes with
  `parse_messages` (a module-level function, so it can run in another process); a poll that will
  read at least 2,000 messages (`inbox.parse_pool.MIN_MESSAGES_FOR_PROCESSES`: a first sync with
  `max_per_poll` raised to, say, 10000) parses its pages in worker processes while the next pages
  are fetched, and a poll of a few new mails parses them in the poller's own process. `fetch`
  parses in place and returns the same page.

Replies are built by `inbox.mail.build_reply` (threaded with In-Reply-To/References, marked
against mail loops) and sent with SMTP from `address`. The Message-ID of the reply is its id.
Mail to our own address, MAILER-DAEMON, postmaster or noreply addresses is refused. A
temporary SMTP answer (4xx) or a network failure is retried later; a permanent one (5xx, e.g.
"550 user unknown" or "552 message too large") is reported to the agent with the server's text.

Cursor
------
The cursor is `v1:<UIDVALIDITY>:<last UID>` (followed by `:<UID>:<tries>` while one message's
FETCH answer cannot be read: that message is tried on three polls, then held in quarantine as
"unfetchable" with its UID, and the mailbox moves on). It only moves past UIDs whose messages were stored
or quarantined in the same database transaction, so a poll killed at any moment repeats at most
one page. If the server's UIDVALIDITY differs from the cursor's (the mailbox was rebuilt or moved
to a new server), every UID is read again from 1 and a warning names both values; messages
already stored are recognised by their Message-ID, sender, date and subject (or the hash of
their bytes) and are not stored twice.

Settings
--------
host, port (993), username, password (secret), mailbox (INBOX), security (`ssl`, `starttls`
or `none`; `none` sends the password in clear and is only sensible on 127.0.0.1), address (our
support address, the From of replies), from_name, smtp_host (defaults to host), smtp_port (587),
smtp_username (empty: send without logging in), smtp_password (secret; defaults to password),
smtp_security (`starttls`, `ssl` or `none`), batch_size (50), max_per_poll (500), timeout
(seconds for every network operation, 60).

Example (mainland.yaml)::

    channels:
      support-mail:
        kind: imap
        host: imap.example.com
        username: support@example.com
        password: {"$env": "SUPPORT_MAIL_PASSWORD"}
        address: support@example.com
        from_name: Example Support
        smtp_host: smtp.example.com
"""

from __future__ import annotations

import dataclasses
import email
import email.errors
import email.policy
import imaplib
import ipaddress
import smtplib
import ssl
from collections.abc import Sequence
from email.header import decode_header, make_header
from email.message import EmailMessage
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError, ProtocolError

from connectors._probe import probe_timeout, refuse_host
from connectors.base import (
    EMAIL_IDENTITY,
    N_,
    Connector,
    ItemError,
    Limits,
    PermanentError,
    Phrase,
    ProbeResult,
    RetryableError,
    Setting,
    UncertainError,
)
from inbox.mail import build_reply, oversize_prefix_bytes, parse_email, parse_email_prefix, tokens_in
from inbox.models import FetchResult, InboundItem, OutboundReply, ParsedPage, RawPage, Reject

CURSOR_VERSION = "v1"
#: Local parts that never read mail: answering them only feeds bounce loops (RFC 3834).
NO_REPLY_LOCAL_PARTS = frozenset({
    "mailer-daemon", "postmaster", "noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "do_not_reply",
})
#: IMAP response codes (RFC 5530) that mean "these credentials will not work until someone acts".
PERMANENT_LOGIN_CODES = ("AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED", "PRIVACYREQUIRED",
                         "CONTACTADMIN")
SECURITY_CHOICES = ("ssl", "starttls", "none")
#: The answer to `BODY.PEEK[]<0.N>`: the first N bytes of the message (RFC 3501 6.4.5).
_PREFIX_SECTION = b"BODY[]<0>"
_BODY_SECTION = b"BODY[]"
_SIZE = b"RFC822.SIZE"
#: A fetched message: (source_ref, its bytes, its whole size when only its first bytes were read).
RawMessage = tuple[str, bytes, int | None]


def _is_loopback(host: str) -> bool:
    if host in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: Polls in a row that may fail to read one message's FETCH answer before it is quarantined (IN-42).
MAX_FETCH_ATTEMPTS = 3


def parse_cursor(cursor: str | None) -> tuple[int, int] | None:
    """(uidvalidity, last_uid) from a cursor string, or None when there is none (or it is unreadable)."""
    if not cursor:
        return None
    parts = cursor.split(":")
    if len(parts) not in (3, 5) or parts[0] != CURSOR_VERSION:
        return None
    try:
        uidvalidity, last_uid = int(parts[1]), int(parts[2])
    except ValueError:
        return None
    if uidvalidity < 0 or last_uid < 0:
        return None
    return uidvalidity, last_uid


def make_cursor(uidvalidity: int, last_uid: int, stuck: tuple[int, int] | None = None) -> str:
    """The cursor; `stuck` = (uid, failed attempts) of a message whose FETCH answer could not be read."""
    base = f"{CURSOR_VERSION}:{uidvalidity}:{last_uid}"
    return f"{base}:{stuck[0]}:{stuck[1]}" if stuck else base


def stuck_in_cursor(cursor: str | None) -> tuple[int, int] | None:
    """(uid, attempts) of the message the last polls could not read, if the cursor records one."""
    parts = (cursor or "").split(":")
    if len(parts) == 5 and parts[3].isdigit() and parts[4].isdigit():
        return int(parts[3]), int(parts[4])
    return None


class ImapConnector(Connector):
    """Polls one IMAP mailbox (read-only) and answers over SMTP."""

    kind = "imap"
    identities = (EMAIL_IDENTITY,)
    #: Surveys go out as a mail with a one-click page; the composer says "Private email".
    survey_style = "link"
    private_medium = "email"
    display_name = N_("Email (IMAP/SMTP)")
    icon_text = "@"
    icon_color = "#52606d"
    settings = (
        Setting("host", required=True, help=N_("IMAP server name, e.g. imap.example.com.")),
        Setting("port", default=993, help=N_("IMAP port: 993 for ssl, 143 for starttls or none.")),
        Setting("username", required=True, help=N_("IMAP login name, often the full mail address.")),
        Setting("password", required=True, secret=True, help=N_("IMAP password or app password.")),
        Setting("mailbox", default="INBOX", help=N_("The folder to read; it is opened read-only.")),
        Setting("security", default="ssl",
                help=N_("ssl (TLS from the start), starttls (upgrade a plain connection) or none "
                        "(no encryption: only for a server on 127.0.0.1).")),
        Setting("address", required=True, help=N_("Our support address: the From of every reply.")),
        Setting("from_name", default="", help=N_("Display name shown with the address, e.g. 'Acme Support'.")),
        Setting("smtp_host", default=None, help=N_("SMTP server for replies; empty means the IMAP host.")),
        Setting("smtp_port", default=587, help=N_("SMTP port: 587 for starttls, 465 for ssl, 25 for none.")),
        Setting("smtp_username", default=None, help=N_("SMTP login name; empty sends without logging in.")),
        Setting("smtp_password", default=None, secret=True,
                help=N_("SMTP password; empty means the IMAP password is used.")),
        Setting("smtp_security", default="starttls", help=N_("starttls, ssl or none, as for `security`.")),
        Setting("batch_size", default=50, help=N_("Messages read per page (one database transaction each).")),
        Setting("max_per_poll", default=500, help=N_("Messages read per poll at most; the next poll goes on.")),
        Setting("timeout", default=60, help=N_("Seconds any IMAP or SMTP network operation may take.")),
    )
    # Mail can always be written first, to any address (#12: start a conversation), and in copy.
    limits = Limits(max_text_length=None, formatting="html", supports_attachments=True, copies=True,
                    starts_conversations="any")
    writes_to = ("email",)
    #: A resent reply keeps its Message-ID, which mail programs use to fold copies into one.
    idempotent_sends = True

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        merged = super().check_config(config)
        problems = []
        for key in ("security", "smtp_security"):
            merged[key] = str(merged[key]).strip().lower()
            if merged[key] not in SECURITY_CHOICES:
                problems.append(f"{key} must be one of {', '.join(SECURITY_CHOICES)}, not {merged[key]!r}")
        for key in ("port", "smtp_port", "batch_size", "max_per_poll"):
            try:
                merged[key] = int(merged[key])
            except (TypeError, ValueError):
                problems.append(f"{key} must be a whole number, not {merged[key]!r}")
                continue
            if merged[key] <= 0:
                problems.append(f"{key} must be above 0")
        try:
            merged["timeout"] = float(merged["timeout"])
        except (TypeError, ValueError):
            problems.append(f"timeout must be a number of seconds, not {merged['timeout']!r}")
        if "@" not in str(merged["address"]):
            problems.append(f"address {merged['address']!r} is not an email address")
        if problems:
            raise PermanentError("; ".join(problems))
        merged["smtp_host"] = merged["smtp_host"] or merged["host"]
        return merged

    def __init__(self, name: str, config: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(name, config, **kwargs)
        self._client: IMAPClient | None = None
        #: Messages handled since the current poll began (see max_per_poll).
        self._taken = 0
        for key in ("security", "smtp_security"):
            host = self.config["host" if key == "security" else "smtp_host"]
            if self.config[key] == "none" and not _is_loopback(host):
                self.log.warning("%s is 'none': the password goes to %s unencrypted", key, host)

    # Reading ------------------------------------------------------------------------------------

    def fetch(self, cursor: str | None) -> FetchResult:
        page = self.fetch_raw(cursor)
        return self.page_result(page, page.parse_here())

    def fetch_raw(self, cursor: str | None) -> RawPage:
        """The next page's raw messages (whole, or the first bytes of an oversized one), parsed by
        `parse_messages`: in the poller's worker processes when the poll is large (#16)."""
        try:
            return self._fetch(cursor)
        except (RetryableError, PermanentError):
            self._drop_connection()
            raise
        except LoginError as exc:
            self._drop_connection()
            text = self._imap_text(exc)
            if "UNAVAILABLE" in text.upper() and not any(c in text.upper() for c in PERMANENT_LOGIN_CODES):
                raise RetryableError(f"IMAP login to {self.config['host']} failed for now: {text}") from None
            raise PermanentError(f"IMAP login to {self.config['host']} refused: {text}") from None
        except ssl.SSLCertVerificationError as exc:
            self._drop_connection()
            raise PermanentError(
                f"the certificate of {self.config['host']} is not trusted: {self.redact(str(exc))}") from None
        except (IMAPClientError, OSError, EOFError) as exc:
            # Timeouts, refused or dropped connections, `BYE`, NO/BAD answers: try again later.
            self._drop_connection()
            raise RetryableError(
                f"IMAP {self.config['host']}:{self.config['port']}: {type(exc).__name__}: {self._imap_text(exc)}"
            ) from None

    def _fetch(self, cursor: str | None) -> RawPage:
        client = self._connection()
        mailbox = self.config["mailbox"]
        try:
            selected = client.select_folder(mailbox, readonly=True)
        except IMAPClientError as exc:
            if "NONEXISTENT" in str(exc).upper():
                raise PermanentError(f"the mailbox {mailbox!r} does not exist on {self.config['host']}") from None
            raise
        uidvalidity = int(selected[b"UIDVALIDITY"])
        uidnext = selected.get(b"UIDNEXT")

        state = parse_cursor(cursor)
        if cursor and state is None:
            self.log.warning("unreadable cursor %r for %s: reading the mailbox from the start", cursor, mailbox)
        last_uid = 0
        if state is not None:
            if state[0] == uidvalidity:
                last_uid = state[1]
            else:
                self.log.warning(
                    "UIDVALIDITY of %s changed from %s to %s (mailbox rebuilt or moved): reading it all again; "
                    "messages already stored are recognised and not stored twice", mailbox, state[0], uidvalidity,
                )

        if uidnext is not None and int(uidnext) - 1 <= last_uid:
            return self._page_done([], make_cursor(uidvalidity, last_uid), [], more=False)
        # `UID SEARCH UID n:*` always includes the highest UID, even below n (RFC 3501 6.4.8).
        uids = sorted(u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)
        room = max(self.config["max_per_poll"] - self._taken, 1)
        page = uids[: min(self.config["batch_size"], room)]
        if not page:
            return self._page_done([], make_cursor(uidvalidity, last_uid), [], more=False)

        messages, unreadable = self._read(client, uidvalidity, page)
        rejects: list[Reject] = []
        if unreadable is not None:
            uid, error = unreadable
            before = stuck_in_cursor(cursor)
            attempts = (before[1] if before and before[0] == uid else 0) + 1
            if attempts < MAX_FETCH_ATTEMPTS:
                # Keep what came before it and try this message again next poll: servers do recover.
                self.log.warning("the answer for message %s:%s of %s could not be read (try %d of %d): %s",
                                 uidvalidity, uid, mailbox, attempts, MAX_FETCH_ATTEMPTS, error)
                kept = [m for m in messages if _uid_of(m[0]) < uid]
                return self._page_done(kept, make_cursor(uidvalidity, uid - 1, (uid, attempts)), [], more=False,
                                       to_read=len(kept))
            # Give up on it: hold a record of it in quarantine and let the mailbox move on.
            rejects.append(Reject(
                raw=f"UID {uid} of {mailbox} (UIDVALIDITY {uidvalidity}) on {self.config['host']}".encode(),
                reason=f"unfetchable: the server's answer for this message could not be read after "
                       f"{attempts} tries ({error}); it is still on the server",
                source_ref=f"{uidvalidity}:{uid}", exception="ProtocolError"))
        self._taken += len(page)
        more = len(uids) > len(page) and self._taken < self.config["max_per_poll"]
        return self._page_done(messages, make_cursor(uidvalidity, page[-1]), rejects, more=more,
                               to_read=min(len(uids), room))

    def _page_done(self, messages: list[RawMessage], cursor: str, rejects: list[Reject], *, more: bool,
                   to_read: int = 0) -> RawPage:
        if not more:
            self._taken = 0  # this poll is over; the next fetch starts a new one
        options = {"channel": self.name, "max_bytes": getattr(self.context, "max_message_bytes", None),
                   "max_attachment_bytes": getattr(self.context, "max_attachment_bytes", None)}
        return RawPage(payload=messages, parse=parse_messages, options=options, cursor=cursor, rejects=rejects,
                       more=more, to_read=max(to_read, len(messages)))

    def _read(self, client: IMAPClient, uidvalidity: int, uids: Sequence[int]
              ) -> tuple[list[RawMessage], tuple[int, str] | None]:
        """The messages with `uids`, oldest first, as (source_ref, bytes, size when only the first bytes
        of an oversized message were read: headers and text).

        The second value names the first message whose FETCH answer could not be read, if any.
        """
        limit = getattr(self.context, "max_message_bytes", None)
        sizes = {uid: int(data.get(_SIZE) or 0) for uid, data in client.fetch(list(uids), ["RFC822.SIZE"]).items()}
        large = [u for u in uids if u in sizes and limit is not None and sizes[u] > limit]
        small = [u for u in uids if u in sizes and u not in large]
        bodies, unreadable = self._fetch_each_if_needed(client, small, "BODY.PEEK[]")
        prefix = oversize_prefix_bytes(limit) if limit is not None else 0
        headers, unreadable_header = self._fetch_each_if_needed(client, large, f"BODY.PEEK[]<0.{prefix}>")
        if unreadable is None or (unreadable_header is not None and unreadable_header[0] < unreadable[0]):
            unreadable = unreadable_header

        messages: list[RawMessage] = []
        for uid in uids:
            # A UID missing from an answer was expunged by another client after SEARCH: nothing to keep.
            source_ref = f"{uidvalidity}:{uid}"
            if uid in bodies and bodies[uid].get(_BODY_SECTION) is not None:
                messages.append((source_ref, bytes(bodies[uid][_BODY_SECTION]), None))
            elif uid in headers and headers[uid].get(_PREFIX_SECTION) is not None:
                messages.append((source_ref, bytes(headers[uid][_PREFIX_SECTION]), sizes[uid]))
        return messages, unreadable

    def _fetch_each_if_needed(self, client: IMAPClient, uids: list[int], what: str
                              ) -> tuple[dict, tuple[int, str] | None]:
        """FETCH `uids` at once; if the answer cannot be parsed, one by one to find the message at fault."""
        if not uids:
            return {}, None
        try:
            return client.fetch(uids, [what]), None
        except IMAPClientAbortError:
            raise
        except (ProtocolError, ValueError, IndexError) as exc:
            self.log.warning("a FETCH answer from %s could not be read (%s); reading one by one",
                             self.config["host"], exc)
        found: dict = {}
        first_unreadable = None
        for uid in uids:
            try:
                found.update(client.fetch([uid], [what]))
            except IMAPClientAbortError:
                raise
            except (ProtocolError, ValueError, IndexError) as exc:
                if first_unreadable is None:
                    first_unreadable = (uid, self.redact(f"{type(exc).__name__}: {exc}")[:200])
        return found, first_unreadable

    def _parse(self, raw: bytes, source_ref: str | None) -> InboundItem:
        return parse_email(
            raw, channel=self.name, source_ref=source_ref,
            max_bytes=getattr(self.context, "max_message_bytes", None),
            max_attachment_bytes=getattr(self.context, "max_attachment_bytes", None),
        )

    def parse_raw(self, raw: bytes, source_ref: str | None = None) -> InboundItem:
        try:
            return self._parse(raw, source_ref)
        except ItemError:
            raise
        except Exception as exc:
            raise ItemError(f"the parser failed: {type(exc).__name__}: {exc}") from exc

    def _connection(self) -> IMAPClient:
        if self._client is not None:
            return self._client
        host, port, security = self.config["host"], self.config["port"], self.config["security"]
        context = ssl.create_default_context()
        client = IMAPClient(host, port=port, ssl=security == "ssl", ssl_context=context,
                            timeout=self.config["timeout"])
        try:
            if security == "starttls":
                client.starttls(context)
            client.login(self.config["username"], self.config["password"])
        except BaseException:
            _quietly(client.shutdown)
            raise
        self._client = client
        return client

    def _drop_connection(self) -> None:
        client, self._client = self._client, None
        self._taken = 0
        if client is not None:
            _quietly(client.shutdown)

    def close(self) -> None:
        client, self._client = self._client, None
        self._taken = 0
        if client is not None:
            try:
                client.logout()
            except Exception:  # the server may already have gone; the socket is closed below
                _quietly(client.shutdown)

    # Connection test ----------------------------------------------------------------------------

    def probe(self) -> ProbeResult:
        """IMAP: sign in, open `mailbox` read-only (EXAMINE, so no flag changes) and count its messages;
        then SMTP: connect, EHLO, STARTTLS and AUTH as configured, QUIT (no mail is sent). Both on
        connections of their own: the worker's IMAP connection and the cursor are not touched."""
        imap = self._probe_imap()
        if not imap.ok:
            return imap
        smtp = self._probe_smtp()
        both = Phrase(N_("{imap}; {smtp}"), {"imap": imap.phrase or imap.summary, "smtp": smtp.phrase or smtp.summary})
        return ProbeResult.of(smtp.ok, both, detail=f"{imap.detail}\n{smtp.detail}", status=smtp.status)

    def _probe_imap(self) -> ProbeResult:
        host, port, security = self.config["host"], self.config["port"], self.config["security"]
        refusal = refuse_host(self, host, port, "IMAP")
        if refusal:
            return refusal
        where, timeout, mailbox = f"IMAP {host}:{port}", probe_timeout(self), self.config["mailbox"]
        context = ssl.create_default_context()
        client: IMAPClient | None = None
        try:
            client = IMAPClient(host, port=port, ssl=security == "ssl", ssl_context=context, timeout=timeout)
            if security == "starttls":
                client.starttls(context)
            client.login(self.config["username"], self.config["password"])
            try:
                folder = client.select_folder(mailbox, readonly=True)
            except IMAPClientError as exc:
                return ProbeResult.said(False, N_("IMAP: signed in, but the folder {mailbox} cannot be opened: check "
                                                  "the mailbox setting (INBOX, or the folder's name as the server "
                                                  "shows it)"), {"mailbox": mailbox},
                                        detail=f"{where}: EXAMINE {mailbox}: {self._imap_text(exc)}")
            count = int(folder.get(b"EXISTS", 0))
            return ProbeResult.said(True, N_("IMAP: signed in, {mailbox} holds 1 message") if count == 1
                                    else N_("IMAP: signed in, {mailbox} holds {count} messages"),
                                    {"mailbox": mailbox, "count": count},
                                    detail=f"{where}: {self.redact((client.welcome or b'').decode('utf-8', 'replace'))}\n"
                                           f"EXAMINE {mailbox}: {count} EXISTS, UIDVALIDITY "
                                           f"{folder.get(b'UIDVALIDITY', '?')}")
        except LoginError as exc:
            return ProbeResult.said(False, N_("IMAP: {host} refused the sign-in of {username}: check the username "
                                              "and password (many providers want an app password)"),
                                    {"host": host, "username": self.config["username"]},
                                    detail=f"{where}: {self._imap_text(exc)}")
        except ssl.SSLCertVerificationError as exc:
            return ProbeResult.said(False, N_("IMAP: the certificate of {host} is not trusted: enter the server's "
                                              "name as its certificate has it"), {"host": host},
                                    detail=f"{where}: {self.redact(str(exc))}")
        except (TimeoutError, ssl.SSLError, IMAPClientError, OSError, EOFError) as exc:
            return ProbeResult.of(False, _no_answer("IMAP", host, port, timeout, exc),
                                  detail=f"{where}: {type(exc).__name__}: {self._imap_text(exc)}")
        finally:
            if client is not None:
                _quietly(client.logout)
                _quietly(client.shutdown)

    def _probe_smtp(self) -> ProbeResult:
        host, port, security = self.config["smtp_host"], self.config["smtp_port"], self.config["smtp_security"]
        refusal = refuse_host(self, host, port, "SMTP")
        if refusal:
            return refusal
        where, timeout, username = f"SMTP {host}:{port}", probe_timeout(self), self.config["smtp_username"]
        context = ssl.create_default_context()
        smtp: smtplib.SMTP | None = None
        try:
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context) if security == "ssl" \
                else smtplib.SMTP(host, port, timeout=timeout)
            code, text = smtp.ehlo()
            if security == "starttls":
                smtp.starttls(context=context)
                code, text = smtp.ehlo()
            said = [f"{where}: EHLO {self._smtp_text(code, text)}"]
            if not username:
                return ProbeResult.said(True, N_("SMTP: answers (no sign-in configured)"), detail="\n".join(said),
                                        status=code)
            code, text = smtp.login(username, self.config["smtp_password"] or self.config["password"])
            said.append(f"AUTH {self._smtp_text(code, text)}")
            return ProbeResult.said(True, N_("SMTP: accepted the sign-in"), detail="\n".join(said), status=code)
        except smtplib.SMTPAuthenticationError as exc:
            return ProbeResult.said(False, N_("SMTP: {host} refused the sign-in of {username} ({code}): check "
                                              "smtp_username and smtp_password"),
                                    {"host": host, "username": username, "code": exc.smtp_code},
                                    detail=f"{where}: {self._smtp_text(exc.smtp_code, exc.smtp_error)}", status=exc.smtp_code)
        except smtplib.SMTPNotSupportedError as exc:
            return ProbeResult.said(False, N_("SMTP: {host}:{port} does not offer what the settings ask ({error}): "
                                              "check smtp_security and smtp_port"),
                                    {"host": host, "port": port, "error": self.redact(str(exc))},
                                    detail=f"{where}: {self.redact(str(exc))}")
        except ssl.SSLCertVerificationError as exc:
            return ProbeResult.said(False, N_("SMTP: the certificate of {host} is not trusted: enter the server's "
                                              "name as its certificate has it"), {"host": host},
                                    detail=f"{where}: {self.redact(str(exc))}")
        except smtplib.SMTPResponseException as exc:
            return ProbeResult.said(False, N_("SMTP: {host} answered {code}: check smtp_host and smtp_port"),
                                    {"host": host, "code": exc.smtp_code},
                                    detail=f"{where}: {self._smtp_text(exc.smtp_code, exc.smtp_error)}", status=exc.smtp_code)
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            return ProbeResult.of(False, _no_answer("SMTP", host, port, timeout, exc),
                                  detail=f"{where}: {type(exc).__name__}: {self.redact(str(exc))}")
        finally:
            if smtp is not None:
                _quietly(smtp.quit)
                _quietly(smtp.close)

    def _imap_text(self, exc: BaseException) -> str:
        text = str(exc)
        if text.startswith("b'") or text.startswith('b"'):
            text = text[2:-1]
        return self.redact(text or type(exc).__name__)

    # Sending ------------------------------------------------------------------------------------

    def send(self, reply: OutboundReply) -> str:
        recipient = (reply.to.handle or "").strip()
        # Copies: Cc in the header and the envelope, Bcc in the envelope only (build_reply leaves it out).
        recipients = list(dict.fromkeys([recipient, *reply.cc, *reply.bcc]))
        for address in recipients:
            self._refuse_unsafe_recipient(address)
        # Customer-controlled words go into headers only as plain text (see _plain_header_text).
        safe = dataclasses.replace(
            reply,
            subject=_plain_header_text(reply.subject or ""),
            to=dataclasses.replace(reply.to, name=_plain_header_text(reply.to.name or "")),
        )
        try:
            message = build_reply(
                safe,
                from_address=self.config["address"],
                from_name=_plain_header_text(reply.from_name or self.config["from_name"] or ""),
                instance_id=getattr(self.context, "instance_id", "mainland"),
                domain=getattr(self.context, "mail_domain", "mainland.localhost"),
                token=self._own_token(reply.message_id),
            )
        except (ValueError, TypeError, email.errors.MessageError) as exc:
            raise PermanentError(f"the reply could not be built: {exc}") from None
        data = _safe_bytes(message)
        message_id = str(message["Message-ID"]).strip().strip("<>")
        self._deliver(recipients, data)
        return message_id

    def _refuse_unsafe_recipient(self, recipient: str) -> None:
        local, at, domain = recipient.rpartition("@")
        if not at or not local or not domain or any(c in recipient for c in "\r\n<>,; "):
            raise PermanentError(f"{recipient!r} is not an address a reply can be sent to")
        ours = {str(self.config[k]).lower() for k in ("address", "username", "smtp_username")
                if self.config.get(k) and "@" in str(self.config[k])}
        if recipient.lower() in ours:
            raise PermanentError(f"not sending to {recipient}: that is this channel's own address (a mail loop)")
        if local.lower() in NO_REPLY_LOCAL_PARTS:
            raise PermanentError(f"not sending to {recipient}: that address does not read replies "
                                 "(a reply would only bounce or loop)")

    def _own_token(self, message_id: str | None) -> str | None:
        """The conversation token in a Message-ID we generated ourselves (our mail domain), else None."""
        bare = (message_id or "").strip().strip("<>")
        domain = getattr(self.context, "mail_domain", None)
        if not bare or (domain and not bare.lower().endswith("@" + domain.lower())):
            return None
        found = tokens_in([bare], None)
        return found[0] if found else None

    def _deliver(self, recipients: list[str], data: bytes) -> None:
        host, port, security = self.config["smtp_host"], self.config["smtp_port"], self.config["smtp_security"]
        where = f"SMTP {host}:{port}"
        context = ssl.create_default_context()
        timeout = self.config["timeout"]
        smtp: _TrackedSMTP | _TrackedSMTPSSL | None = None
        refused: dict = {}
        try:
            if security == "ssl":
                smtp = _TrackedSMTPSSL(host, port, timeout=timeout, context=context)
            else:
                smtp = _TrackedSMTP(host, port, timeout=timeout)
            smtp.ehlo()
            if security == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            username = self.config["smtp_username"]
            if username:
                smtp.login(username, self.config["smtp_password"] or self.config["password"])
            # Explicit envelope recipients: whatever the headers say, the mail goes to these addresses
            # (the customer, then those in copy) and nowhere else.
            refused = smtp.sendmail(self.config["address"], recipients, data)
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentError(f"{where} refused the login: {self._smtp_text(exc.smtp_code, exc.smtp_error)}") \
                from None
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentError(f"{where}: {self.redact(str(exc))} (check smtp_security)") from None
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (450, b"recipient refused"))
            who = ", ".join(exc.recipients) or recipients[0]
            self._raise_for_code(where, code, text, f"refused the recipient {who}")
        except smtplib.SMTPResponseException as exc:  # sender refused, DATA refused, a bad greeting
            self._raise_for_code(where, exc.smtp_code, exc.smtp_error, "refused the reply")
        except ssl.SSLCertVerificationError as exc:
            raise RetryableError(f"{where}: the certificate is not trusted: {self.redact(str(exc))}") from None
        except (smtplib.SMTPException, OSError) as exc:  # refused, dropped, timed out, TLS failed
            if smtp is not None and smtp.message_started:
                # The server said "go ahead" (354) and the message went out; its answer never came.
                raise UncertainError(f"{where}: the connection ended after the message was sent, before the "
                                     f"server confirmed it ({type(exc).__name__})") from None
            raise RetryableError(f"{where}: {type(exc).__name__}: {self.redact(str(exc))}") from None
        finally:
            if smtp is not None:
                _quietly(smtp.quit)
                _quietly(smtp.close)
        if refused:
            # The server took the mail for the others: failing it now would send it to them twice.
            self.log.warning("%s accepted the reply but refused %s", where, ", ".join(sorted(refused)))

    def _raise_for_code(self, where: str, code: int, text: bytes | str, what: str) -> None:
        message = f"{where} {what}: {self._smtp_text(code, text)}"
        if 500 <= int(code) < 600:
            raise PermanentError(message) from None
        raise RetryableError(message) from None

    def _smtp_text(self, code: int, text: bytes | str) -> str:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return self.redact(f"{code} {' '.join(str(text).split())}")


def parse_messages(messages: list[RawMessage], *, channel: str, max_bytes: int | None,
                   max_attachment_bytes: int | None) -> ParsedPage:
    """A page's raw messages as items; one the parser refuses or chokes on becomes a `Reject` with the reason.

    Runs in one of the poller's parsing processes or in its own (`RawPage`): it only reads its
    arguments, so it must stay a module-level function of plain values.
    """
    parsed = ParsedPage()
    for source_ref, raw, whole_size in messages:
        try:
            if whole_size is None:
                item = parse_email(raw, channel=channel, source_ref=source_ref, max_bytes=max_bytes,
                                   max_attachment_bytes=max_attachment_bytes)
            else:
                item = parse_email_prefix(raw, whole_size, channel=channel, source_ref=source_ref,
                                          max_attachment_bytes=max_attachment_bytes)
        except Exception as exc:  # one unreadable mail must never stop the mailbox
            reason = str(exc) if isinstance(exc, ItemError) else f"the parser failed: {type(exc).__name__}: {exc}"
            parsed.rejects.append(Reject(raw=raw, reason=reason, source_ref=source_ref, exception=type(exc).__name__))
            continue
        parsed.items.append(item)
    return parsed


def _no_answer(what: str, host: str, port: int, timeout: float, exc: BaseException) -> Phrase:
    """The summary for a server that could not be reached (or spoke no TLS where TLS was asked)."""
    values = {"what": what, "host": host, "port": port, "seconds": f"{timeout:.0f}"}
    if isinstance(exc, TimeoutError):
        return Phrase(N_("{what}: {host}:{port} did not answer within {seconds} s: check the host and port"), values)
    if isinstance(exc, ssl.SSLError):
        return Phrase(N_("{what}: no TLS on {host}:{port}: check the port and security (993 ssl or 143 starttls for "
                         "IMAP; 465 ssl or 587 starttls for SMTP)"), values)
    return Phrase(N_("{what}: could not connect to {host}:{port}: check the host, port and security"), values)


def _uid_of(source_ref: str | None) -> int:
    try:
        return int((source_ref or "").rsplit(":", 1)[-1])
    except ValueError:
        return 0


def _plain_header_text(text: str) -> str:
    """`text` as literal words for a header: encoded words decoded, line breaks gone.

    The email package decodes RFC 2047 words in any value it is given, so a subject that
    *contains* `=?UTF-8?Q?...=0A...?=` would turn into a line break inside the header. Decoding
    (repeatedly: one encoded word can hide another) and flattening first leaves nothing to decode.
    """
    for _ in range(5):
        if "=?" in text:
            try:
                text = str(make_header(decode_header(text)))
            except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
                text = text.replace("=?", "= ?")  # undecodable: keep it literal
        flat = " ".join(text.split())
        if flat == text and "=?" not in flat:
            return flat
        text = flat
    return text.replace("=?", "= ?")


def _safe_bytes(message: EmailMessage) -> bytes:
    """The bytes of `message`, proven to carry exactly the headers that were set.

    Python before 3.11.10 (CVE-2024-6923) re-encodes a value such as
    `=?UTF-8?Q?Hi=0ABcc:_x@evil?=` into a real line break, which starts a new header.
    `_plain_header_text` keeps such values out; this is the last guard: if the output has other
    headers than were set, the mail is refused rather than sent with headers nobody wrote.
    """
    data = message.as_bytes(policy=email.policy.SMTP)
    parsed = email.message_from_bytes(data, policy=email.policy.compat32)
    if [k.lower() for k in parsed.keys()] != [k.lower() for k in message.keys()]:
        raise PermanentError("the reply was not sent: its subject or a name would have added mail headers")
    return data


def _quietly(action: Any) -> None:
    try:
        action()
    except (OSError, EOFError, imaplib.IMAP4.error, smtplib.SMTPException, ValueError):
        pass


class _DataPhase:
    """Notes when the server has answered DATA with 354: from then on the message is on its way, and a
    dropped connection leaves its fate unknown (RFC 5321 4.1.1.4)."""

    message_started = False
    _in_data = False

    def data(self, msg):  # type: ignore[no-untyped-def]
        self._in_data = True
        try:
            return super().data(msg)  # type: ignore[misc]
        finally:
            self._in_data = False

    def getreply(self):  # type: ignore[no-untyped-def]
        code, text = super().getreply()  # type: ignore[misc]
        if self._in_data and code == 354:
            self.message_started = True
        return code, text


class _TrackedSMTP(_DataPhase, smtplib.SMTP):
    pass


class _TrackedSMTPSSL(_DataPhase, smtplib.SMTP_SSL):
    pass
