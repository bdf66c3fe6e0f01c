"""The triage flow (#14): machines sort the noise, people judge the grey area and teach the machine.

Every inbound item, on every channel, gets a verdict when it is stored (inbox/ingest.py): `clean`,
`suspicious` or `spam`, with the model's probability and version and the reason, stored on the
message (m025) beside the automatic flags of inbox/triage.py. Rules come before the model:

1. a blocked sender address, mail domain or network handle (`spam_blocks`) is spam;
2. the classifier (`inbox.spam_model`, written separately and imported lazily: while it is missing
   every item is clean, so the inbox keeps working) gives a probability; an upstream filter's
   verdict (X-Spam-Flag, X-Spam-Status, X-Rspamd-*) counts only on a channel that declares a trusted
   mail server (`trust_spam_headers: true`);
3. at or above the channel's `spam_threshold` (or flagged upstream) it is spam, at or above
   `clean_threshold` suspicious, below it clean;
4. a known customer (a conversation with us that was not spam) is never spam by words alone: at most
   suspicious.

A spam item that starts a conversation leaves it in status `spam` (no clock, no survey, no
acknowledgement: inbox/service_levels.py, inbox/sendability.py), kept `triage.keep_spam_days` and then
deleted by the worker's housekeeping. A suspicious one is held the same way, marked `triage_hold`,
and waits in /review/triage; a person's decision (`decide`) puts it in the queue with its clock counted
from its arrival, or leaves it spam, and teaches the model. A share (`triage.audit_share`) of the
machine's own decisions goes to the same list as samples, from which the reports measure the
machine's precision and recall per channel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import importlib
import logging
import random
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inbox import clock
from inbox.identity import canonical_kind, normalize_identity
from inbox.models import Author, InboundItem
from inbox.store.base import iso
from inbox.store.triage import TriageReviewWithConversation

log = logging.getLogger("mainland.triage_flow")

CLEAN, SUSPICIOUS, SPAM = "clean", "suspicious", "spam"
VERDICTS = (CLEAN, SUSPICIOUS, SPAM)
#: A person's decision in /review/triage.
CUSTOMER = "customer"

#: The model's own thresholds (inbox/spam_model.py, chosen with bench/triage.py): at 0.9/0.5 the
#: bench called 0.78% of real customers' mail spam after learning, at 0.999/0.10 0.23%.
DEFAULT_SPAM_THRESHOLD = 0.999
DEFAULT_CLEAN_THRESHOLD = 0.10
DEFAULT_KEEP_SPAM_DAYS = 30
DEFAULT_AUDIT_SHARE = 0.02
#: Earlier conversations of the sender counted for the verdict: the model reads no further
#: (inbox/spam_model.py's MAX_PRIOR_CONVERSATIONS), and a count without end grows with every message
#: of a mailing list or a regular customer.
PRIOR_CONVERSATIONS_COUNTED = 10

#: Why an item got its verdict (stored in `messages.spam_reason`; shown translated in the review list).
REASON_BLOCKED = "blocked"
REASON_UPSTREAM = "upstream"
REASON_MODEL = "model"
REASON_KNOWN_CUSTOMER = "known_customer"
REASON_NO_MODEL = "no_model"
REASON_PERSON = "person"

_LINK = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_HREF = re.compile(r"<a\s[^>]*href\s*=", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    probability: float | None
    model_version: int | None
    reason: str


@dataclass(frozen=True)
class ChannelRules:
    """A channel's triage settings, read from its settings by name whatever its kind."""

    spam_threshold: float = DEFAULT_SPAM_THRESHOLD
    clean_threshold: float = DEFAULT_CLEAN_THRESHOLD
    trust_spam_headers: bool = False


def channel_rules(settings: Mapping[str, Any] | None) -> ChannelRules:
    settings = settings or {}
    return ChannelRules(
        spam_threshold=float(settings.get("spam_threshold", DEFAULT_SPAM_THRESHOLD)),
        clean_threshold=float(settings.get("clean_threshold", DEFAULT_CLEAN_THRESHOLD)),
        trust_spam_headers=settings.get("trust_spam_headers") is True,
    )


@dataclass(frozen=True)
class Settings:
    """The `triage:` section of the configuration."""

    keep_spam_days: int = DEFAULT_KEEP_SPAM_DAYS
    audit_share: float = DEFAULT_AUDIT_SHARE


def settings_for(config: Any) -> Settings:
    section = (getattr(config, "extra", None) or {}).get("triage") or {}
    return Settings(keep_spam_days=int(section.get("keep_spam_days", DEFAULT_KEEP_SPAM_DAYS)),
                    audit_share=float(section.get("audit_share", DEFAULT_AUDIT_SHARE)))


def check_config(section: Any, channels: Mapping[str, Any]) -> list[str]:
    """Problems in the `triage:` section and in the channels' triage settings, each with its key path."""
    problems: list[str] = []
    if section is not None and not isinstance(section, Mapping):
        return ["triage: must be a mapping (keep_spam_days, audit_share)"]
    section = section or {}
    keep = section.get("keep_spam_days", DEFAULT_KEEP_SPAM_DAYS)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        problems.append(f"triage.keep_spam_days: must be a whole number of days, at least 1 (got {keep!r})")
    share = section.get("audit_share", DEFAULT_AUDIT_SHARE)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        problems.append(f"triage.audit_share: must be a share from 0 to 1, e.g. 0.02 (got {share!r})")
    for name, channel in channels.items():
        for key in ("spam_threshold", "clean_threshold"):
            value = channel.settings.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or not 0 <= value <= 1):
                problems.append(f"channels.{name}.{key}: must be a probability from 0 to 1 (got {value!r})")
        rules = channel.settings
        if isinstance(rules.get("spam_threshold"), int | float) and isinstance(rules.get("clean_threshold"),
                                                                              int | float) \
                and rules["clean_threshold"] > rules["spam_threshold"]:
            problems.append(f"channels.{name}.clean_threshold: must not be above spam_threshold")
    return problems


# The model ------------------------------------------------------------------------------------------

#: Per process and data folder: (when it was opened, the model). It is opened again after
#: MODEL_REFRESH, so that a worker sees what people taught it in the web process (the model keeps its
#: versions in the data folder).
_models: dict[tuple[int, str], tuple[float, Any]] = {}
MODEL_REFRESH = dt.timedelta(minutes=1)


def model_module() -> Any | None:
    """`inbox.spam_model`, or None while it is not installed (every item is then clean)."""
    try:
        return importlib.import_module("inbox.spam_model")
    except ModuleNotFoundError as exc:
        if exc.name not in {"inbox.spam_model"}:
            raise
        return None


def load_model(data_dir: Path, *, now: Callable[[], dt.datetime] = clock.now) -> Any | None:
    """The installation's spam model, or None without the module."""
    module = model_module()
    if module is None:
        return None
    key = (id(module), str(data_dir))
    moment = time.monotonic()
    opened = _models.get(key)
    if opened is None or moment - opened[0] > MODEL_REFRESH.total_seconds():
        opened = _models[key] = (moment, module.open_model(Path(data_dir), now=now))
    return opened[1]


def model_for(mainland: Any) -> Any | None:
    return load_model(mainland.config.data_dir)


def model_trained(data_dir: Path) -> bool:
    """Whether the installation has a spam model to judge with (a base model, or people's decisions):
    the pointer file `inbox.spam_model` keeps beside its versions (`<data_dir>/triage/current.json`)."""
    return (Path(data_dir) / "triage" / "current.json").exists()


def judging_model_for(mainland: Any) -> Any | None:
    """The model to judge items with; None while none was trained and the model module is not loaded.

    Importing the model module (scikit-learn, SciPy) costs 1-1.5 s of CPU and about 70 MB in each
    process that ingests; with nothing trained every item would be judged "no model" anyway, so an
    import or a poll before `mainland triage train-base` does not pay for it (bench/ingest.py, #16).
    A model trained later (by another process too) is found by the same look, on the next batch."""
    data_dir = mainland.config.data_dir
    if "inbox.spam_model" not in sys.modules and not model_trained(data_dir):
        return None
    return load_model(data_dir)


def _as_item_facts(module: Any, facts: Mapping[str, Any]) -> Any:
    """The model's `ItemFacts` from our mapping (fields it does not know are left out)."""
    known = {f.name for f in dataclasses.fields(module.ItemFacts)}
    return module.ItemFacts(**{k: v for k, v in facts.items() if k in known})


def learn(model: Any | None, facts: Mapping[str, Any] | None, is_spam: bool) -> None:
    """Teach the model a person's verdict on the facts it was shown."""
    module = model_module()
    if model is None or module is None or not facts:
        return
    model.learn(_as_item_facts(module, facts), is_spam)


# Facts ------------------------------------------------------------------------------------------------

def count_links(text: str, html: str | None) -> int:
    return max(len(_LINK.findall(text or "")), len(_HREF.findall(html or "")))


def upstream_spam(headers: Mapping[str, str]) -> bool | None:
    """What an upstream filter said in the headers (keys lower-case), or None when it said nothing."""
    flag = headers.get("x-spam-flag")
    if flag is not None:
        return flag.strip().lower() == "yes"
    status = headers.get("x-spam-status")
    if status is not None:
        return status.strip().lower().startswith("yes")
    action = headers.get("x-rspamd-action")
    if action is not None:
        return action.strip().lower() in {"reject", "add header", "rewrite subject"}
    spam = headers.get("x-rspamd-spam")
    if spam is not None:
        return spam.strip().lower() in {"yes", "true", "1"}
    return None


def item_facts(channel: str, item: InboundItem, text: str, *, prior_conversations: int,
               rules: ChannelRules) -> dict[str, Any]:
    """The `ItemFacts` fields of an item, as a plain mapping (stored with a review, to teach later)."""
    return {
        "channel": channel,
        "text": text,
        "subject": item.subject,
        "sender": item.author.handle,
        "html": item.html is not None,
        "links": count_links(text, item.html),
        "language": (item.headers.get("content-language") or "").split(",")[0].strip()[:10] or None,
        "known_customer": prior_conversations > 0,
        "prior_conversations": prior_conversations,
        "upstream_spam": upstream_spam(item.headers) if rules.trust_spam_headers else None,
    }


def stored_facts(store: Any, conversation_id: int, rules: ChannelRules) -> dict[str, Any] | None:
    """The facts of a conversation's first stored customer message (for one that never waited in triage)."""
    import json

    row = store.triage.first_inbound_message(conversation_id)
    if row is None:
        return None
    headers = json.loads(row.headers or "{}")
    item = InboundItem(channel=row.channel, external_id="", author=Author(row.author_handle or ""),
                       text=row.text or "", html=row.html, subject=row.subject or None, headers=headers)
    prior = store.triage.earlier_clean_conversations(row.customer_id, besides=conversation_id,
                                                     at_most=PRIOR_CONVERSATIONS_COUNTED)
    return item_facts(row.channel, item, row.text or "", prior_conversations=prior, rules=rules)


# The verdict ------------------------------------------------------------------------------------------

def sample_draw() -> float:
    """A number in [0, 1) that decides whether an item is an audit sample (tests fix it: tests/conftest.py)."""
    return random.random()


class TriageFlow:
    """Judges items for the ingest pipeline. `model` is called once per batch (it may load lazily)."""

    def __init__(self, *, model: Callable[[], Any | None] = lambda: None,
                 rules_for: Callable[[str], ChannelRules] = lambda channel: ChannelRules(),
                 audit_share: float = 0.0, draw: Callable[[], float] = random.random) -> None:
        self.model = model
        self.rules_for = rules_for
        self.audit_share = audit_share
        self.draw = draw
        self._held: tuple[Any | None] | None = None

    @classmethod
    def for_mainland(cls, mainland: Any) -> TriageFlow:
        channels = mainland.config.channels
        return cls(model=lambda: judging_model_for(mainland),
                   rules_for=lambda name: channel_rules(channels[name].settings if name in channels else None),
                   audit_share=settings_for(mainland.config).audit_share, draw=lambda: sample_draw())

    def judge(self, store: Any, channel: str, item: InboundItem, text: str, customer_id: int,
              conversation_id: int | None, *, region: str | None = None) -> tuple[Verdict, dict[str, Any]]:
        """The verdict on one item about to be stored, and the facts the model was shown."""
        rules = self.rules_for(channel)
        prior = store.triage.earlier_clean_conversations(customer_id, besides=conversation_id,
                                                         at_most=PRIOR_CONVERSATIONS_COUNTED)
        facts = item_facts(channel, item, text, prior_conversations=prior, rules=rules)
        kind = canonical_kind(item.author.identity_kind)
        blocks = store.triage.blocks_matching(kind, normalize_identity(kind, item.author.handle, region))
        if blocks:
            return Verdict(SPAM, 1.0, None, REASON_BLOCKED), facts
        return self._verdict(facts, rules), facts

    def _verdict(self, facts: dict[str, Any], rules: ChannelRules) -> Verdict:
        model = self._held[0] if self._held is not None else self._model()
        probability = version = None
        if model is not None and getattr(model, "ready", True):
            try:
                probability, version = self._judgement(model, facts)
            except Exception:
                # A model fault must never cost a message: the item is judged on the rules alone.
                log.exception("the spam model failed on an item of %s", facts["channel"])
        if facts["upstream_spam"]:
            verdict, reason = SPAM, REASON_UPSTREAM
        elif probability is None:
            verdict, reason = CLEAN, REASON_NO_MODEL
        elif probability >= rules.spam_threshold:
            verdict, reason = SPAM, REASON_MODEL
        elif probability >= rules.clean_threshold:
            verdict, reason = SUSPICIOUS, REASON_MODEL
        else:
            verdict, reason = CLEAN, REASON_MODEL
        if verdict == SPAM and facts["known_customer"]:
            verdict, reason = SUSPICIOUS, REASON_KNOWN_CUSTOMER
        return Verdict(verdict, probability, version, reason)

    @contextlib.contextmanager
    def model_opened(self) -> Iterator[None]:
        """Open the model before a write transaction and judge with that one inside it: the first time in
        a process opening it imports scikit-learn and reads the model files (seconds), and so may a
        refresh; neither may hold the database's write lock (bench/load.py found a first poll holding it
        for 3-7 s)."""
        self._held = (self._model(),)
        try:
            yield
        finally:
            self._held = None

    def _model(self) -> Any | None:
        try:
            return self.model()
        except Exception:
            log.exception("the spam model cannot be opened; items are judged on the rules alone")
            return None

    @staticmethod
    def _judgement(model: Any, facts: dict[str, Any]) -> tuple[float, int | None]:
        """The probability and the model version that gave it (one version, even while another process
        learns, when the model can say so)."""
        module = model_module()
        if module is None:
            raise RuntimeError("inbox.spam_model is not installed")
        item_facts = _as_item_facts(module, facts)
        if hasattr(model, "judge"):
            judgement = model.judge(item_facts)
            return float(judgement.probability), judgement.version
        return float(model.spam_probability(item_facts)), getattr(model, "version", None)

    def wants_sample(self) -> bool:
        """Whether this machine-decided item goes to the review list anyway, as an audit sample."""
        return self.audit_share > 0 and self.draw() < self.audit_share


# People's decisions -----------------------------------------------------------------------------------

class TriageError(Exception):
    """A decision that cannot be taken (already decided, unknown verdict)."""


def decide(store: Any, model: Any | None, review_id: int, verdict: str, *, agent: Mapping[str, Any],
           now: dt.datetime | None = None) -> TriageReviewWithConversation:
    """A person's verdict on an item in /review/triage: `customer` or `spam`. Teaches the model,
    moves the conversation (into the queue, or into spam) and writes the audit log."""
    if verdict not in (CUSTOMER, SPAM):
        raise TriageError("unknown verdict")
    now = now or clock.now()
    with store.write():
        review = store.triage.review(review_id)
        if review is None or not store.triage.decide_review(review_id, verdict=verdict, agent_id=agent["id"],
                                                            now=iso(now)):
            raise TriageError("already decided")
        _apply(store, review.conversation_id, is_spam=verdict == SPAM, now=now)
        store.audit(iso(now), f"agent:{agent['id']}", "triage_decided", "conversation", review.conversation_id,
                    review=review_id, kind=review.kind, before=review.machine_verdict, after=verdict,
                    probability=review.probability, model_version=review.model_version)
    learn(model, _facts(review), verdict == SPAM)
    return review


def mark_conversation(store: Any, model: Any | None, conversation_id: int, *, is_spam: bool,
                      agent: Mapping[str, Any], now: dt.datetime | None = None,
                      rules: ChannelRules | None = None) -> None:
    """A person marked a conversation spam, or took it out of spam, on its page: teach the model the
    facts of its first item, close any review waiting on it, and audit the verdict. `rules`: the
    channel's (whether its spam headers count)."""
    now = now or clock.now()
    with store.write():
        facts = store.triage.first_inbound_facts(conversation_id) or stored_facts(store, conversation_id,
                                                                                   rules or ChannelRules())
        for review in store.triage.open_reviews(conversation_id):
            store.triage.decide_review(review.id, verdict=SPAM if is_spam else CUSTOMER, agent_id=agent["id"],
                                       now=iso(now))
        store.triage.end_hold(conversation_id)
        if not is_spam:
            store.triage.forget_machine_spam(conversation_id)
        store.triage.set_message_verdict(conversation_id, SPAM if is_spam else CLEAN, REASON_PERSON)
        store.audit(iso(now), f"agent:{agent['id']}", "triage_marked", "conversation", conversation_id,
                    after=SPAM if is_spam else CUSTOMER)
    learn(model, facts, is_spam)


def _apply(store: Any, conversation_id: int, *, is_spam: bool, now: dt.datetime) -> None:
    if is_spam:
        store.triage.end_hold(conversation_id)
        if _status(store, conversation_id) != SPAM:
            store.set_conversation_status(conversation_id, SPAM, None, iso(now))
        store.triage.set_message_verdict(conversation_id, SPAM, REASON_PERSON)
    else:
        store.triage.release(conversation_id, iso(now))
        store.triage.set_message_verdict(conversation_id, CLEAN, REASON_PERSON)


def _status(store: Any, conversation_id: int) -> str | None:
    conversation = store.conversation(conversation_id)
    return conversation["status"] if conversation else None


def _facts(review: TriageReviewWithConversation) -> dict[str, Any] | None:
    import json

    return json.loads(review.facts) if review.facts else None


# Upkeep ---------------------------------------------------------------------------------------------------

def delete_old_spam(store: Any, attachments: Any, keep_days: int, now: dt.datetime | None = None) -> int:
    """Delete spam conversations kept longer than `keep_days` (the worker's housekeeping). Returns how many."""
    now = now or clock.now()
    cutoff = iso(now - dt.timedelta(days=keep_days))
    deleted = 0
    while True:
        with store.write():
            ids = store.triage.old_spam_conversations(cutoff)
            if not ids:
                break
            hashes = store.triage.delete_conversations(ids)
            store.audit(iso(now), "system", "spam_deleted", "conversation", None, conversations=ids,
                        keep_spam_days=keep_days)
        for digest in set(hashes) - store.attachment_hashes_in_use(hashes):
            attachments.delete(digest)
        deleted += len(ids)
    return deleted
