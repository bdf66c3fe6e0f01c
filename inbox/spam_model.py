"""The spam model: machines sort the noise, people judge the grey area and teach the machine (#14).

One linear model judges every inbound item, whatever its channel, from `ItemFacts`: the words and
character n-grams of its subject and text (scikit-learn's `HashingVectorizer`: no fitted vocabulary,
so a decision can be learnt at any time without refitting), plus a few facts of the item and its
customer (links, HTML, a known customer, earlier conversations, a trusted mail server's verdict, the
channel and language as tokens). The classifier is a multinomial naive Bayes (`MultinomialNB`)
trained with `partial_fit`: learning adds counts, so every human decision moves the model at once
(`SpamModel.learn`) and by the same amount whenever it comes, weighing `HUMAN_WEIGHT` times a base
example. (bench/triage.py compared it with `SGDClassifier(loss="log_loss")`: as good on the base data,
but one-at-a-time SGD steps swung the whole model with each decision, docs/triage.md.)

The base data (mail) knows nothing of customers, so what a customer's history says is added as fixed
log-odds on top of the learnt ones (`FACT_LOG_ODDS`): a known customer and earlier conversations make
spam less likely, a trusted mail server's verdict moves it its way.

`spam_probability` is read against two thresholds (`verdict`): at or above `SPAM_THRESHOLD` the item
is spam, at or below `CLEAN_THRESHOLD` it is clean, between them it is suspicious and goes to a
person. An installation without any model (nothing trained yet) answers `NEUTRAL_PROBABILITY`,
"suspicious", for everything: it never calls mail spam before `mainland triage train-base` has run.

Persistence, in `data_dir/triage/`: each version is one file `model-<version>.npz` (numpy arrays: the
learnt counts, and the version's record as JSON), written to a temporary file, fsynced and renamed
into place, then `current.json` (the version in use) the same way; the last `KEEP_VERSIONS` versions
are kept for `rollback`. They are read with `allow_pickle=False`: no pickle is ever written or
loaded, so a model file cannot run code, and only files Mainland wrote itself into its own data_dir
are read. Several processes (web app, worker) may share one data_dir: a learner takes an exclusive
lock and starts from the newest version on disk, and readers reload when `current.json` changes.
"""

from __future__ import annotations

import contextlib
import email.utils
import fcntl
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.naive_bayes import MultinomialNB

import inbox.clock

__all__ = [
    "CLEAN_THRESHOLD",
    "FACT_LOG_ODDS",
    "HUMAN_WEIGHT",
    "KEEP_VERSIONS",
    "NEUTRAL_PROBABILITY",
    "SPAM_THRESHOLD",
    "ItemFacts",
    "Judgement",
    "ModelVersion",
    "SpamModel",
    "facts_from_email",
    "facts_from_text",
    "open_model",
    "train_base_model",
    "train_base_model_from_facts",
    "verdict",
]

#: At or above: spam (kept out of the queue). Chosen with bench/triage.py (docs/triage.md): naive
#: Bayes is sure of itself, so the line sits high to keep ham out.
SPAM_THRESHOLD = 0.999
#: At or below: clean. Between the two: suspicious, a person decides.
CLEAN_THRESHOLD = 0.10
#: What an installation without any trained model answers: suspicious, never spam.
NEUTRAL_PROBABILITY = 0.5
#: A human decision counts as this many base examples (tried on bench/triage.py's split: with 5 or 50 the
#: model caught less spam after 1,000 decisions).
HUMAN_WEIGHT = 20.0
#: Fixed log-odds for what the base mail cannot teach: the customer's history and a trusted server's verdict.
FACT_LOG_ODDS = {
    "known_customer": -4.0,
    "per_prior_conversation": -0.5,   # up to MAX_PRIOR_CONVERSATIONS
    "upstream_spam": 3.0,
    "upstream_clean": -1.0,
}
MAX_PRIOR_CONVERSATIONS = 6
#: Versions kept on disk for rollback (the current one included).
KEEP_VERSIONS = 10

SPAM, SUSPICIOUS, CLEAN = "spam", "suspicious", "clean"

_FORMAT = 1
_WORD_FEATURES = 2**18
_CHAR_FEATURES = 2**18
_FACT_FEATURES = 2**10
_N_FEATURES = _WORD_FEATURES + _CHAR_FEATURES + _FACT_FEATURES
_CLASSES = np.array([False, True])
# Enough text to judge by, and a bound on the time one huge item costs.
_MAX_TEXT_CHARS = 4000
_MAX_CHAR_NGRAM_TEXT = 800
_LINK = re.compile(r"https?://", re.IGNORECASE)
_HREF = re.compile(r"""href\s*=\s*["']?https?://""", re.IGNORECASE)
_SMOOTHING = 0.03  # MultinomialNB alpha: 0.01, 0.03 and 0.1 tried on bench/triage.py's split
_MAX_LOG_ODDS = 30.0


@dataclass(frozen=True)
class ItemFacts:
    """What the machine judges of one inbound item (built by the flow from an InboundItem + store facts)."""

    channel: str                 # the channel's configured name (never branch on its kind)
    text: str                    # plain text of the item
    subject: str | None = None
    sender: str = ""             # address / handle as stored
    html: bool = False           # the item came with an HTML body
    links: int = 0               # number of http(s) links in it
    language: str | None = None  # e.g. "en", "nl" when known
    known_customer: bool = False # the customer has earlier conversations that were not spam
    prior_conversations: int = 0
    upstream_spam: bool | None = None  # a trusted MTA's X-Spam-Flag/X-Spam-Status/rspamd verdict, None if absent


@dataclass(frozen=True)
class ModelVersion:
    """One kept version of the model."""

    number: int
    created_at: datetime
    decisions: int               # human decisions learnt in this version's history
    source: str                  # "base", "learning" or "rollback"


@dataclass(frozen=True)
class Judgement:
    """What the model said of one item, and which version said it."""

    probability: float
    verdict: str                 # SPAM, SUSPICIOUS or CLEAN
    version: int


def verdict(probability: float) -> str:
    """"spam", "suspicious" or "clean" for a probability, by the thresholds the bench chose."""
    if probability >= SPAM_THRESHOLD:
        return SPAM
    if probability <= CLEAN_THRESHOLD:
        return CLEAN
    return SUSPICIOUS


# --- features -----------------------------------------------------------------------------------

# norm=None: each row is scaled to unit length by _unit_rows, which costs a tenth of what sklearn's
# normalize() does on one row (judging one item at a time is the product's case, < 2 ms in all).
_WORDS = HashingVectorizer(n_features=_WORD_FEATURES, ngram_range=(1, 2), alternate_sign=False,
                           norm=None, lowercase=True, token_pattern=r"(?u)\b\w[\w'.-]*\w\b|\b\w\b|[$€£!]")
_CHARS = HashingVectorizer(n_features=_CHAR_FEATURES, analyzer="char_wb", ngram_range=(3, 5),
                           alternate_sign=False, norm=None, lowercase=True)
_FACTS = HashingVectorizer(n_features=_FACT_FEATURES, analyzer=lambda tokens: tokens, alternate_sign=False,
                           norm=None)


def _fact_tokens(facts: ItemFacts) -> list[str]:
    """The item's facts as tokens; counts go in as a few buckets, so a linear model can weigh them."""
    domain = facts.sender.rpartition("@")[2].lower() if "@" in facts.sender else ""
    tokens = [
        f"channel={facts.channel}",
        f"language={facts.language or '?'}",
        f"html={facts.html}",
        f"links={min(facts.links, 10) if facts.links < 10 else '10+'}",
        f"links>0={facts.links > 0}",
        f"known_customer={facts.known_customer}",
        f"prior={min(facts.prior_conversations, 5)}",
        f"upstream={facts.upstream_spam}",
        f"subject={'yes' if facts.subject else 'none'}",
    ]
    if domain:
        tokens.append(f"domain={domain}")
        tokens.append(f"tld={domain.rpartition('.')[2]}")
    return tokens


def _unit_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Each row scaled to Euclidean length 1 (empty rows stay empty), in place."""
    lengths = np.diff(matrix.indptr)
    filled = lengths > 0
    if filled.any():
        squares = np.add.reduceat(matrix.data**2, matrix.indptr[:-1][filled])
        matrix.data /= np.repeat(np.sqrt(squares), lengths[filled])
    return matrix


def _features(batch: list[ItemFacts]) -> sp.csr_matrix:
    texts = [f"{facts.subject or ''}\n{facts.text[:_MAX_TEXT_CHARS]}" for facts in batch]
    words = _unit_rows(_WORDS.transform(texts))
    chars = _unit_rows(_CHARS.transform([text[:_MAX_CHAR_NGRAM_TEXT] for text in texts]))
    # Each block has length 1, the facts too: unscaled, an item's ten-odd fact tokens outweighed its
    # whole text, and on bench/triage.py's split ham judged spam after learning fell from 4 mails to 1
    # and spam caught rose from 93.6% to 96.4% once they were scaled like the text (docs/triage.md).
    known = _unit_rows(_FACTS.transform([_fact_tokens(facts) for facts in batch]).astype(np.float64))
    return sp.hstack([words, chars, known], format="csr")


def _fact_log_odds(facts: ItemFacts) -> float:
    odds = 0.0
    if facts.known_customer:
        odds += FACT_LOG_ODDS["known_customer"]
    odds += FACT_LOG_ODDS["per_prior_conversation"] * min(max(facts.prior_conversations, 0),
                                                           MAX_PRIOR_CONVERSATIONS)
    if facts.upstream_spam is True:
        odds += FACT_LOG_ODDS["upstream_spam"]
    elif facts.upstream_spam is False:
        odds += FACT_LOG_ODDS["upstream_clean"]
    return odds


class _Counts:
    """What the naive Bayes learnt: weighted counts per class (ham row 0, spam row 1) and per feature.

    Learning goes through scikit-learn's `MultinomialNB.partial_fit`; judging reads the counts as one
    log-odds weight per feature, so an item costs a sparse dot product.
    """

    def __init__(self, class_count: np.ndarray, feature_count: np.ndarray) -> None:
        self.class_count = class_count
        self.feature_count = feature_count
        smoothed = feature_count + _SMOOTHING
        log_prob = np.log(smoothed) - np.log(smoothed.sum(axis=1, keepdims=True))
        self.weights = log_prob[1] - log_prob[0]
        self.bias = float(np.log(class_count[1]) - np.log(class_count[0])) if class_count.all() else 0.0

    @classmethod
    def empty(cls) -> _Counts:
        return cls(np.zeros(2), np.zeros((2, _N_FEATURES)))

    def learnt(self, matrix: sp.csr_matrix, labels: np.ndarray, weights: np.ndarray) -> _Counts:
        """New counts with these examples added (self stays as it is)."""
        classifier = MultinomialNB(alpha=_SMOOTHING)
        if self.class_count.any():
            # A fitted MultinomialNB is these public attributes; partial_fit adds to them.
            classifier.classes_ = _CLASSES
            classifier.class_count_ = self.class_count.copy()
            classifier.feature_count_ = self.feature_count.copy()
            classifier.n_features_in_ = _N_FEATURES
        classifier.partial_fit(matrix, labels, classes=_CLASSES, sample_weight=weights)
        return _Counts(classifier.class_count_, classifier.feature_count_)

    def log_odds(self, matrix: sp.csr_matrix) -> np.ndarray:
        return matrix @ self.weights + self.bias


def _probabilities(counts: _Counts, batch: list[ItemFacts]) -> list[float]:
    """P(spam): the learnt log-odds plus the fixed ones of the facts, through the logistic."""
    learnt = counts.log_odds(_features(batch))
    odds = np.clip(learnt + np.array([_fact_log_odds(facts) for facts in batch]), -_MAX_LOG_ODDS, _MAX_LOG_ODDS)
    return [float(p) for p in 1.0 / (1.0 + np.exp(-odds))]


# --- persistence ---------------------------------------------------------------------------------


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through `write(file)` into a temporary file beside `path`, fsync, then rename over it."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(frozen=True)
class _State:
    """One version: its record and its counts (None: nothing trained, the neutral model)."""

    version: ModelVersion
    counts: _Counts | None


class _Folder:
    """data_dir/triage/: one .npz file per version, the pointer to the current one, the learners' lock.

    Plain numpy arrays and a JSON record, read with allow_pickle=False: loading a version runs no code.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def version_path(self, number: int) -> Path:
        return self.root / f"model-{number:06d}.npz"

    @property
    def pointer(self) -> Path:
        return self.root / "current.json"

    def current_number(self) -> int | None:
        try:
            return int(json.loads(self.pointer.read_text())["version"])
        except FileNotFoundError:
            return None

    def pointer_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self.pointer.stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_ino, stat.st_size

    def kept_numbers(self) -> list[int]:
        numbers = []
        for path in self.root.glob("model-*.npz"):
            with contextlib.suppress(ValueError):
                numbers.append(int(path.stem.removeprefix("model-")))
        return sorted(numbers)

    def load(self, number: int, *, counts: bool = True) -> _State:
        with np.load(self.version_path(number), allow_pickle=False) as data:
            record = json.loads(str(data["record"]))
            if record.get("format") != _FORMAT or data["feature_count"].shape != (2, _N_FEATURES):
                raise ValueError(f"{self.version_path(number)}: not a model of this Mainland (format {record})")
            version = ModelVersion(number=record["version"], created_at=datetime.fromisoformat(record["created_at"]),
                                   decisions=record["decisions"], source=record["source"])
            return _State(version, _Counts(data["class_count"], data["feature_count"]) if counts else None)

    def save(self, state: _State) -> None:
        assert state.counts is not None
        self.root.mkdir(parents=True, exist_ok=True)
        record = {"format": _FORMAT, "version": state.version.number,
                  "created_at": state.version.created_at.isoformat(), "decisions": state.version.decisions,
                  "source": state.version.source}
        _atomic_write(self.version_path(state.version.number), lambda handle: np.savez(
            handle, record=np.array(json.dumps(record)), class_count=state.counts.class_count,
            feature_count=state.counts.feature_count))
        pointer = json.dumps({"version": state.version.number}).encode()
        _atomic_write(self.pointer, lambda handle: handle.write(pointer))
        for old in self.kept_numbers()[:-KEEP_VERSIONS]:
            self.version_path(old).unlink(missing_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


# --- the model ------------------------------------------------------------------------------------


class SpamModel:
    """The installation's spam model (see the module docstring); one per process is enough."""

    def __init__(self, folder: _Folder, *, now: Callable[[], datetime]) -> None:
        self._folder = folder
        self._now = now
        self._lock = threading.RLock()
        self._stamp: tuple[int, int, int] | None = None
        self._state = _State(ModelVersion(0, datetime.fromtimestamp(0, UTC), 0, "base"), None)  # nothing yet
        self._refresh()

    @property
    def version(self) -> int:
        """Increases with every persisted change (0: nothing trained yet)."""
        self._refresh()
        return self._state.version.number

    @property
    def trained(self) -> bool:
        """False while no model was trained: every probability is then `NEUTRAL_PROBABILITY`."""
        self._refresh()
        return self._state.counts is not None

    @property
    def ready(self) -> bool:
        """True once the model has seen both spam and ham (a base model, or decisions of both kinds):
        before that every probability is `NEUTRAL_PROBABILITY`, and the flow judges on its rules alone."""
        self._refresh()
        counts = self._state.counts
        return counts is not None and bool(counts.class_count.all())

    def spam_probability(self, facts: ItemFacts) -> float:
        """0..1: how likely the item is spam; the same answer for the same facts and version."""
        return self.spam_probabilities([facts])[0]

    def spam_probabilities(self, batch: list[ItemFacts]) -> list[float]:
        """`spam_probability` of several items at once (faster per item)."""
        self._refresh()
        return self._judged_by(self._state, batch)

    def judge(self, facts: ItemFacts) -> Judgement:
        """Probability, verdict and the version that gave them, from one version even while another
        process learns (what the flow stores with the item)."""
        self._refresh()
        state = self._state
        probability = self._judged_by(state, [facts])[0]
        return Judgement(probability, verdict(probability), state.version.number)

    @staticmethod
    def _judged_by(state: _State, batch: list[ItemFacts]) -> list[float]:
        counts = state.counts
        if counts is None or not counts.class_count.all():
            return [NEUTRAL_PROBABILITY] * len(batch)
        return _probabilities(counts, batch)

    def learn(self, facts: ItemFacts, is_spam: bool) -> None:
        """Learn a person's decision on one item; saved as a new version before this returns."""
        self.learn_many([(facts, is_spam)])

    def learn_many(self, decisions: list[tuple[ItemFacts, bool]], *, weight: float = HUMAN_WEIGHT,
                   source: str = "learning") -> None:
        """`learn` for several decisions, saved as one new version."""
        if not decisions:
            return
        with self._locked():
            counts = self._state.counts or _Counts.empty()
            labels = np.array([is_spam for _, is_spam in decisions])
            learnt = counts.learnt(_features([facts for facts, _ in decisions]), labels,
                                   np.full(len(decisions), weight))
            human = len(decisions) if source == "learning" else 0
            self._persist(learnt, decisions=self._state.version.decisions + human, source=source)

    def rollback(self, version: int) -> None:
        """Make a kept earlier version current again (as a new version, source "rollback")."""
        with self._locked():
            if version not in self._folder.kept_numbers():
                raise KeyError(f"version {version} is not kept (kept: {self._folder.kept_numbers()})")
            earlier = self._folder.load(version)
            self._persist(earlier.counts, decisions=earlier.version.decisions, source="rollback")

    def versions(self) -> list[ModelVersion]:
        """The kept versions, oldest first."""
        kept = []
        for number in self._folder.kept_numbers():
            with contextlib.suppress(FileNotFoundError):  # pruned by another process meanwhile
                kept.append(self._folder.load(number, counts=False).version)
        return kept

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive against this process's threads and other processes, starting from the newest version."""
        with self._lock, self._folder.locked():
            self._refresh(force=True)
            yield

    def _persist(self, counts: _Counts, *, decisions: int, source: str) -> None:
        number = max([self._state.version.number, *self._folder.kept_numbers()]) + 1
        state = _State(ModelVersion(number, self._now(), decisions, source), counts)
        self._folder.save(state)
        self._state = state
        self._stamp = self._folder.pointer_stamp()

    def _refresh(self, force: bool = False) -> None:
        """Load the current version when another process (or train-base) saved a newer one."""
        stamp = self._folder.pointer_stamp()
        if stamp is None or (stamp == self._stamp and not force):
            return
        with self._lock:
            number = self._folder.current_number()
            if number is not None and number != self._state.version.number:
                self._state = self._folder.load(number)
            self._stamp = stamp


def open_model(data_dir: Path, *, now: Callable[[], datetime] = inbox.clock.now) -> SpamModel:
    """The installation's model: data_dir/triage/; the base model when nothing was learnt yet."""
    return SpamModel(_Folder(Path(data_dir) / "triage"), now=now)


# --- the base model -------------------------------------------------------------------------------


def train_base_model(messages: Iterable[tuple[bytes, bool]], data_dir: Path, *,
                     now: Callable[[], datetime] = inbox.clock.now) -> SpamModel:
    """Train from labelled raw mail (bytes, is_spam), e.g. the SpamAssassin corpus.

    The base model replaces whatever was learnt before (as a new version: a rollback brings that back).
    """
    examples = []
    for raw, is_spam in messages:
        facts = facts_from_email(raw)
        if facts is not None:
            examples.append((facts, is_spam))
    return train_base_model_from_facts(examples, data_dir, now=now)


def train_base_model_from_facts(examples: list[tuple[ItemFacts, bool]], data_dir: Path, *,
                                now: Callable[[], datetime] = inbox.clock.now) -> SpamModel:
    """`train_base_model` from facts already read (tests and the bench)."""
    if len({is_spam for _, is_spam in examples}) < 2:
        raise ValueError("the base model needs both spam and ham examples")
    model = open_model(data_dir, now=now)
    counts = _Counts.empty().learnt(_features([facts for facts, _ in examples]),
                                    np.array([is_spam for _, is_spam in examples]), np.ones(len(examples)))
    with model._locked():
        model._persist(counts, decisions=0, source="base")
    return model


def facts_from_email(raw: bytes, *, channel: str = "email") -> ItemFacts | None:
    """The facts of one raw mail as the ingest sees them (text, subject, sender, HTML, links).

    None for a mail the parser refuses (no sender at all): the ingest quarantines those, so they are
    never judged.

    `upstream_spam` stays None: a mail server's verdict counts only from a server the installation
    trusts, which the flow knows and a raw file does not (the SpamAssassin corpus carries its
    collectors' own X-Spam-* headers, which would give the answers away).
    """
    from connectors.base import ItemError
    from inbox.mail import parse_email  # the parser pulls in much of inbox; only mail needs it

    try:
        item = parse_email(raw, channel=channel)
    except ItemError:
        return None
    return replace(facts_from_text(channel=channel, text=item.text, subject=item.subject or None,
                                   sender=item.author.handle, html=item.html),
                   language=None)


def facts_from_text(*, channel: str, text: str, subject: str | None = None, sender: str = "",
                    html: str | None = None, **more: object) -> ItemFacts:
    """Facts from an item's text (and HTML, when it had one): links counted as the flow counts them."""
    links = len(_LINK.findall(text))
    if html:
        links = max(links, len(_HREF.findall(html)))
    return ItemFacts(channel=channel, text=text, subject=subject, sender=sender, html=bool(html),
                     links=links, **more)


def sent_at(raw: bytes) -> datetime | None:
    """The Date header of a raw mail, aware; None when missing or unreadable (used to order a corpus)."""
    head = raw.split(b"\n\n", 1)[0].decode("latin-1")
    match = re.search(r"^Date:[ \t]*(.*(?:\n[ \t].*)*)", head, re.IGNORECASE | re.MULTILINE)
    if not match:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(match.group(1).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment

