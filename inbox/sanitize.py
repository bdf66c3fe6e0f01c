"""Inbound HTML made safe to show, and plain text made from it.

Everything inbound is attacker-controlled. We sanitise with nh3 (the Rust `ammonia` allow-list
sanitiser) rather than writing our own: it parses like a browser does, which is what defeats
mutation XSS. On top of its defaults we remove everything that would make the agent's browser
fetch something: remote images, `srcset`, inline styles (CSS `url()`), `<style>`, `<link>`.
Only `cid:` images (parts of the same message) stay. The web app shows the result inside a
sandboxed frame as a second wall.
"""

from __future__ import annotations

import html as html_lib
import re

import nh3

#: Bodies with more links than this are replaced by a notice (a spam/DoS shape, Zammad #2390).
MAX_LINKS = 5000
#: nh3 takes about 75 ms per MB and per pass; larger bodies are replaced (the raw is kept).
MAX_HTML_CHARS = 4_000_000
#: html5ever spends time proportional to the depth of open elements for each new element
#: (20,000 nested `<div>`: 1 s; 20,000 `<dl><dt>`: 6 s). Bodies whose estimated work (the sum of
#: the depths) exceeds this are replaced: about 0.2 s per pass at worst (SEC-15, IN-40).
MAX_NESTING_WORK = 25_000_000
#: Fewer tags than this cannot reach MAX_NESTING_WORK's order of cost; no need to count.
_FEW_TAGS = 5000

_TAGS = set(nh3.ALLOWED_TAGS) - {"area", "map"} | {"font", "tfoot"}
_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["a"] = {"href", "title"}
_ATTRIBUTES["img"] = {"src", "alt", "width", "height", "title"}
_ATTRIBUTES["font"] = {"color", "size"}
_ATTRIBUTES["*"] = {"dir", "lang", "title"}
_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid"}
_LINK_RE = re.compile(r"<a\s", re.IGNORECASE)
# An opening tag that is not a void element, or a closing tag.
_NESTING_TAG = re.compile(
    r"<(/?)(?!(?:area|base|br|col|embed|hr|img|input|link|meta|param|source|track|wbr)[\s/>])[a-z]", re.IGNORECASE
)


def _too_costly(html: str) -> bool:
    """True when sanitising `html` would take longer than a message may (size or deep nesting)."""
    if len(html) > MAX_HTML_CHARS:
        return True
    if html.count("<") <= _FEW_TAGS:
        return False
    depth = work = 0
    for match in _NESTING_TAG.finditer(html):
        if match.group(1):
            depth = depth - 1 if depth else 0
        else:
            depth += 1
            work += depth
            if work > MAX_NESTING_WORK:
                return True
    return False


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    # A remote image is a tracker or an SSRF probe; only parts of the message itself may show.
    if tag == "img" and attr == "src" and not value.lower().startswith("cid:"):
        return None
    if tag == "a" and attr == "href" and value.lower().startswith("cid:"):
        return None
    return value


def sanitize_html(html: str) -> tuple[str, bool]:
    """Return (safe HTML, replaced). `replaced` is True when the body was swapped for a notice."""
    if len(_LINK_RE.findall(html, 0, MAX_HTML_CHARS)) > MAX_LINKS or _too_costly(html):
        return "", True
    cleaned = nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags={"script", "style", "title", "head", "template", "noscript", "textarea", "select"},
        attributes=_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return cleaned, False


_BLOCK_END = re.compile(r"</(p|div|tr|li|h[1-6]|blockquote|pre|table|ul|ol)\s*>|<br\s*/?>|<hr\s*/?>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")


_ANY_TAG = re.compile(r"<[^>]*>?")


def html_to_text(html: str) -> str:
    """Readable plain text from HTML, for search and for channels without formatting."""
    marked = _BLOCK_END.sub("\n", html)
    if _too_costly(marked):
        # Too big or too deep for a real parser within budget: crude, linear tag stripping.
        stripped = _ANY_TAG.sub("", marked[:MAX_HTML_CHARS])
    else:
        stripped = nh3.clean(
            marked, tags=set(), clean_content_tags={"script", "style", "title", "head", "template"}, attributes={}
        )
    text = html_lib.unescape(stripped)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def first_line(text: str | None, limit: int = 120) -> str:
    """The first non-blank line of `text`, stripped and capped: a subject for what has none."""
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


#: Bidi embeddings, overrides and isolates (LRE RLE PDF LRO RLO, LRI RLI FSI PDI). They reorder what
#: follows them, so "Bob\u202egnp.exe" shows as "Bobexe.png": a name or text can pass for another.
#: The marks a right-to-left language needs (LRM, RLM, ALM) stay.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


#: Control characters other than tab, line feed and carriage return: nothing a person typed on purpose.
CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def without_bidi_controls(text: str) -> str:
    """`text` without the bidi controls that can disguise it (see `_BIDI_CONTROLS`)."""
    return _BIDI_CONTROLS.sub("", text) if text else text


def one_line(value: str, limit: int | None = None) -> str:
    """Text typed into a one-line field: control characters dropped, spaces collapsed, at most `limit`."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())
    return text if limit is None else text[:limit]
