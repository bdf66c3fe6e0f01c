"""The answer library: ranking approved answers for a question, and filling in their variables.

**Ranking** (`rank`) is TF-IDF cosine similarity between the customer's message and each answer
(title, tags and body), computed here in a few lines of Python: a library holds hundreds of
answers, not millions, so an index would cost more than it saves. Words are folded (case,
accents), stopwords of English and Dutch dropped and common endings stripped, so "refunds" finds
"refund". On top comes what agents picked before: every earlier pick of an answer for a question
like this one (cosine over the same vectors) adds to that answer's score, so the library learns
which answer really fits which question. Only answers in the customer's language are suggested
when that language is known.

**Variables** are written `{{customer_name}}`, `{{customer_first_name}}`, `{{agent_name}}`,
`{{order_number}}` or `{{attribute:<key>}}` (any custom attribute of the customer). A variable
with no value stays visible in the text and is reported, so the agent sees what to fill in.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inbox.channel_format import Adapted, adapt, measure_for
from inbox.routing import STOPWORDS, detect_language

if TYPE_CHECKING:
    from inbox.store.answers import Answer, AnswerContext, AnswerPick

#: How much a similar earlier pick adds to an answer's score (a pick for the very same question
#: counts as much as a perfect text match).
PICK_WEIGHT = 0.6
#: Earlier picks less similar than this to the question say nothing about it.
PICK_MIN_SIMILARITY = 0.2
MAX_TAGS = 20
MAX_TAG_CHARS = 40

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset().union(*STOPWORDS.values())
_ENDINGS = ("ingen", "ing", "en", "es", "ed", "s", "e")
VARIABLE = re.compile(r"\{\{\s*([a-z_]+(?::[A-Za-z0-9_.-]+)?)\s*\}\}")
KNOWN_VARIABLES = ("customer_name", "customer_first_name", "agent_name", "order_number")


def fold(text: str) -> str:
    """Lower case without accents ("Café" -> "cafe")."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def stem(word: str) -> str:
    """A crude common-ending strip, enough for "refunds"/"refund" and "bestellingen"/"bestelling"."""
    for ending in _ENDINGS:
        if len(word) - len(ending) >= 4 and word.endswith(ending):
            return word[: -len(ending)]
    return word


def terms(text: str) -> list[str]:
    """The words of `text` that carry meaning, folded and stemmed."""
    words = _WORD.findall(fold(text or ""))
    return [stem(w) for w in words if w not in _STOP and len(w) > 1 and not w.isdigit()]


def normalise_tags(raw: str | Iterable[str]) -> list[str]:
    """Tags as stored: lower-case single words, unique, in the order given."""
    items = raw.replace(",", " ").split() if isinstance(raw, str) else list(raw)
    seen: list[str] = []
    for item in items:
        tag = re.sub(r"[^\w-]", "", fold(str(item)))[:MAX_TAG_CHARS]
        if tag and tag not in seen:
            seen.append(tag)
    return seen[:MAX_TAGS]


def answer_text(answer: Answer) -> str:
    """What an answer is matched on: its title and tags count twice, being written to be found."""
    head = f"{answer.title} {answer.tags}"
    return f"{head} {head} {answer.body}"


class Vectors:
    """TF-IDF vectors over one collection of documents (log-scaled term frequency, smoothed IDF)."""

    def __init__(self, documents: Sequence[Sequence[str]]) -> None:
        count = len(documents)
        frequency: Counter[str] = Counter()
        for doc in documents:
            frequency.update(set(doc))
        self._idf = {t: math.log((1 + count) / (1 + df)) + 1.0 for t, df in frequency.items()}
        self._default_idf = math.log(1 + count) + 1.0

    def vector(self, words: Sequence[str]) -> dict[str, float]:
        counts = Counter(words)
        vec = {t: (1.0 + math.log(n)) * self._idf.get(t, self._default_idf) for t, n in counts.items()}
        norm = math.sqrt(sum(v * v for v in vec.values()))
        return {t: v / norm for t, v in vec.items()} if norm else {}


def cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(t, 0.0) for t, v in a.items())


@dataclass
class Suggestion:
    answer: Answer
    score: float
    text_score: float
    pick_score: float
    picks: int = 0

    def as_json(self) -> dict[str, Any]:
        a = self.answer
        return {"id": a.id, "title": a.title, "body": a.body, "language": a.language,
                "tags": (a.tags or "").split(), "version": a.version, "score": round(self.score, 4),
                "text_score": round(self.text_score, 4), "pick_score": round(self.pick_score, 4),
                "picks": self.picks}


def rank(question: str, answers: Sequence[Answer], picks: Iterable[AnswerPick] = (), *,
         limit: int = 5, min_score: float = 0.0) -> list[Suggestion]:
    """Answers ranked for `question`: text similarity plus earlier picks for similar questions.

    `picks` name an answer (`answer_id`) and the `question` it was picked for.
    """
    question_terms = terms(question)
    answer_terms = [terms(answer_text(a)) for a in answers]
    pick_rows = [(p.answer_id, terms(p.question or "")) for p in picks]
    vectors = Vectors(answer_terms + [t for _, t in pick_rows])
    q = vectors.vector(question_terms)
    pick_scores: dict[int, float] = {}
    pick_counts: Counter[int] = Counter()
    if q:
        for answer_id, words in pick_rows:
            similarity = cosine(q, vectors.vector(words))
            if similarity >= PICK_MIN_SIMILARITY:
                pick_counts[answer_id] += 1
                # Several similar picks count more than one, with diminishing returns.
                pick_scores[answer_id] = pick_scores.get(answer_id, 0.0) + similarity / pick_counts[answer_id]
    found = []
    for answer, words in zip(answers, answer_terms, strict=True):
        text_score = cosine(q, vectors.vector(words)) if q else 0.0
        pick_score = PICK_WEIGHT * min(pick_scores.get(answer.id, 0.0), 1.5)
        score = text_score + pick_score
        if score > min_score:
            found.append(Suggestion(answer, score, text_score, pick_score, pick_counts.get(answer.id, 0)))
    found.sort(key=lambda s: (-s.score, s.answer.title.lower(), s.answer.id))
    return found[:limit]


def search(query: str, answers: Sequence[Answer], *, limit: int = 200) -> list[Answer]:
    """The library's search box: answers matching `query` (any word, or a title/tag substring)."""
    if not query.strip():
        return list(answers)[:limit]
    folded = fold(query.strip())
    ranked = {s.answer.id: s.score for s in rank(query, answers, limit=len(answers))}
    hits = []
    for answer in answers:
        score = ranked.get(answer.id, 0.0)
        if folded in fold(answer.title) or folded in fold(answer.tags or ""):
            score += 1.0
        if score > 0:
            hits.append((score, answer))
    hits.sort(key=lambda pair: (-pair[0], pair[1].title.lower()))
    return [a for _, a in hits[:limit]]


# Suggesting in a conversation --------------------------------------------------------------------

def conversation_language(context: AnswerContext) -> str | None:
    """The customer's language for a conversation (`store.answers.context()`)."""
    return detect_language(context.question or "", locale=context.locale)


def suggest(store: Any, conversation_id: int, *, limit: int = 5) -> dict[str, Any]:
    """Suggestions for a conversation, in the customer's language when known.

    Returns {"language", "suggestions": [Suggestion], "all_languages": bool} — `all_languages`
    when the library has nothing in that language and every language is shown instead.
    """
    context = store.answers.context(conversation_id)
    if context is None:
        return {"language": None, "suggestions": [], "all_languages": True}
    language = conversation_language(context)
    answers = store.answers.all(language=language) if language else []
    all_languages = not answers
    if all_languages:
        answers = store.answers.all()
    picks = store.answers.picks(None if all_languages else language, exclude_conversation=conversation_id)
    found = rank(context.question, answers, picks, limit=limit, min_score=0.0)
    return {"language": language, "suggestions": found, "all_languages": all_languages}


# Variables ---------------------------------------------------------------------------------------

@dataclass
class Filled:
    text: str
    missing: list[str] = field(default_factory=list)
    used: dict[str, str] = field(default_factory=dict)


def fill_variables(body: str, *, customer_name: str | None, agent_name: str | None,
                   attributes: Mapping[str, str]) -> Filled:
    """Substitute `{{...}}` variables; those without a value stay as written and are listed."""
    missing: list[str] = []
    used: dict[str, str] = {}
    first = (customer_name or "").strip().split()[0] if (customer_name or "").strip() else ""

    def value_of(name: str) -> str | None:
        if name == "customer_name":
            return (customer_name or "").strip() or None
        if name == "customer_first_name":
            return first or None
        if name == "agent_name":
            return (agent_name or "").strip() or None
        if name == "order_number":
            return _attribute(attributes, "order_number")
        if name.startswith("attribute:"):
            return _attribute(attributes, name.split(":", 1)[1])
        return None

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        value = value_of(name)
        if value is None:
            if name not in missing:
                missing.append(name)
            return match.group(0)
        used[name] = value
        return value

    return Filled(VARIABLE.sub(replace, body), missing, used)


def _attribute(attributes: Mapping[str, str], key: str) -> str | None:
    value = attributes.get(key)
    if value is None:
        # Imported records spell keys their own way ("Order number", "order-number").
        wanted = re.sub(r"[^a-z0-9]", "", key.lower())
        for k, v in attributes.items():
            if re.sub(r"[^a-z0-9]", "", k.lower()) == wanted:
                value = v
                break
    value = (value or "").strip()
    return value or None


def variables_in(body: str) -> list[str]:
    """The variables an answer uses, in order of first use."""
    seen: list[str] = []
    for match in VARIABLE.finditer(body):
        if match.group(1) not in seen:
            seen.append(match.group(1))
    return seen


# Inserting into a conversation -------------------------------------------------------------------

#: Variables whose values are not personal data in a public reply (the customer's own name is
#: already on their public post; ours is public anyway).
_PUBLIC_SAFE = frozenset({"customer_name", "customer_first_name", "agent_name"})


def render(body: str, context: Mapping[str, Any], *, agent_name: str | None, connector_cls: Any) -> Adapted:
    """An answer's body ready for a conversation's composer: variables filled in, then adapted to
    the channel of `connector_cls` (the class that sends this conversation's replies)."""
    filled = fill_variables(body, customer_name=context.get("customer_name"), agent_name=agent_name,
                            attributes=context.get("attributes") or {})
    sensitive = [v for name, v in filled.used.items() if name not in _PUBLIC_SAFE]
    return adapt(filled.text, connector_cls.limits, public=bool(context.get("public")),
                 measure=measure_for(connector_cls), sensitive=sensitive, missing_variables=filled.missing)
