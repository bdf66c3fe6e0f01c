"""Adapting a reply text to the channel it goes out on: formatting, length, and public personal data.

Answers in the library are written once, in plain text with light markdown (`**bold**`, `*italic*`,
`[link](https://...)`, `# heading`, `* item`). `adapt()` turns such a text into what a channel
takes, as pure functions over the channel's `connectors.base.Limits` and the conversation's
`public` flag:

- a channel without formatting (`formatting="plain"`) gets plain text: the markup is removed and
  links are written out ("text (https://...)");
- a text longer than the channel allows is flagged, with a suggested short version: whole
  sentences from the start that fit, else the first sentence cut at a word and ended with "…".
  Length is counted the way the channel declares (`Connector.measure_text`: X's weighted length,
  Bluesky's graphemes, characters elsewhere);
- a public reply (a comment, a mention) containing personal data (an email address, a phone
  number, an IBAN, a postcode, or a value from the customer's record such as an order number)
  gets a note to move the conversation to a private channel first.

Warnings are codes with parameters; the web layer words them in the agent's language.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from connectors.base import Limits

ELLIPSIS = "…"

_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", re.S)
_ITALIC = re.compile(r"(?<![\w*])([*_])(?=\S)(.+?)(?<=\S)\1(?![\w*])", re.S)
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+", re.M)
_BULLET = re.compile(r"^([ \t]*)[*+][ \t]+", re.M)
_CODE = re.compile(r"`([^`\n]+)`")
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")

PERSONAL_DATA = {
    "email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "iban": re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){3,7}(?:[ ]?[A-Z0-9]{1,3})?\b"),
    "phone": re.compile(r"(?<![\w/])(?:\+|00)?\d(?:[ ().-]?\d){7,14}(?![\w/])"),
    "postcode": re.compile(r"\b[1-9]\d{3}[ ]?(?!SA|SD|SS)[A-Z]{2}\b"),
}


@dataclass(frozen=True)
class FormatWarning:
    """Something the agent should know about the adapted text. `code` is one of:
    `formatting_removed`, `too_long` (length, max), `personal_data_public` (kinds),
    `missing_variables` (names)."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Adapted:
    text: str
    length: int
    max_length: int | None
    formatting: str
    short_text: str | None = None
    html: str | None = None
    warnings: list[FormatWarning] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.max_length is None or self.length <= self.max_length

    def codes(self) -> list[str]:
        return [w.code for w in self.warnings]


def to_plain(text: str) -> str:
    """Light markdown (and stray HTML tags) as plain text."""
    out = _LINK.sub(lambda m: m.group(1) if m.group(1) == m.group(2) else f"{m.group(1)} ({m.group(2)})", text)
    out = _CODE.sub(r"\1", out)
    out = _BOLD.sub(r"\2", out)
    out = _ITALIC.sub(r"\2", out)
    out = _HEADING.sub("", out)
    out = _BULLET.sub(r"\1- ", out)
    out = _TAG.sub("", out)
    return re.sub(r"\n{3,}", "\n\n", out).strip()


def has_markup(text: str) -> bool:
    return to_plain(text) != text.strip()


def to_html(text: str) -> str:
    """Light markdown as a small HTML fragment (paragraphs, line breaks, bold, italic, links)."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip()):
        escaped = html_lib.escape(_HEADING.sub("", block))
        escaped = _LINK.sub(lambda m: f'<a href="{m.group(2)}">{m.group(1)}</a>', escaped)
        escaped = _BOLD.sub(r"<strong>\2</strong>", escaped)
        escaped = _ITALIC.sub(r"<em>\2</em>", escaped)
        paragraphs.append("<p>" + escaped.replace("\n", "<br>") + "</p>")
    return "".join(paragraphs)


def measure_for(connector_cls: Any) -> Callable[[str], int]:
    """How the channel of `connector_cls` counts a text's length: its declared `measure_text`
    (characters when there is no connector)."""
    return getattr(connector_cls, "measure_text", len)


def shorten(text: str, max_length: int, measure: Callable[[str], int] = len) -> str:
    """Whole sentences from the start that fit in `max_length`; else the first words, with "…"."""
    if measure(text) <= max_length:
        return text
    sentences = [s for s in _SENTENCE_END.split(text.replace("\n", " ")) if s.strip()]
    kept: list[str] = []
    for sentence in sentences:
        candidate = " ".join([*kept, sentence.strip()])
        if measure(candidate) > max_length:
            break
        kept.append(sentence.strip())
    if kept:
        return " ".join(kept)
    words = text.split()
    cut = ""
    for word in words:
        candidate = f"{cut} {word}".strip()
        if measure(candidate + ELLIPSIS) > max_length:
            break
        cut = candidate
    if not cut:
        # Not even one word fits: cut characters.
        cut = text[: max(max_length - 1, 0)]
        while cut and measure(cut + ELLIPSIS) > max_length:
            cut = cut[:-1]
    return cut.rstrip(" ,;:-") + ELLIPSIS


def personal_data(text: str, sensitive: Iterable[str] = ()) -> list[str]:
    """Kinds of personal data in `text`: pattern matches, and any of the `sensitive` values
    (taken from the customer's record) appearing in it as "customer_record"."""
    kinds = []
    rest = text
    for kind, pattern in PERSONAL_DATA.items():
        if pattern.search(rest):
            kinds.append(kind)
            # The digits of an IBAN or an address are not a phone number as well.
            rest = pattern.sub(" ", rest)
    folded = text.casefold()
    if any(len(v.strip()) >= 3 and v.strip().casefold() in folded for v in sensitive):
        kinds.append("customer_record")
    return kinds


def adapt(text: str, limits: Limits, *, public: bool = False, measure: Callable[[str], int] = len,
          sensitive: Iterable[str] = (), missing_variables: Iterable[str] = ()) -> Adapted:
    """`text` as the channel with `limits` takes it, with what the agent should know about it."""
    warnings: list[FormatWarning] = []
    missing = list(missing_variables)
    if missing:
        warnings.append(FormatWarning("missing_variables", {"names": missing}))
    formatting = limits.formatting or "plain"
    body = text.replace("\r\n", "\n").strip()
    html_part = None
    if formatting == "plain":
        plain = to_plain(body)
        if plain != body:
            warnings.append(FormatWarning("formatting_removed"))
        body = plain
    elif formatting == "html":
        html_part = to_html(body)
    length = measure(body)
    adapted = Adapted(body, length, limits.max_text_length, formatting, html=html_part)
    if not adapted.fits:
        adapted.short_text = shorten(body, limits.max_text_length, measure)
        warnings.append(FormatWarning("too_long", {"length": length, "max": limits.max_text_length,
                                             "short_length": measure(adapted.short_text)}))
    if public:
        kinds = personal_data(body, sensitive)
        if kinds:
            warnings.append(FormatWarning("personal_data_public", {"kinds": kinds}))
    adapted.warnings = warnings
    return adapted
