"""Bytes of inbound mail to text when the declared charset is missing, wrong or unknown.

Real mailers label text with a charset smaller than the one they wrote in: Chinese mail says
`gb2312` and holds GBK characters, Japanese mail says `shift_jis` or `iso-2022-jp` and holds
Windows' extensions (①, 髙), Korean mail says `euc-kr` or `ks_c_5601-1987` and holds Windows'
extended Hangul, Western mail says `iso-8859-1` and holds `€` and curly quotes (cp1252). The
WHATWG Encoding Standard, which browsers follow, reads those labels as the superset; so do we.

When the bytes still do not fit (a charset that lies, none declared, raw 8-bit header bytes),
the order is: valid UTF-8 (what nearly every modern mailer writes), the charsets the same message
declares elsewhere (`hints`: raw 8-bit header bytes are written in the body's charset), a
statistical detector (charset-normalizer), and last the declared charset with U+FFFD for the
bytes it cannot read. Every such guess is reported, so the agent sees that characters may be wrong.
"""

from __future__ import annotations

import binascii
import codecs
import re
from collections.abc import Iterable

import charset_normalizer

#: Labels mailers use that Python does not know, to the codec that reads them.
_LABELS = {
    "iso-8859-8-i": "iso8859-8", "iso-8859-8-e": "iso8859-8", "iso-8859-6-i": "iso8859-6",
    "iso-8859-6-e": "iso8859-6", "x-sjis": "cp932", "windows-31j": "cp932", "x-ms-cp932": "cp932",
    "x-gbk": "gbk", "windows-936": "gbk", "gb_2312-80": "gb2312", "x-euc-cn": "gb2312",
    "windows-874": "cp874", "x-euc-jp": "euc_jp", "x-mac-roman": "mac-roman", "x-mac-cyrillic": "mac-cyrillic",
    "x-cp1250": "cp1250", "x-cp1251": "cp1251", "x-cp1252": "cp1252", "windows-949": "cp949",
    "x-windows-949": "cp949", "x-unicode20utf8": "utf-8", "x-user-defined": "cp1252", "unicode-1-1-utf-8": "utf-8",
}
#: Codec -> the superset real mail in that label is written in (WHATWG Encoding Standard, section 4.2).
_SUPERSETS = {
    "gb2312": "gb18030", "gbk": "gb18030", "shift_jis": "cp932", "euc_kr": "cp949", "iso8859-1": "cp1252",
    "ascii": "cp1252", "iso8859-9": "cp1254", "iso8859-11": "cp874", "tis-620": "cp874", "big5": "big5hkscs",
    "iso2022_jp": "iso2022_jp_ext",
}
#: Codecs whose text is never mistaken for UTF-8 by a UTF-8 check (they are UTF or 7-bit by design).
_NOT_LEGACY = frozenset({"utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le",
                         "utf-32-be", "utf-7"})
#: Bytes given to the detector: enough to tell a language, cheap on a 1 MB body.
_DETECT_BYTES = 64 * 1024
#: Shorter runs of 8-bit bytes tell the detector too little; its guess would be noise.
_DETECT_MIN_BYTES = 12
#: What the detector chooses among: the charsets mail is written in. Left to itself it also weighs Mac,
#: EBCDIC and JIS X 0213 codecs, which no mailer sends and whose readings of Cyrillic or Hebrew can score well.
_DETECTABLE = (
    "utf_8", "cp1252", "iso8859_15", "cp1250", "iso8859_2", "cp1251", "koi8_r", "koi8_u", "iso8859_5", "cp1253",
    "iso8859_7", "cp1254", "cp1255", "iso8859_8", "cp1256", "iso8859_6", "cp1257", "iso8859_13", "cp874", "cp1258",
    "gb18030", "big5hkscs", "cp932", "euc_jp", "cp949", "utf_16",
)
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?]*)\?=")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")


def codec_for(label: str | None) -> str | None:
    """The Python codec that reads text labelled `label`, widened to its superset; None when unknown."""
    label = (label or "").strip().strip("\"'").strip().lower()
    label = _LABELS.get(label, label)
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError, TypeError):  # ValueError: a NUL in the label
        return None
    if not getattr(info, "_is_text_encoding", True):  # `charset=base64`, `rot13`: not a charset at all
        return None
    return _SUPERSETS.get(info.name, info.name)


def decode(data: bytes, label: str | None, hints: Iterable[str] = ()) -> tuple[str, bool]:
    """`data` as text, read as `label` says if it can be; returns (text, guessed).

    No label means US-ASCII (RFC 2045 5.2), and undeclared 8-bit that is valid UTF-8 is read as
    UTF-8 without a flag: that is what mailers that forget the label write today.
    """
    if not label or _is_ascii_label(label):
        # US-ASCII, declared or by default: 8-bit bytes in it are no ASCII, so reading them is a guess.
        if data.isascii():
            return data.decode("ascii"), False
        text = _utf8(data)
        if text is not None:
            return text, False
        return _guess(data, None, hints), True
    codec = codec_for(label)
    if codec is not None:
        if codec not in _NOT_LEGACY and not data.isascii() and (text := _utf8(data)) is not None:
            return text, True  # labelled as a legacy charset, written in UTF-8: the label lies
        text = _strict(data, codec)
        if text is not None:
            return text, False
    return _guess(data, codec, hints), True


def decode_8bit_header(data: bytes, hints: Iterable[str] = ()) -> tuple[str, bool]:
    """Raw 8-bit bytes in a header (RFC 6532 allows UTF-8; older mailers wrote their own charset)."""
    text = _utf8(data)
    if text is not None:
        return text, False
    return _guess(data, None, hints), True


def decode_words(value: str, hints: Iterable[str] = ()) -> tuple[str, bool]:
    """RFC 2047 encoded-words in `value` decoded, leniently; returns (text, guessed).

    Adjacent words in one charset are joined before decoding (mailers split a character across
    two words), whitespace between encoded-words is dropped (RFC 2047 6.2), an RFC 2231 language
    suffix (`utf-8*en`) is ignored, broken base64 decodes as far as it goes, and a word in an
    unknown charset is read like any undeclared text: no raw `=?...?=` reaches the agent.
    """
    pieces: list[str] = []
    guessed = False
    run_label: str | None = None
    run = bytearray()

    def flush() -> None:
        nonlocal run_label, guessed
        if run_label is not None:
            text, was_guessed = decode(bytes(run), run_label, hints)
            pieces.append(text)
            guessed = guessed or was_guessed
            run.clear()
            run_label = None

    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        gap = value[pos : match.start()]
        if gap and (gap.strip() or run_label is None):
            flush()
            pieces.append(gap)
        label = match.group(1).partition("*")[0]
        if run_label is not None and label.lower() != run_label.lower():
            flush()
        run_label = label
        run += _word_bytes(match.group(2), match.group(3))
        pos = match.end()
    flush()
    pieces.append(value[pos:])
    return "".join(pieces), guessed


def _word_bytes(kind: str, text: str) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")
    if kind in "qQ":
        return binascii.a2b_qp(raw, header=True)
    cleaned = _NOT_BASE64.sub("", text)
    cleaned = cleaned[: len(cleaned) - 1] if len(cleaned) % 4 == 1 else cleaned  # a lone last character
    try:
        return binascii.a2b_base64(cleaned + "=" * (-len(cleaned) % 4))
    except binascii.Error:
        return raw


def _is_ascii_label(label: str) -> bool:
    label = label.strip().strip("\"'").strip().lower()
    try:
        return codecs.lookup(label).name == "ascii"
    except (LookupError, ValueError, TypeError):
        return False


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        if codec == "iso2022_jp_ext":
            return _iso2022jp_windows(data)
        return None
    except (LookupError, ValueError):
        return None


def _guess(data: bytes, codec: str | None, hints: Iterable[str]) -> str:
    """The bytes did not fit their label (or had none): the best reading we can find."""
    if (text := _utf8(data)) is not None:
        return text
    for hint in hints:
        hinted = codec_for(hint)
        if hinted and hinted != codec and (text := _strict(data, hinted)) is not None:
            return text
    if sum(b > 0x7F for b in data[:_DETECT_BYTES]) >= _DETECT_MIN_BYTES:
        best = charset_normalizer.from_bytes(data[:_DETECT_BYTES], cp_isolation=list(_DETECTABLE)).best()
        if best is not None and best.encoding:
            try:
                return data.decode(best.encoding, "replace")
            except LookupError:
                pass
    # Too little to detect: the label with U+FFFD for what it cannot read; a UTF label that lied (or
    # none) most often hides Windows-1252, whose every byte is a readable character.
    fallback = codec if codec and codec not in _NOT_LEGACY else "cp1252"
    try:
        return data.decode(fallback, "replace")
    except LookupError:
        return data.decode("cp1252", "replace")


def _iso2022jp_windows(data: bytes) -> str | None:
    """ISO-2022-JP as Windows writes it (CP50220/50221): JIS X 0208 with NEC and IBM extensions
    (①, ㈱, 髙) that no Python codec reads. Each JIS pair is turned into its Shift_JIS pair and the
    whole read as cp932, which holds the extensions."""
    out = bytearray()
    mode = "ascii"
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == 0x1B:
            escape = data[i + 1 : i + 3]
            mode = {b"$B": "jis", b"$@": "jis", b"(B": "ascii", b"(J": "ascii", b"(I": "kana"}.get(escape)
            if mode is None:
                return None  # JIS X 0212 or another set cp932 does not hold
            i += 3
            continue
        if mode == "jis" and 0x21 <= byte <= 0x7E and i + 1 < len(data):
            high, low = byte, data[i + 1]
            if high % 2:
                trail = low + 0x1F
                trail += trail >= 0x7F
            else:
                trail = low + 0x7E
            lead = ((high + 1) >> 1) + 0x70
            lead += 0x40 if lead >= 0xA0 else 0
            out += bytes((lead, trail & 0xFF))
            i += 2
            continue
        out.append(byte + 0x80 if mode == "kana" and 0x21 <= byte <= 0x5F else byte)
        i += 1
    try:
        return out.decode("cp932")
    except UnicodeDecodeError:
        return None
