"""Charsets of inbound mail: labels read as the superset mailers write, lies and gaps guessed and flagged.

The golden files in tests/fixtures/mail/ (run by test_mail_parsing.py) hold one real-shaped mail per
script; these cases pin the rules one at a time, through the real pipeline into SQLite.
"""

from __future__ import annotations

import base64

import pytest

from tests.inbound import ingest_raw
from tests.mailfactory import raw_mail


def _b(text: bytes, charset: str = "utf-8") -> str:
    return f"=?{charset}?B?{base64.b64encode(text).decode()}?="


@pytest.mark.parametrize(
    "subject, expected, guessed",
    [
        pytest.param("=?utf-8?B?SGVsbG8gV29ybGQ?=", "Hello World", False, id="base64-without-padding"),
        pytest.param("=?utf-8?B?SGVs!bG8=?=", "Hello", False, id="base64-with-a-stray-character"),
        pytest.param("=?x-unknown?Q?plain_words?=", "plain words", True, id="unknown-charset"),
        pytest.param("=?utf-8*en?Q?Hi_there?=", "Hi there", False, id="rfc2231-language-suffix"),
        pytest.param("=?unicode-1-1-utf-7?Q?+BB8EQAQ4BDIENQRC-?=", "Привет", False, id="rfc1642-utf-7-label"),
        pytest.param(_b("日".encode()[:2]) + " " + _b("日".encode()[2:] + "本".encode()), "日本", False,
                     id="character-split-across-two-words"),
        pytest.param("=?iso-8859-1?Q?Preis_99_=80?=", "Preis 99 €", False, id="latin1-label-holding-cp1252"),
        pytest.param("=?gb2312?B?" + base64.b64encode("朱镕".encode("gbk")).decode() + "?=", "朱镕", False,
                     id="gb2312-label-holding-gbk"),
    ],
)
def test_encoded_words_decode_and_never_show_raw(ingestor, subject, expected, guessed):
    stored = ingest_raw(ingestor, raw_mail(subject=subject))
    assert stored.message["subject"] == expected
    assert "=?" not in stored.message["subject"]
    assert ("charset_fallback" in stored.flags) == guessed


@pytest.mark.parametrize(
    "charset, body, expected, guessed",
    [
        pytest.param("iso-8859-1", "Preis: 99 € – „gut“".encode("cp1252"), "Preis: 99 € – „gut“", False,
                     id="latin1-label-holding-cp1252"),
        pytest.param("big5", "香港的訂單𡃁".encode("big5hkscs"), "香港的訂單𡃁", False, id="big5-label-holding-hkscs"),
        pytest.param("iso-8859-8-i", "שלום".encode("iso-8859-8"), "שלום", False, id="logical-hebrew-label"),
        pytest.param("windows-1252", "Grüße aus Köln".encode(), "Grüße aus Köln", True, id="legacy-label-holding-utf8"),
        pytest.param("x-nonsense", "Gruß".encode("cp1252"), "Gruß", True, id="unknown-label-short-8bit"),
    ],
)
def test_body_charset_superset_and_lies(ingestor, charset, body, expected, guessed):
    raw = raw_mail(content_type=f"text/plain; charset={charset}", body="BODY").replace(b"BODY", body)
    stored = ingest_raw(ingestor, raw)
    assert stored.message["text"].strip() == expected
    assert ("charset_fallback" in stored.flags) == guessed


def test_guessed_header_charset_is_flagged_and_readable(ingestor):
    """A raw 8-bit subject in the body's charset (Windows-1251): read with that hint, flagged as guessed."""
    raw = raw_mail(subject="SUBJ", content_type="text/plain; charset=windows-1251", body="BODY")
    raw = raw.replace(b"SUBJ", "Возврат".encode("cp1251")).replace(b"BODY", "Добрый день".encode("cp1251"))
    stored = ingest_raw(ingestor, raw)
    assert stored.message["subject"] == "Возврат"
    assert stored.message["text"].strip() == "Добрый день"
    assert "charset_fallback" in stored.flags
