"""Notifications beyond the bell: per-agent settings, "customer replied", browser texts and batched email.

Events and media (docs/notifications.md): for each event an agent can be told of (a conversation is
assigned to them, they are mentioned, the customer replies in their conversation, their conversation
or for leads their team's is about to pass the adequate time) and each medium (in the app, a
browser notification, email) the agent chooses on the settings page; `inbox.store.notifications`
holds the defaults. An event switched off in-app is still recorded, hidden from the bell and the
notifications page, so that email or the browser can still carry it.

The worker's `notifications` job (`run`, under the scheduler lease) does three things:

- *customer replied*: every message stored since its watermark that is a customer's (not the first
  of its conversation, not an auto-reply, bounce, bulk mail or survey answer) in a conversation
  with an assignee notifies that assignee, one notification per conversation per run;
- *service levels*: a warning or breach announced to the leads (inbox/service_levels.py) is also
  told to the conversation's assignee, unless they are one of those leads;
- *email*: notifications waiting for a mail are batched per agent. A batch goes out once the oldest
  waiting notification is `notifications.email_every` old (5 minutes by default), listing every
  waiting one, so an agent gets at most one mail per `email_every`; notifications read in the app
  before then, and those of events switched off for email since, are left out (no mail if none is
  left). The mail is queued in the same transaction that marks the notifications mailed, then sent
  from `notification_emails`, the notification mails' outbox: retried on SMTP trouble, never
  queued twice, one whose sender died sent again with the same Message-ID.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
import logging
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Any

from babel.support import Translations

from inbox import clock
from inbox.store import notifications as prefs
from inbox.store.base import iso
from inbox.store.notifications import (
    DEFAULTS,
    EVENTS,
    KIND_EVENTS,
    MEDIA,
    CustomerReply,
    NewestNotification,
    NotificationEmail,
    PendingEmailNotification,
    resolve_settings,
    wants,
)
from inbox.triage import LOOP_HEADER

__all__ = ["DEFAULTS", "EVENTS", "KIND_EVENTS", "MEDIA", "resolve_settings", "wants", "run", "settings_for",
           "check_config", "browser_payload", "translations", "send_due_emails", "queue_due_emails", "detect"]

log = logging.getLogger("mainland.notifications")

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
DEFAULT_EMAIL_EVERY = dt.timedelta(minutes=5)
LEASE_SECONDS = 120
MAX_ATTEMPTS = 10
_KNOWN = {"email_every"}


def N_(text: str) -> str:  # noqa: N802 - the gettext marker: extracted, translated later per agent
    return text


#: What a browser notification and a mail line say, per kind (formatted with actor, customer, subject).
KIND_TEXTS = {
    "assigned": N_("%(actor)s assigned a conversation to you: %(subject)s"),
    "mention": N_("%(actor)s mentioned you: %(subject)s"),
    "customer_replied": N_("%(customer)s replied: %(subject)s"),
    "sla_warning": N_("Soon past the adequate time: %(subject)s"),
    "sla_breach": N_("Past the adequate time: %(subject)s"),
    "review_returned": N_("%(actor)s returned your reply with a comment: %(subject)s"),
    "routing_moved": N_("A conversation of yours was passed on: %(subject)s"),
    "rule": N_("An automation rule asks you to look at: %(subject)s"),
}
#: The settings page: one row per event, one column per medium.
EVENT_LABELS = {
    "assigned": N_("A conversation is assigned to me"),
    "mention": N_("Someone mentions me in a note"),
    "customer_replied": N_("The customer replies in a conversation assigned to me"),
    "sla": N_("My conversation (leads: my team's) is about to pass or passed the adequate time"),
}
MEDIUM_LABELS = {"in_app": N_("In the app"), "browser": N_("Browser"), "email": N_("Email")}


# Settings ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NotificationSettings:
    email_every: dt.timedelta = DEFAULT_EMAIL_EVERY


def check_config(data: Mapping[str, Any] | None) -> list[str]:
    """Problems in the `notifications:` section (empty: fine)."""
    from inbox.service_levels import PolicyError, parse_duration

    if data is None:
        return []
    if not isinstance(data, Mapping):
        return ["notifications: must be a mapping (email_every)"]
    problems = [f"notifications.{key}: unknown key (known: {', '.join(sorted(_KNOWN))})" for key in set(data) - _KNOWN]
    if data.get("email_every") is not None:
        try:
            parse_duration(data["email_every"], "notifications.email_every")
        except PolicyError as exc:
            problems.append(str(exc))
    return problems


def settings_for(config: Any) -> NotificationSettings:
    from inbox.service_levels import parse_duration

    data = (getattr(config, "extra", None) or {}).get("notifications") or {}
    every = data.get("email_every")
    return NotificationSettings(
        email_every=parse_duration(every, "notifications.email_every") if every is not None else DEFAULT_EMAIL_EVERY)


def settings_from_form(form: Mapping[str, Any]) -> dict[str, dict[str, bool]]:
    """The settings page's checkboxes (`<event>.<medium>`, present when ticked) as settings."""
    return {event: {medium: f"{event}.{medium}" in form for medium in MEDIA} for event in EVENTS}


# Texts -----------------------------------------------------------------------------------------------

def _translations(locale: str | None) -> Translations:
    return Translations.load(str(TRANSLATIONS), [locale or "en"])


def translations(locale: str | None) -> Translations:
    """The app's messages in `locale`, for texts made outside a request (the live stream, mails)."""
    return _translations(locale)


def describe(row: NewestNotification | PendingEmailNotification, translations: Translations) -> str:
    """One line for a notification: who did what, in which conversation."""
    gettext = translations.gettext
    subject = row.subject or gettext("(no subject)")
    template = KIND_TEXTS.get(row.kind)
    if template is None:
        return subject
    return gettext(template) % {
        "actor": row.actor_name or row.actor_email or gettext("Someone"),
        "customer": row.customer_name or gettext("The customer"),
        "subject": subject,
    }


def conversation_path(row: NewestNotification | PendingEmailNotification) -> str:
    anchor = f"#message-{row.message_id}" if row.message_id else ""
    return f"/conversations/{row.conversation_id}{anchor}"


def browser_payload(store: Any, agent: Mapping[str, Any], team_ids: Any, locale: str | None,
                    after_id: int) -> dict[str, Any] | None:
    """What a browser notification shows for the agent's newest notification, if it is newer than
    `after_id`, of a kind they want in the browser, in a conversation they may see; else None."""
    row = store.notifications.newest(agent["id"])
    if row is None or row.id <= after_id or row.read_at:
        return None
    if team_ids is not None and row.team_id is not None and row.team_id not in team_ids:
        return None
    if not wants(store.notifications.settings(agent["id"]), row.kind, "browser"):
        return None
    return {"id": row.id, "kind": row.kind, "text": describe(row, _translations(locale))[:200],
            "url": conversation_path(row)}


# Detecting -------------------------------------------------------------------------------------------

def detect(store: Any, now: dt.datetime | None = None) -> int:
    """Notify assignees of customer replies and of their conversations' service-level notices since
    the watermarks. One transaction: each message and notice is handled once. Returns how many."""
    now_text = iso(now or clock.now())
    made = 0
    with store.write():
        mark, rows = store.notifications.customer_replies_since_mark()
        replied: dict[int, CustomerReply] = {}
        for row in rows:
            flags = set((row.flags or "").split())
            if (row.direction == "in" and row.assignee_id is not None and row.has_earlier
                    and not flags & set(prefs.QUIET_FLAGS)):
                replied[row.conversation_id] = row  # the newest reply per conversation
        for row in replied.values():
            made += store.notifications.add([row.assignee_id], kind="customer_replied",
                                            conversation_id=row.conversation_id, message_id=row.id,
                                            actor_id=None, now=now_text)
        if rows:
            store.notifications.move_mark("customer_replied", rows[-1].id)
        mark, notices = store.notifications.sla_notices_since_mark()
        for notice in notices:
            assignee = notice.assignee_id
            if assignee is not None and assignee not in store.leads_for_team(notice.team_id):
                made += store.notifications.add([assignee], kind=f"sla_{notice.kind}",
                                                conversation_id=notice.conversation_id, message_id=None,
                                                actor_id=None, now=now_text)
        if notices:
            store.notifications.move_mark("sla_assignee", notices[-1].id)
    return made


# Email -----------------------------------------------------------------------------------------------

def _mail_text(rows: list[PendingEmailNotification], translations: Translations, base_url: str) -> str:
    gettext = translations.gettext
    lines = [gettext("New in Mainland since the last mail:"), ""]
    for row in rows:
        lines.append(f"- {describe(row, translations)}")
        lines.append(f"  {base_url}{conversation_path(row)}")
    lines += ["", gettext("Choose what Mainland mails you: %(url)s") % {"url": f"{base_url}/settings#notifications"}]
    return "\n".join(lines) + "\n"


def queue_due_emails(mainland: Any, store: Any, now: dt.datetime | None = None) -> int:
    """Queue one batch mail per agent whose oldest waiting notification is `email_every` old."""
    now = now or clock.now()
    every = settings_for(mainland.config).email_every
    default_locale = mainland.config.default_language
    queued = 0
    for agent_id in store.notifications.agents_with_pending_email(iso(now - every)):
        with store.write():
            rows = store.notifications.pending_email(agent_id)
            agent = store.agent(agent_id)
            settings = store.notifications.settings(agent_id)
            mail = [r for r in rows if r.read_at is None and wants(settings, r.kind, "email")]
            if agent is None or not agent["active"] or not agent["email"]:
                mail = []
            mailed = {r.id for r in mail}
            skipped = [r.id for r in rows if r.id not in mailed]
            subject = text = message_id = ""
            if mail:
                locale = agent["locale"] or default_locale
                translations = _translations(locale)
                subject = translations.ngettext("%(num)d new notification in Mainland",
                                                "%(num)d new notifications in Mainland", len(mail)) % {"num": len(mail)}
                text = _mail_text(mail, translations, mainland.config.base_url)
                message_id = make_msgid(idstring=f"notifications.{agent_id}", domain=mainland.config.mail_domain)
            email_id = store.notifications.queue_email(
                agent_id=agent_id, to_address=agent["email"] if agent else "", subject=subject, text=text,
                message_id=message_id, notification_ids=[r.id for r in mail], skipped_ids=skipped, now=iso(now))
            queued += email_id is not None
    return queued


def _message(row: NotificationEmail, smtp: Mapping[str, Any], instance_id: str) -> EmailMessage:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = formataddr((smtp["from_name"], smtp["from_address"]))
    msg["To"] = row.to_address
    msg["Subject"] = row.subject
    msg["Date"] = email.utils.format_datetime(clock.now())
    msg["Message-ID"] = row.message_id
    # RFC 3834: a notice, not a conversation; the loop header keeps an agent's auto-reply out of the inbox.
    msg["Auto-Submitted"] = "auto-generated"
    msg[LOOP_HEADER] = instance_id
    msg.set_content(row.text)
    return msg


def send_due_emails(mainland: Any, store: Any, now: dt.datetime | None = None) -> int:
    """Send the queued notification mails that are due; returns how many went out."""
    from inbox.digest import DigestError, smtp_settings

    now = now or clock.now()
    with store.write():
        rows = store.notifications.claim_emails(iso(now), iso(now + dt.timedelta(seconds=LEASE_SECONDS)))
    if not rows:
        return 0
    problem = ""
    try:
        smtp = smtp_settings(mainland)
    except DigestError as exc:
        smtp, problem = None, str(exc)
    sent = 0
    for row in rows:
        error = problem if smtp is None else None
        permanent = False
        if smtp is not None:
            try:
                _send(smtp, row.to_address, _message(row, smtp, mainland.config.instance_id))
            except smtplib.SMTPResponseException as exc:
                error, permanent = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", 500 <= exc.smtp_code < 600
            except (smtplib.SMTPException, OSError) as exc:
                error = f"SMTP {smtp['host']}:{smtp['port']}: {exc}"
        with store.write():
            if error is None:
                store.notifications.mark_email(row.id, "sent", iso(clock.now()))
                sent += 1
            elif permanent or row.attempts >= MAX_ATTEMPTS:
                store.notifications.mark_email(row.id, "failed", iso(now), error=error[:500])
                log.warning("notification mail %s to agent %s failed: %s", row.id, row.agent_id, error)
            else:
                retry_at = now + dt.timedelta(seconds=min(3600, 30 * 2 ** (row.attempts - 1)))
                store.notifications.mark_email(row.id, "retry_wait", iso(now), next_at=iso(retry_at),
                                               error=error[:500])
    return sent


def _send(smtp: Mapping[str, Any], to_address: str, message: EmailMessage) -> None:
    from inbox.digest import smtp_session

    with smtp_session(smtp) as server:
        server.sendmail(smtp["from_address"], [to_address], message.as_bytes())


@dataclass
class NotificationRun:
    notified: int = 0
    queued: int = 0
    sent: int = 0


def run(mainland: Any, store: Any, now: dt.datetime | None = None) -> NotificationRun:
    """The worker's job: detect customer replies and notices, queue due batches, send queued mails."""
    now = now or clock.now()
    result = NotificationRun()
    result.notified = detect(store, now)
    result.queued = queue_due_emails(mainland, store, now)
    result.sent = send_due_emails(mainland, store, now)
    return result
