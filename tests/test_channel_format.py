"""An answer inserted into each channel's composer respects that channel's limits and formatting.

Every connector's real `limits` (and its own way of counting length: X's weighted length,
Bluesky's graphemes) is used; nothing here is a stand-in for a channel.
"""

from __future__ import annotations

import pytest

from connectors.base import Limits
from connectors.bluesky import BlueskyConnector, grapheme_count
from connectors.facebook import FacebookConnector
from connectors.imap import ImapConnector
from connectors.instagram import InstagramConnector
from connectors.mastodon import MastodonConnector
from connectors.telegram import TelegramConnector
from connectors.webform import WebformConnector
from connectors.whatsapp import WhatsAppConnector
from connectors.x import XConnector, weighted_length
from inbox.answers import render
from inbox.channel_format import adapt, measure_for, personal_data, shorten, to_plain

ALL = [ImapConnector, XConnector, TelegramConnector, MastodonConnector, BlueskyConnector, FacebookConnector,
       InstagramConnector, WhatsAppConnector, WebformConnector]
PLAIN = [c for c in ALL if c.limits.formatting == "plain"]

ANSWER = (
    "# Where is my order?\n\n"
    "Hi {{customer_first_name}},\n\n"
    "Thanks for waiting. **Most orders arrive within 3 working days.** You can follow yours with "
    "[our tracking page](https://shop.example/track).\n\n"
    "* Tracking updates every hour\n"
    "* The carrier leaves a note when you are out\n\n"
    "Kind regards,\n{{agent_name}}"
)
LONG = " ".join(f"This is sentence number {n} of a long and careful explanation of our return policy." for n in
                range(1, 80))
CONTEXT = {"customer_name": "Jane Doe", "public": False, "attributes": {}}


def measured(cls, text):
    return measure_for(cls)(text)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.kind)
def test_a_short_answer_fits_every_channel_with_variables_filled_in(cls):
    adapted = render(ANSWER, CONTEXT, agent_name="Ann", connector_cls=cls)
    assert "Hi Jane," in adapted.text and adapted.text.rstrip().endswith("Ann")
    assert "{{" not in adapted.text
    limit = cls.limits.max_text_length
    if limit is not None and measured(cls, adapted.text) > limit:
        assert adapted.short_text is not None and measured(cls, adapted.short_text) <= limit
    else:
        assert adapted.fits and "too_long" not in adapted.codes()


@pytest.mark.parametrize("cls", PLAIN, ids=lambda c: c.kind)
def test_channels_without_formatting_get_plain_text(cls):
    adapted = render(ANSWER, CONTEXT, agent_name="Ann", connector_cls=cls)
    for markup in ("**", "# ", "](", "* Tracking"):
        assert markup not in adapted.text, markup
    assert "Most orders arrive within 3 working days." in adapted.text
    assert "our tracking page (https://shop.example/track)" in adapted.text, "the link is written out"
    assert "- Tracking updates every hour" in adapted.text
    assert "formatting_removed" in adapted.codes()
    assert adapted.html is None


def test_email_keeps_the_formatting_and_gets_an_html_part():
    adapted = render(ANSWER, CONTEXT, agent_name="Ann", connector_cls=ImapConnector)
    assert "**Most orders" in adapted.text and "formatting_removed" not in adapted.codes()
    assert "<strong>Most orders arrive within 3 working days.</strong>" in adapted.html
    assert '<a href="https://shop.example/track">our tracking page</a>' in adapted.html
    assert adapted.fits and adapted.max_length is None


@pytest.mark.parametrize("cls", [c for c in ALL if c.limits.max_text_length], ids=lambda c: c.kind)
def test_a_long_answer_is_flagged_with_a_short_version_that_fits(cls):
    adapted = render(LONG, CONTEXT, agent_name="Ann", connector_cls=cls)
    limit = cls.limits.max_text_length
    assert not adapted.fits and adapted.length > limit
    warning = next(w for w in adapted.warnings if w.code == "too_long")
    assert warning.params["max"] == limit and warning.params["length"] == adapted.length
    assert measured(cls, adapted.short_text) <= limit
    assert adapted.short_text.startswith("This is sentence number 1 of")
    assert adapted.short_text.endswith("."), "whole sentences, not a cut word"


@pytest.mark.parametrize("cls", [c for c in ALL if not c.limits.max_text_length], ids=lambda c: c.kind)
def test_channels_without_a_length_limit_take_the_long_answer(cls):
    adapted = render(LONG, CONTEXT, agent_name="Ann", connector_cls=cls)
    assert adapted.fits and adapted.short_text is None


def test_x_counts_links_as_23_and_bluesky_counts_graphemes():
    url = "https://shop.example/" + "a" * 200
    text = f"Track it here: {url}"
    assert measure_for(XConnector) is weighted_length
    assert render(text, CONTEXT, agent_name="Ann", connector_cls=XConnector).fits, "a long link counts 23 on X"
    assert not render(text, CONTEXT, agent_name="Ann", connector_cls=MastodonConnector).fits or len(text) <= 500

    family = "👨‍👩‍👧‍👦"  # one grapheme, seven code points
    text = family * 290
    assert grapheme_count(text) == 290 and len(text) > 300
    assert render(text, CONTEXT, agent_name="Ann", connector_cls=BlueskyConnector).fits


def test_a_single_sentence_too_long_is_cut_at_a_word_with_an_ellipsis():
    sentence = "word " * 100
    short = shorten(sentence.strip(), 50)
    assert len(short) <= 50 and short.endswith("…") and not short.endswith(" …")
    assert short[:-1].split() == ["word"] * len(short[:-1].split())


# Public replies with personal data ---------------------------------------------------------------

@pytest.mark.parametrize("cls", [XConnector, MastodonConnector, BlueskyConnector, FacebookConnector,
                                 InstagramConnector, TelegramConnector], ids=lambda c: c.kind)
def test_a_public_reply_with_an_order_number_gets_a_move_to_private_note(cls):
    body = "Hi {{customer_first_name}}, order {{order_number}} left our warehouse today."
    public = {**CONTEXT, "public": True, "attributes": {"order_number": "A-1234567"}}
    adapted = render(body, public, agent_name="Ann", connector_cls=cls)
    assert "A-1234567" in adapted.text
    warning = next(w for w in adapted.warnings if w.code == "personal_data_public")
    assert "customer_record" in warning.params["kinds"]

    private = render(body, {**public, "public": False}, agent_name="Ann", connector_cls=cls)
    assert "personal_data_public" not in private.codes(), "a private message may carry it"


@pytest.mark.parametrize(("text", "kinds"), [
    ("Mail us at help@shop.example", ["email"]),
    ("Call +31 6 1234 5678 any time", ["phone"]),
    ("Pay to NL91 ABNA 0417 1643 00", ["iban"]),
    ("We ship to 1012 AB Amsterdam", ["postcode"]),
    ("Thanks Jane! It ships on 12 March, 3 days from now.", []),
    ("Our opening hours are 9-17, see https://shop.example/hours", []),
])
def test_personal_data_is_recognised(text, kinds):
    assert personal_data(text) == kinds
    warnings = adapt(text, Limits(formatting="plain"), public=True).codes()
    assert ("personal_data_public" in warnings) == bool(kinds)


def test_the_customers_name_in_a_public_reply_is_not_personal_data_to_move():
    adapted = render("Thanks {{customer_name}}!", {**CONTEXT, "public": True}, agent_name="Ann",
                     connector_cls=XConnector)
    assert adapted.text == "Thanks Jane Doe!" and adapted.codes() == []


def test_a_missing_variable_stays_visible_and_is_reported():
    adapted = render("Your order {{order_number}} is on its way.", CONTEXT, agent_name="Ann",
                     connector_cls=WhatsAppConnector)
    assert adapted.text == "Your order {{order_number}} is on its way."
    assert next(w for w in adapted.warnings if w.code == "missing_variables").params["names"] == ["order_number"]


def test_to_plain_leaves_ordinary_text_alone():
    text = "Use code SAVE_10 or 2*3 items; snake_case_names stay.\n- a list item"
    assert to_plain(text) == text
