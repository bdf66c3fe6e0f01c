"""The cheap paths of the email parser give what the full parser gives (#16).

`inbox.mail` reads the common From shapes with a regular expression and looks headers up in an
index built once per message; the modern header parser (`email.policy.default`) and compat32's
linear header scan remain the reference. These tests hold the cheap paths to that reference on
generated hostile From headers and on a sample of the SpamAssassin corpus.
"""

from __future__ import annotations

import dataclasses
from email.message import Message

import pytest

from inbox import mail
from tests.mailfactory import raw_mail

pytest_plugins = ["tests.corpus"]

#: Every 12th corpus message (about 500): enough shapes, a few seconds.
CORPUS_STEP = 12

HOSTILE_FROMS = [
    "Jane Doe <jane@example.net>", "jane@example.net", "<jane@example.net>", '"Doe, Jane" <jane@example.net>',
    '"Doe, Jane"<jane@example.net>', "J. R. Doe <j@example.net>", "J.R. <j@example.net>", "a. . <j@example.net>", ".Dot <j@example.net>", "a.. <j@example.net>",
    "O'Neil <o@example.net>", '"" <a@example.net>', '"  spaced  name " <a@example.net>', "a <b@c>",
    '"x@evil.example" <jane@example.net>', "Jane <jane@example.net>, Bob <bob@example.net>",
    "jane@example.net (Jane Doe)", "Jane Doe <jane@example.net> (comment)", '"Jane \\"Q\\" Doe" <j@example.net>',
    "=?utf-8?q?Jos=C3=A9?= <jose@example.net>", "=?utf-8?q?<victim@example.com>?= <mallory@evil.example>",
    "Jane <jane..doe@example.net>", "Jane <.jane@example.net>", "Jane <jane@example..net>", "Jane <jane@[10.0.0.1]>",
    'Jane <"jane doe"@example.net>', "Jane Doe jane@example.net", "<jane@example.net", "jane@", "@example.net",
    "Jane <jane@example.net>>", "<<jane@example.net>>", "Undisclosed recipients:;", "group: a@example.net;",
    "José <jose@example.net>", "Jane\tDoe <jane@example.net>", "jane@example.net jane@example.net",
    "Jane <jane@exa_mple.net>", "Jane <jane@-example.net>", "Jane <jane+tag@example.net>", "<>",
    '"unterminated <jane@example.net>', "Jane = Doe <jane@example.net>", "Jane ? <jane@example.net>",
    "a" * 300 + " <jane@example.net>", "Jane <" + "a" * 70 + "@example.net>",
]


def _authors_alike(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    """The item parsed as it is and with the cheap From path switched off."""
    def item(parse):
        try:
            return dataclasses.asdict(parse())
        except Exception as exc:  # the same refusal counts as the same answer
            return (type(exc).__name__, str(exc))
    fast = item(lambda: mail.parse_email(raw, channel="email"))
    with monkeypatch.context() as patch:
        patch.setattr(mail, "_plain_addresses", lambda raw: None)
        full = item(lambda: mail.parse_email(raw, channel="email"))
    return fast, full


@pytest.mark.parametrize("sender", HOSTILE_FROMS)
def test_cheap_from_path_parses_hostile_senders_as_the_full_parser_does(sender, monkeypatch):
    fast, full = _authors_alike(raw_mail(sender=sender), monkeypatch)
    assert fast == full


def test_cheap_from_path_decides_the_common_shapes_only():
    assert mail._plain_addresses('"Doe, Jane" <jane@example.net>') == [("Doe, Jane", "jane@example.net")]
    assert mail._plain_addresses("J. Doe <j@example.net>") == [("J. Doe", "j@example.net")]
    for undecided in ("jane@example.net (Jane)", "=?utf-8?q?x?= <a@example.net>", "A <a@example.net>, B <b@x.net>",
                      "José <jose@example.net>", 'Jane <"jane doe"@example.net>'):
        assert mail._plain_addresses(undecided) is None


def test_header_index_answers_as_compat32_does_after_changes():
    msg = mail._parse_bytes(raw_mail(extra_headers="X-Two: 1\r\nx-two: 2\r\nList-Id: <l.example.net>"))
    assert msg.get_all("X-TWO") == ["1", "2"] and msg["list-id"] == "<l.example.net>"
    del msg["x-two"]
    msg["X-Two"] = "3"
    msg.replace_header("Subject", "changed")
    msg.add_header("X-Added", "yes")
    msg.set_boundary("b1")  # rewrites the Content-Type header in place
    for name in ("x-two", "subject", "x-added", "content-type", "message-id", "missing"):
        assert msg.get_all(name) == Message.get_all(msg, name)
        assert msg.get(name) == Message.get(msg, name)
        assert (name in msg) == Message.__contains__(msg, name)


def test_corpus_sample_parses_the_same_with_and_without_the_cheap_paths(spam_assassin_corpus, monkeypatch):
    sample = spam_assassin_corpus[::CORPUS_STEP]
    decided = 0
    for path in sample:
        raw = path.read_bytes()
        msg = mail._parse_bytes(raw)
        for name in {key.lower() for key in msg.keys()}:
            assert msg.get_all(name) == Message.get_all(msg, name), (path.name, name)
        fast, full = _authors_alike(raw, monkeypatch)
        assert fast == full, path.name
        froms = msg.get_all("From") or []
        decided += bool(froms and mail._plain_addresses(" ".join(str(froms[0]).split())) is not None)
    # The point of the cheap path: it decides most real mail (if it decided none, this test would prove nothing).
    assert decided > len(sample) // 2
