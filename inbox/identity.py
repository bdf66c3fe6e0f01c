"""Identity normalisation, evidence found in messages, and the scoring of merge suggestions.

Everything here is pure: no database, no configuration. `inbox.customers` feeds it what the store
knows and writes down what it decides.

Normal forms (docs/customers.md, docs/architecture.md "Identities"):

- email: trimmed, `mailto:` and angle brackets dropped, lower-cased whole (local part included);
  no provider-specific rewriting (dots and `+tags` are kept: not every provider ignores them);
- phone: E.164 (`+31612345678`) through `phonenumbers` (Google's libphonenumber metadata), with
  the configured default region for numbers written without a country code (`06-12345678`);
- handles: lower-cased on networks whose names are case-insensitive, a leading `@` dropped;
  numeric account ids (X, Telegram, Facebook, Instagram) stay as they are.

Which identity kinds exist and how each is matched is not a table here: every connector declares
the kinds its authors carry (`Connector.identities`, `connectors.base.IdentityRule`), and
`identity_rules()` collects them from the installed connectors (plus those `register_connectors`
was given, such as a `Mainland`'s `extra_connectors`).

Names are compared accent- and case-insensitively, token by token (Jaro-Winkler from `rapidfuzz`,
a maintained C++ implementation, so that thousands of comparisons per item stay cheap).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import phonenumbers
from rapidfuzz.distance import JaroWinkler

if TYPE_CHECKING:
    from connectors.base import Connector, IdentityRule

MAX_IDENTITY_CHARS = 320

_EMAIL_SHAPE = re.compile(r"[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\".]{2,}")
_EMAIL_IN_TEXT = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*"
                            r"\.[A-Za-z]{2,24}(?![\w-])")
#: Words that are not part of a person's name for matching.
_NAME_NOISE = frozenset({"mr", "mrs", "ms", "miss", "dr", "dhr", "mevr", "mw", "ir", "drs", "prof", "hr", "fam",
                         "familie"})
#: Name particles: kept in the key, but not a token a person is recognised by.
_PARTICLES = frozenset({"de", "van", "der", "den", "het", "te", "ten", "ter", "von", "zu", "la", "le", "du", "da",
                        "di", "del", "dos", "el", "al", "bin", "y", "t", "s", "op", "in"})


# The declared identity kinds ------------------------------------------------------------------

_registered: dict[str, IdentityRule] = {}
#: The merged rules, built on first use and again after `register_connectors`.
_rules: dict[str, IdentityRule] | None = None
_rules_lock = threading.Lock()


def _merge(rules: dict[str, IdentityRule], declared: Iterable[IdentityRule]) -> None:
    """Add `declared` to `rules`; a kind declared twice (mail and web forms: "email") keeps the
    first declaration and gains the second one's aliases."""
    for rule in declared:
        known = rules.get(rule.kind)
        if known is None:
            rules[rule.kind] = rule
        else:
            extra = tuple(a for a in rule.aliases if a not in known.aliases)
            rules[rule.kind] = replace(known, aliases=known.aliases + extra) if extra else known


def register_connectors(classes: Iterable[type[Connector]]) -> None:
    """Make the identity kinds of connector classes known that discovery does not find (a
    `Mainland`'s `extra_connectors`)."""
    global _rules
    with _rules_lock:
        for cls in classes:
            _merge(_registered, getattr(cls, "identities", ()))
        _rules = None


def identity_rules() -> dict[str, IdentityRule]:
    """Every declared identity kind's rule, by kind: the installed connectors' first, then registered ones."""
    global _rules
    with _rules_lock:
        if _rules is None:
            import connectors

            found: dict[str, IdentityRule] = {}
            for cls in connectors.discover().values():
                _merge(found, cls.identities)
            _merge(found, _registered.values())
            _rules = found
        return _rules


def rule_for(kind: str) -> IdentityRule | None:
    """The declared rule of an identity kind (or of one of its aliases); None for an unknown kind."""
    return identity_rules().get(canonical_kind(kind))


def channel_kinds() -> tuple[str, ...]:
    """The identity kinds a channel author can have (every kind some connector declares)."""
    return tuple(identity_rules())


def single_kinds() -> frozenset[str]:
    """Kinds a person normally has one of per record: two records with different values of such a
    kind are two people until an agent says otherwise (never merged or suggested on a name alone)."""
    return frozenset(kind for kind, rule in identity_rules().items() if rule.single)


def chat_kinds() -> frozenset[str]:
    """Kinds of channels where people type their contact details into the message text."""
    return frozenset(kind for kind, rule in identity_rules().items() if rule.contacts_in_text)


def handle_kinds() -> tuple[str, ...]:
    """Kinds that are network accounts (not an email address or phone number)."""
    return tuple(kind for kind, rule in identity_rules().items() if rule.handle)


# Normal forms ---------------------------------------------------------------------------------

def canonical_kind(kind: str) -> str:
    """The declared kind `kind` names ("twitter" -> "x"), else `kind` trimmed and lower-cased."""
    kind = (kind or "").strip().lower()
    rules = identity_rules()
    if kind in rules:
        return kind
    return next((k for k, rule in rules.items() if kind in rule.aliases), kind)


def normalize_email(value: str) -> str | None:
    """The stored form of an email address, or None when it is not one."""
    text = (value or "").strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    text = text.strip().strip("<>").strip().lower()
    if len(text) > MAX_IDENTITY_CHARS or not _EMAIL_SHAPE.fullmatch(text):
        return None
    return text


def normalize_phone(value: str, region: str | None = None) -> str | None:
    """E.164 for a phone number in any common notation, or None when it is not a possible number.

    `region` (e.g. "NL") is where a number without country code is from; without it only
    numbers in international notation (`+31 6...`, `0031 6...` is national-prefix dependent) parse.
    """
    text = (value or "").strip()
    if not text or len(text) > 64:
        return None
    digits = re.sub(r"[^\d+]", "", text)
    # "0031..." is the international call prefix of most of Europe; without a region it is still clear.
    if digits.startswith("00") and not region:
        text = "+" + digits[2:]
    try:
        number = phonenumbers.parse(text, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email_identity(value: str) -> str:
    """An email identity's stored form: the address, or the trimmed lower-cased text when it is not one."""
    return normalize_email(value) or (value or "").strip().lower()[:MAX_IDENTITY_CHARS]


def normalize_phone_identity(value: str, region: str | None = None) -> str:
    """A phone identity's stored form: E.164, or the trimmed text when it is not a possible number."""
    return normalize_phone(value, region) or (value or "").strip()[:MAX_IDENTITY_CHARS]


def normalize_handle(kind: str, value: str) -> str:
    """A network handle or account id in its matching form, by the kind's declared rule."""
    text = unicodedata.normalize("NFKC", (value or "").strip())[:MAX_IDENTITY_CHARS]
    rule = rule_for(kind)
    if rule is not None and rule.strip_at:
        text = text.lstrip("@")
    if rule is not None and rule.case_insensitive:
        text = text.lower()
    return text


def normalize_identity(kind: str, value: str, region: str | None = None) -> str:
    """The form an identity is stored and matched in; never empty for a non-empty input.

    Values that are not valid for their kind are kept trimmed (and lower-cased where the kind is
    case-insensitive) so that the customer is not lost; they simply match only themselves.
    """
    rule = rule_for(kind)
    if rule is not None and rule.normalize is not None:
        return rule.normalize(value, region) or ""
    return normalize_handle(kind, value)


# Evidence in message text ---------------------------------------------------------------------

def emails_in_text(text: str, limit: int = 5, scan_chars: int = 20_000) -> list[str]:
    """Distinct email addresses written in `text`, normalised, in order of appearance."""
    found: list[str] = []
    for match in _EMAIL_IN_TEXT.finditer((text or "")[:scan_chars]):
        address = normalize_email(match.group(0))
        if address and address not in found:
            found.append(address)
            if len(found) >= limit:
                break
    return found


def phones_in_text(text: str, region: str | None = None, limit: int = 3, scan_chars: int = 4_000) -> list[str]:
    """Distinct valid phone numbers written in `text`, as E.164."""
    text = (text or "")[:scan_chars]
    if not any(ch.isdigit() for ch in text):
        return []
    found: list[str] = []
    matcher = phonenumbers.PhoneNumberMatcher(text, (region or "ZZ").upper(), leniency=phonenumbers.Leniency.VALID,
                                              max_tries=20)
    for match in matcher:
        number = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        if number not in found:
            found.append(number)
            if len(found) >= limit:
                break
    return found


# Names -----------------------------------------------------------------------------------------

def name_key(name: str) -> str:
    """A name without accents, case, punctuation and titles: "Dhr. José  de Vríes" -> "jose de vries"."""
    if "@" in (name or "") or "://" in (name or ""):
        return ""  # an address or a link shown as a name is not a name
    text = unicodedata.normalize("NFKD", name or "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    # "de Vries, Jan" is "Jan de Vries".
    if text.count(",") == 1:
        last, first = text.split(",")
        text = f"{first} {last}"
    words = re.findall(r"[^\W\d_]+", text)
    return " ".join(w for w in words if w not in _NAME_NOISE)[:200]


def name_tokens(key: str) -> list[str]:
    """The tokens of a name key a person is recognised by (particles left out)."""
    return [t for t in key.split() if t not in _PARTICLES]


def is_full_name(key: str) -> bool:
    """At least a given name and a family name (initials count as given names)."""
    tokens = name_tokens(key)
    return len(tokens) >= 2 and any(len(t) >= 2 for t in tokens[1:])


def name_blocks(key: str) -> set[str]:
    """Keys under which a name is filed for same-day lookups: the first letter of each real token.

    Two spellings of one name share at least one block unless every token's first letter differs.
    """
    return {t[0] for t in name_tokens(key) if len(t) >= 2}


def _token_match(a: str, b: str) -> float:
    if a == b:
        return 1.0
    # An initial ("j") matches a name starting with it, but weakly.
    if len(a) == 1 or len(b) == 1:
        return 0.85 if a[0] == b[0] else 0.0
    return JaroWinkler.normalized_similarity(a, b)


def name_similarity(a: str, b: str) -> float:
    """How alike two name keys are, 0..1: every token of the shorter name must find its match.

    "jan de vries" ~ "jan de vriess" is high; "jan jansen" ~ "joke jansen" is low, because "jan"
    and "joke" do not match, although the whole strings look alike.
    """
    ta, tb = name_tokens(a), name_tokens(b)
    if not ta or not tb:
        return 0.0
    if len(ta) > len(tb):
        ta, tb = tb, ta
    used: set[int] = set()
    scores = []
    for token in ta:
        best, best_j = 0.0, -1
        for j, other in enumerate(tb):
            if j in used:
                continue
            score = _token_match(token, other)
            if score > best:
                best, best_j = score, j
        if best_j >= 0:
            used.add(best_j)
        scores.append(best)
    # The weakest token decides: one wrong given name makes it another person.
    return min(scores) * 0.6 + (sum(scores) / len(scores)) * 0.4


# Scoring ---------------------------------------------------------------------------------------

#: Below this a suggestion is not shown (tuned with bench/identity.py).
SUGGEST_THRESHOLD = 0.5
#: Names at least this alike count as "a close name" (one typo in a name of two tokens is ~0.9).
CLOSE_NAME = 0.88

#: Base weights of the kinds of evidence (see docs/customers.md for the reasoning).
WEIGHTS = {
    "same_phone": 0.9,  # a channel's phone number is the number on another record
    "email_in_text": 0.85,  # an address written in a chat message is another record's address
    "phone_in_text": 0.8,  # a number written in a chat message is another record's number
    "same_email": 0.85,  # an address in a CRM record is another record's channel address
    "close_name_same_day": 0.75,  # a close name on the same day on another channel
    "rare_name": 0.7,  # exactly the same uncommon full name, any day
}


@dataclass(frozen=True)
class Reason:
    """One piece of evidence for (or, with a negative weight, against) a pair being one person."""

    code: str
    detail: str
    weight: float

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "detail": self.detail, "weight": round(self.weight, 3)}


def combine(reasons: Iterable[Reason | dict]) -> float:
    """The score of a set of reasons: positive evidence combined as independent (noisy-or), minus penalties."""
    keep_not = 1.0
    penalty = 0.0
    seen = set()
    for reason in reasons:
        code, detail, weight = ((reason.code, reason.detail, reason.weight) if isinstance(reason, Reason)
                                else (reason["code"], reason.get("detail", ""), float(reason["weight"])))
        if (code, detail) in seen:
            continue
        seen.add((code, detail))
        if weight >= 0:
            keep_not *= 1.0 - min(weight, 0.99)
        else:
            penalty += weight
    return max(0.0, min(1.0, (1.0 - keep_not) + penalty))


def name_reasons(key_a: str, key_b: str) -> list[Reason]:
    """Adjustments from names when another kind of evidence links two records."""
    if not key_a or not key_b:
        return []
    if is_full_name(key_a) and is_full_name(key_b):
        similarity = name_similarity(key_a, key_b)
        if similarity >= CLOSE_NAME:
            return [Reason("similar_name", f"{key_a} ~ {key_b}", 0.3)]
        if similarity < 0.7:
            return [Reason("different_name", f"{key_a} / {key_b}", -0.35)]
        return []
    first_a, first_b = name_tokens(key_a)[:1], name_tokens(key_b)[:1]
    if first_a and first_b and _token_match(first_a[0], first_b[0]) >= CLOSE_NAME:
        # A WhatsApp profile called "Jan" next to "Jan de Vries": consistent, not proof.
        return [Reason("similar_name", f"{key_a} ~ {key_b}", 0.15)]
    return []


def shared_claim_weight(base: float, holders: int) -> float:
    """A number or address that several records claim (a family's phone) says less about each."""
    return base if holders <= 1 else base / (1.0 + 0.6 * (holders - 1))


def expected_namesakes(key: str, counts: dict[str, int], minus: Iterable[str] = ()) -> float:
    """How many other records would carry this name by chance: records x the share of each token.

    `counts` holds records per token and, under "", the number of named records; the names in
    `minus` (the records being compared) are taken out first. "jan de vries" among 20,000 records
    with 800 "jan" and 700 "vries" is expected 28 times; "ottoline quarles" about never.
    """
    own = [set(name_tokens(k)) for k in minus if k]
    total = counts.get("", 0) - len(own)
    tokens = set(name_tokens(key))
    if total <= 0 or not tokens:
        return 0.0
    expected = float(total)
    for token in tokens:
        others = counts.get(token, 0) - sum(1 for o in own if token in o)
        expected *= max(others, 0) / total
    return expected


def close_name_weight(similarity: float, chance: float) -> float:
    """Weight of "a close name on the same day on another channel".

    `chance` is how many other people with this name would write on that day anyway (expected
    namesakes x the share of records active that day): the more people are called "Jan de Vries",
    the less a second "Jan de Vries" on the same day means.
    """
    if similarity < CLOSE_NAME:
        return 0.0
    base = WEIGHTS["close_name_same_day"] * (0.85 + 0.15 * (similarity - CLOSE_NAME) / (1 - CLOSE_NAME))
    return base / (1.0 + 4.0 * chance)


#: Names expected more times than this by chance say nothing across days.
RARE_NAME = 0.5


def rare_name_weight(expected: float) -> float:
    """Weight of "the same uncommon name" (exact, on any day, any channel): strong for a name
    nobody else is expected to have, fading as chance namesakes become likely."""
    if expected >= RARE_NAME:
        return 0.0
    return WEIGHTS["rare_name"] / (1.0 + 6.0 * expected)


def conflict_reasons(kinds_a: dict[str, set[str]], kinds_b: dict[str, set[str]]) -> list[Reason]:
    """Penalties for identities of a single-valued kind that differ between two records."""
    reasons = []
    for kind in sorted(single_kinds() & kinds_a.keys() & kinds_b.keys()):
        if not kinds_a[kind] & kinds_b[kind]:
            reasons.append(Reason("conflict", kind, -0.6))
    return reasons
