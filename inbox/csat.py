"""Customer satisfaction (CSAT): one question after a conversation is resolved, on its own channel.

When a conversation we answered has been resolved for a little while (`delay`, so that a quick
reopen asks nothing), the worker asks the customer how we did, through the outbox like any reply:

- **email** (and web forms, answered by email): a link to a page with five score buttons and
  an optional comment. Opening the link records nothing (mail scanners open every link); only
  the button press (a POST with a CSRF token) does. The token is single-use, only its SHA-256
  is stored, and it expires (`expires`). The mail is marked `Auto-Submitted: auto-generated`.
- **chat channels**: a short numbered question. A reply that is a rating ("4", "5/5", "goed",
  "very good", "1 - too slow") is recorded as the answer instead of reopening the conversation;
  any other reply is a normal message.

At most one survey per conversation (a unique key), and never to machines (the customer's last
message is an auto-reply, bulk or a loop: `inbox.triage.may_auto_reply_flags`), spam, public posts
(a survey under a public tweet would be noise), or erased customers; and only when the rule every
reply follows allows it (inbox/sendability.py: not to a no-reply, bouncing or own address, not
after the channel's reply window closed). Scores are stored with the
conversation's channel, agent and team, and with its first-response time (for "satisfaction by
waiting time" in the reports).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

from inbox import clock, sendability, service_levels
from inbox.models import FLAG_AUTO_SUBMITTED, InboundItem
from inbox.store.base import iso, parse_iso
from inbox.triage import may_auto_reply_flags

log = logging.getLogger("mainland.csat")

DEFAULT_DELAY = dt.timedelta(minutes=10)
DEFAULT_EXPIRES = dt.timedelta(days=7)
#: Resolved conversations older than this are never surveyed (e.g. right after enabling surveys).
MAX_AGE = dt.timedelta(days=2)
MAX_COMMENT_CHARS = 2000

QUESTIONS = {
    "en": {
        "link": ("Thank you for contacting us. How did we do?\n\n"
                 "Please tell us with one click on this page (opening it counts nothing until you choose):\n"
                 "{link}\n\n"
                 "This message was sent automatically; there is no need to reply to it."),
        "chat": "How did we do? Reply with a number from 1 (bad) to 5 (very good).",
    },
    "nl": {
        "link": ("Bedankt voor uw bericht. Hoe hebben we het gedaan?\n\n"
                 "Laat het ons weten met één klik op deze pagina (openen telt nog niet mee, pas uw keuze):\n"
                 "{link}\n\n"
                 "Dit bericht is automatisch verstuurd; u hoeft er niet op te antwoorden."),
        "chat": "Hoe hebben we het gedaan? Antwoord met een cijfer van 1 (slecht) tot 5 (heel goed).",
    },
}

#: Words (English and Dutch) that answer "1 (bad) to 5 (very good)", longest phrases matched first.
RATING_WORDS = {
    1: ("heel slecht", "zeer slecht", "erg slecht", "very bad", "terrible", "awful", "vreselijk", "slecht", "bad",
        "👎"),
    2: ("niet goed", "not good", "matig", "poor", "mwah"),
    3: ("ok", "oké", "oke", "okay", "redelijk", "neutraal", "neutral", "average", "gaat wel", "so so", "so-so"),
    4: ("goed", "good", "prima", "fine", "👍"),
    5: ("heel goed", "zeer goed", "erg goed", "very good", "great", "excellent", "uitstekend", "perfect",
        "perfekt", "super", "top", "fantastisch", "fantastic", "geweldig"),
}
_PHRASES = sorted(((p, s) for s, ps in RATING_WORDS.items() for p in ps), key=lambda x: -len(x[0]))
_SEPARATOR = r"(?:\s*$|\s*[.!,:;)\-–—]+\s*(?P<rest>.*))"
_NUMBER = re.compile(r"^(?P<score>[1-5])(?:\s*(?:/\s*5|van de 5|out of 5|sterren|ster|stars?|punten))?"
                     + _SEPARATOR, re.DOTALL)


@dataclass(frozen=True)
class Rating:
    score: int
    comment: str | None


def parse_rating(text: str) -> Rating | None:
    """A rating from a chat answer, or None when the message is something else.

    Conservative on purpose: a message that merely starts with a number ("1 more question") is
    not a rating; the number or word must stand alone or be followed by punctuation.
    """
    cleaned = " ".join((text or "").split()).strip().lower()
    if not cleaned or len(cleaned) > MAX_COMMENT_CHARS:
        return None
    match = _NUMBER.match(cleaned)
    if match:
        return Rating(int(match["score"]), _comment(text, match["rest"]))
    for phrase, score in _PHRASES:
        if cleaned.startswith(phrase):
            match = re.match(_SEPARATOR, cleaned[len(phrase):], re.DOTALL)
            if match:
                return Rating(score, _comment(text, match["rest"]))
    return None


def _comment(original: str, rest: str | None) -> str | None:
    if not rest or not rest.strip():
        return None
    # The comment in the customer's own capitals: find the lower-cased tail in the original text.
    flat = " ".join(original.split())
    index = flat.lower().rfind(rest.strip())
    return (flat[index:] if index >= 0 else rest).strip()[:MAX_COMMENT_CHARS]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def settings(levels: service_levels.ServiceLevels) -> dict[str, Any]:
    """The `service_levels.csat` settings with defaults filled in."""
    raw = dict(levels.csat)
    return {
        "enabled": bool(raw.get("enabled", True)),
        "delay": service_levels.parse_duration(raw["delay"], "service_levels.csat.delay")
        if raw.get("delay") is not None else DEFAULT_DELAY,
        "expires": service_levels.parse_duration(raw["expires"], "service_levels.csat.expires")
        if raw.get("expires") is not None else DEFAULT_EXPIRES,
        "channels": {str(k): str(v) for k, v in (raw.get("channels") or {}).items()},
    }


def survey_kind(mainland: Any, channel: str, overrides: dict[str, str]) -> str | None:
    """"link" (email), "chat", or None (no surveys on this channel)."""
    choice = overrides.get(channel)
    if choice in {"off", "none", "false"}:
        return None
    if choice in {"link", "chat"}:
        return choice
    config = mainland.config.channels.get(channel)
    if config is None:
        return None
    # The connector declares it: "link" where replies go out as email, "chat" elsewhere.
    cls = mainland.registry.get(config.kind)
    return "link" if getattr(cls, "survey_style", "chat") == "link" else "chat"


def question(kind: str, locale: str | None, link: str | None = None) -> str:
    texts = QUESTIONS.get((locale or "en")[:2], QUESTIONS["en"])
    return texts[kind].format(link=link or "")


# Asking ----------------------------------------------------------------------------------------------

@dataclass
class SurveyRun:
    asked: int = 0
    skipped: int = 0
    expired: int = 0


def send_due_surveys(mainland: Any, store: Any, now: dt.datetime | None = None) -> SurveyRun:
    """Queue a survey for every conversation resolved at least `delay` ago that has none yet."""
    from inbox.outbox import ReplyRefused, queue_reply

    now = now or clock.now()
    levels = service_levels.for_config(mainland.config)
    conf = settings(levels)
    run = SurveyRun()
    with store.write():
        run.expired = store.expire_surveys(iso(now))
    if not conf["enabled"]:
        return run
    # Resolution times must be current before we pick who to ask.
    service_levels.refresh_stale(store, levels, now)
    candidates = store.survey_candidates(iso(now - conf["delay"]), iso(now - conf["delay"] - MAX_AGE))
    for row in candidates:
        kind = survey_kind(mainland, row["channel"], conf["channels"])
        reason = _refusal(store, row, kind)
        decision = None if reason else sendability.decide(mainland, store, store.conversation(row["id"]),
                                                          kind=sendability.SURVEY, now=now)
        if decision is not None and not decision.allowed:
            reason = decision.reason
        if reason or decision is None:
            log.debug("no survey for conversation %s: %s", row["id"], reason)
            run.skipped += 1
            continue
        token = secrets.token_urlsafe(24) if kind == "link" else None
        link = f"{mainland.config.base_url}/survey/{token}" if token else None
        locale = row["customer_locale"] or mainland.config.default_language
        agent_id = row["assignee_id"] or row["last_reply_agent_id"]
        try:
            with store.write():
                # The survey row first: its unique key is what makes "at most one" hold under races.
                survey_id = store.create_survey(
                    conversation_id=row["id"], channel=row["channel"], customer_id=row["customer_id"],
                    agent_id=agent_id, team_id=row["team_id"], kind=kind,
                    token_hash=hash_token(token) if token else None, message_id=None,
                    first_response_seconds=row["first_response_seconds"], asked_at=iso(now),
                    expires_at=iso(now + conf["expires"]))
                if survey_id is None:
                    continue
                queue_reply(mainland, store, row["id"], question(kind, locale, link), now=now,
                            flags=(FLAG_AUTO_SUBMITTED, service_levels.FLAG_SURVEY), target=decision.target)
        except ReplyRefused as exc:
            log.info("no survey for conversation %s: %s", row["id"], exc)
            run.skipped += 1
            continue
        run.asked += 1
    return run


def _refusal(store: Any, row: dict[str, Any], kind: str | None) -> str | None:
    """Why this conversation gets no survey, or None."""
    if kind is None:
        return "surveys are off for this channel"
    if row["automatic"] or not may_auto_reply_flags((row["flags"] or "").split()):
        return "it was started by a machine"
    if not may_auto_reply_flags((row["last_inbound_flags"] or "").split()):
        return "the customer's last message was automatic"
    if row["public"]:
        return "it is a public conversation"
    if not row["customer_handle"] or store.customer_erased(row["customer_id"]):
        return "the customer's data was erased"
    return None


# Answers -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SurveyAnswer:
    survey_id: int
    conversation_id: int
    rating: Rating


def match_answer(store: Any, channel: str, item: InboundItem, customer_id: int, conversation_id: int | None,
                 text: str, now: str) -> SurveyAnswer | None:
    """The survey a chat message answers, when it is a rating and such a survey is open."""
    if item.is_automatic:
        return None
    survey = store.open_chat_survey(channel, customer_id, [conversation_id], item.thread_key, now)
    if survey is None:
        return None
    rating = parse_rating(text)
    if rating is None:
        return None
    return SurveyAnswer(survey["id"], survey["conversation_id"], rating)


def record_answer(store: Any, answer: SurveyAnswer, message_id: int | None, now: str) -> bool:
    return store.answer_survey(answer.survey_id, answer.rating.score, answer.rating.comment, now, message_id)


def answer_by_token(store: Any, token: str, score: int, comment: str | None,
                    now: dt.datetime | None = None) -> bool:
    """Record an answer from the survey page; False for an unknown, used or expired token."""
    if not 1 <= score <= 5:
        raise ValueError("a score is 1 to 5")
    survey = store.survey_by_token_hash(hash_token(token))
    if survey is None:
        return False
    comment = (comment or "").strip()[:MAX_COMMENT_CHARS] or None
    with store.write():
        return store.answer_survey(survey["id"], score, comment, iso(now or clock.now()))


def open_survey(store: Any, token: str, now: dt.datetime | None = None) -> dict[str, Any] | None:
    """The survey behind a link if it can still be answered, else None."""
    survey = store.survey_by_token_hash(hash_token(token))
    if survey is None or survey["state"] != "asked":
        return None
    if parse_iso(survey["expires_at"]) <= (now or clock.now()):
        return None
    return survey
